"""The audit log: every change an operator makes — who, when, what, and the difference."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from qunzhu.redisconn import AsyncRedis, text_of

STREAM = "qz:{console}:audit"
MAXLEN = 200_000


@dataclass(frozen=True)
class AuditEntry:
    """One change."""

    at: float
    who: str
    action: str
    target: str
    diff: dict[str, Any]


class AuditLog:
    """Append and read the audit stream."""

    def __init__(self, r: AsyncRedis) -> None:
        self._r = r

    async def record(self, who: str, action: str, target: str,
                     diff: dict[str, Any] | None = None) -> None:
        await self._r.xadd(STREAM, {
            "at": f"{time.time():.3f}", "who": who, "action": action, "target": target,
            "diff": json.dumps(diff or {}, ensure_ascii=False)}, maxlen=MAXLEN, approximate=True)

    async def latest(self, count: int = 200) -> list[AuditEntry]:
        rows = await self._r.xrevrange(STREAM, count=count)
        out = []
        for _id, raw in rows:
            f = {text_of(k): text_of(v) for k, v in raw.items()}
            out.append(AuditEntry(float(f.get("at", 0)), f.get("who", ""), f.get("action", ""),
                                  f.get("target", ""), json.loads(f.get("diff") or "{}")))
        return out
