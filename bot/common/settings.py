"""The bridge's settings, read once from the environment (all documented in the README)."""

from __future__ import annotations

import re
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from qunzhu import settings as env
from qunzhu.redisconn import cluster_mode

DEDUPE_TTL_S = 3 * 24 * 3600  # WeCom retries within minutes; keep ids for days
MAX_BODY_BYTES = 64 * 1024  # real callbacks are a few KB; larger is refused before parsing


@dataclass(frozen=True)
class BridgeSettings:
    """Everything the bridge needs; secrets are kept out of repr."""

    host: str = "127.0.0.1"
    port: int = 5080
    redis_url: str = "redis://127.0.0.1:6390/0"
    redis_cluster: bool = False  # redis_url names a node of a Redis Cluster
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_timeout_s: float = 8.0
    turn_fresh_s: float = 90.0
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    groups_file: Path = Path("data/groups.yml")
    workers: int = 16
    send_concurrency: int = 64
    token: str = field(default="", repr=False)
    encoding_aes_key: str = field(default="", repr=False)
    corp_id: str = ""
    corp_secret: str = field(default="", repr=False)
    api_token: str = field(default_factory=lambda: "", repr=False)
    consumer: str = field(default_factory=lambda: f"bridge-{secrets.token_hex(4)}")
    roles: frozenset[str] = frozenset({"turns", "sender", "handoff", "events", "campaigns"})
    reclaim_idle_ms: int = 60_000
    dedupe_ttl_s: int = DEDUPE_TTL_S
    spool_dir: Path | None = None  # None: no spool, a Redis outage answers 503 (tests)
    spool_max_bytes: int = 64 * 1024 * 1024
    inbox_wait_s: float = 2.0  # how long a callback waits on Redis before spooling instead
    sandbox_clock_url: str = ""  # the simulator's /sim/clock (sandbox only)

    @classmethod
    def from_env(cls) -> BridgeSettings:
        """Read every BRIDGE_*/WECOM_* variable with its documented default."""
        groups = Path(env.get("BRIDGE_GROUPS_FILE"))
        consumer = (env.get("BRIDGE_CONSUMER")
                    or f"bridge-{socket.gethostname()}-{env.get('BRIDGE_PORT')}")
        return cls(
            host=env.get("BRIDGE_HOST"),
            port=int(env.get("BRIDGE_PORT")),
            redis_url=env.redis_url(),
            redis_cluster=cluster_mode(),
            rasa_url=",".join(rasa_urls(env.get("RASA_URL"))),
            rasa_timeout_s=float(env.get("BRIDGE_RASA_TIMEOUT_S")),
            turn_fresh_s=float(env.get("BRIDGE_TURN_FRESH_S")),
            wecom_api_base=env.get("WECOM_API_BASE").rstrip("/"),
            groups_file=groups if groups.is_absolute() else env.PROJECT_ROOT / groups,
            workers=int(env.get("BRIDGE_WORKERS")),
            send_concurrency=int(env.get("BRIDGE_SEND_CONCURRENCY")),
            token=env.get("WECOM_TOKEN"),
            encoding_aes_key=env.get("WECOM_ENCODING_AES_KEY"),
            corp_id=env.get("WECOM_CORP_ID"),
            corp_secret=env.get("WECOM_CORP_SECRET"),
            api_token=env.get("BRIDGE_API_TOKEN"),
            roles=roles(env.get("BRIDGE_ROLES")),
            consumer=consumer,
            reclaim_idle_ms=int(env.get("BRIDGE_RECLAIM_IDLE_MS")),
            spool_dir=env.project_path("BRIDGE_SPOOL_DIR") / re.sub(r"[^\w.-]", "_", consumer),
            spool_max_bytes=int(float(env.get("BRIDGE_SPOOL_MAX_MB")) * 1024 * 1024),
            sandbox_clock_url=sandbox_clock_url(env.get("BRIDGE_SANDBOX_CLOCK_URL")),
        )


def rasa_urls(value: str) -> tuple[str, ...]:
    """RASA_URL: one URL, or several separated by commas."""
    urls = tuple(u.strip().rstrip("/") for u in value.split(",") if u.strip())
    if not urls or not all(u.startswith(("http://", "https://")) for u in urls):
        raise ValueError("RASA_URL must be one or more http(s):// URLs, comma-separated")
    return urls


def sandbox_clock_url(value: str) -> str:
    """BRIDGE_SANDBOX_CLOCK_URL: empty, or the local simulator's clock (loopback only)."""
    value = value.strip()
    if value and urlsplit(value).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("BRIDGE_SANDBOX_CLOCK_URL must point at the local simulator "
                         "(http://127.0.0.1:<port>/sim/clock) or be empty")
    return value


ROLES = ("turns", "sender", "handoff", "events", "campaigns")


def roles(text: str) -> frozenset[str]:
    """Which background loops this process runs; callbacks and the API are always served."""
    chosen = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = chosen - set(ROLES)
    if unknown:
        raise ValueError(f"BRIDGE_ROLES: unknown role(s) {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(ROLES)}")
    return chosen
