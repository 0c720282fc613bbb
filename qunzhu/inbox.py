"""Messages the bot did not handle well, kept for operators to teach it from.

The bridge's aggregator files a member's turn here when the bot fell back, answered with low
confidence, was asked for a person, or when the member said something similar again within a
minute (a rephrase: the first answer did not help). The console clusters them (`console.
clusters`). One stream per brand (`qz:{<brand>:inbox}:items`, trimmed by length), a mark per
event id so a redelivered turn is filed once, and each member's last turn for a minute.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qunzhu.events import Event, Kind
from qunzhu.metrics import LOW_CONFIDENCE
from qunzhu.redisconn import AsyncRedis, batch, script_arg, text_of
from qunzhu.textnorm import normalise

MAXLEN = 50_000  # items kept (approximately): weeks of a busy brand's unanswered questions
MARK_S = 3 * 86400
REPHRASE_S = 60
HANDOFF_INTENTS = frozenset({"human_handoff"})
REASONS = {"fallback": "没听懂", "low_confidence": "没把握", "handoff": "要找人工",
           "rephrased": "换了说法又问"}

# KEYS[1] items  KEYS[2] the event's mark   ARGV[1] {fields {…}, maxlen, ttl}
ADD = """
local a = cjson.decode(ARGV[1])
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', a.ttl) then return 0 end
local f = {}
for k, v in pairs(a.fields) do f[#f + 1] = k; f[#f + 1] = v end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', a.maxlen, '*', unpack(f))
return 1
"""


# KEYS[1] the member's latest turn   ARGV[1] {turn (its fields as JSON), at, ttl}
# → the turn stored before (or false). The later of the two stays stored, so whichever of two
# turns is handled second sees the first, in whatever order consumers take them.
SWAP_LAST = """
local a = cjson.decode(ARGV[1])
local prev = redis.call('GET', KEYS[1])
local keep = true
if prev then
  local ok, p = pcall(cjson.decode, prev)
  if ok and type(p) == 'table' and tonumber(p.at) and tonumber(p.at) > a.at then
    keep = false
  end
end
if keep then redis.call('SET', KEYS[1], a.turn, 'EX', a.ttl) end
return prev or false
"""


@dataclass(frozen=True)
class InboxKeys:
    """Where one brand's inbox lives (one slot)."""

    brand: str

    @property
    def items(self) -> str:
        return f"qz:{{{self.brand}:inbox}}:items"

    def mark(self, eid: str) -> str:
        return f"qz:{{{self.brand}:inbox}}:m:{eid}"

    def last(self, group: str, user: str) -> str:
        return f"qz:{{{self.brand}:inbox}}:last:{group}:{user}"


@dataclass(frozen=True)
class Item:
    """One message that needs an operator's look."""

    eid: str
    at: float
    group: str
    user: str
    text: str
    answer: str
    intent: str
    confidence: float
    closest: str
    reasons: tuple[str, ...]

    def fields(self) -> dict[str, str]:
        return {"eid": self.eid, "at": f"{self.at:.3f}", "g": self.group, "u": self.user,
                "text": self.text, "answer": self.answer, "intent": self.intent,
                "conf": f"{self.confidence:.3f}", "closest": self.closest,
                "reasons": ",".join(self.reasons)}

    @classmethod
    def from_fields(cls, raw: dict[Any, Any]) -> Item:
        f = {text_of(k): text_of(v) for k, v in raw.items()}
        return cls(f.get("eid", ""), float(f.get("at") or 0), f.get("g", ""), f.get("u", ""),
                   f.get("text", ""), f.get("answer", ""), f.get("intent", ""),
                   float(f.get("conf") or 0), f.get("closest", ""),
                   tuple(r for r in f.get("reasons", "").split(",") if r))


def item_of(turn: Event, reasons: Sequence[str]) -> Item:
    d = turn.data
    return Item(turn.eid, turn.at, turn.group, turn.user, str(d.get("text", "")),
                str(d.get("answer", "")), str(d.get("intent", "")),
                float(d.get("confidence", 0.0) or 0.0), str(d.get("closest", "")),
                tuple(reasons))


def reasons_for(turn: Event) -> list[str]:
    """Why a turn needs a look (none: the bot handled it)."""
    d = turn.data
    if d.get("fallback"):
        return ["fallback"]
    reasons = []
    if float(d.get("confidence", 1.0) or 0.0) < LOW_CONFIDENCE:
        reasons.append("low_confidence")
    if d.get("intent") in HANDOFF_INTENTS:
        reasons.append("handoff")
    return reasons


FUNCTION_WORDS = (  # asked in every question, about nothing in particular
    "请问 想问 问一下 一下 你们 我们 咱们 你 我 他 她 它 怎么样 怎么 怎样 如何 什么 啥 哪里 "
    "哪儿 在哪 哪 有没有 有木有 没有 可不可以 可以 能不能 能 会不会 会 是不是 是 的 了 吗 呢 "
    "吧 啊 呀 哦 嘛 么 和 还 都 也 就 要 想 在 有 给 这个 那个 这 那 多少 几 福利官")
STOPWORDS = sorted(FUNCTION_WORDS.split(), key=len, reverse=True)  # longest first
MENTION = re.compile(r"@\S+")
NON_WORD = re.compile(r"[\W_]+")


def topic_text(text: str) -> str:
    """What a message is about: normalised, without mentions, particles or punctuation."""
    out = NON_WORD.sub(" ", normalise(MENTION.sub(" ", text)).lower())
    for word in STOPWORDS:
        out = out.replace(word, " ")
    return " ".join(out.split())


def _pairs(text: str) -> set[str]:
    squeezed = topic_text(text).replace(" ", "")
    return {squeezed[i:i + 2] for i in range(len(squeezed) - 1)} or ({squeezed} - {""})


def similar(a: str, b: str) -> bool:
    """Two messages about the same thing (half the character pairs of the shorter one's topic
    shared): the second is the member asking again."""
    x, y = _pairs(a), _pairs(b)
    return bool(x and y) and len(x & y) / min(len(x), len(y)) >= 0.5


async def collect(r: AsyncRedis, brand: str, events: Sequence[Event]) -> int:
    """File the turns that need a look; how many were new.

    A member who asks again in other words within a minute marks the earlier turn rephrased.
    Each turn is swapped in as the member's latest by one script, so two bridge processes
    handling a member's consecutive turns at the same moment still see each other.
    """
    keys = InboxKeys(brand)
    turns = sorted((e for e in events if e.kind is Kind.TURN and e.user), key=lambda e: e.at)
    if not turns:
        return 0
    pipe = batch(r)
    for turn in turns:
        pipe.eval(SWAP_LAST, 1, keys.last(turn.group, turn.user), script_arg(
            {"turn": json.dumps(turn.fields(), ensure_ascii=False), "at": turn.at,
             "ttl": REPHRASE_S * 2}))
    filed: list[Item] = []
    for turn, raw in zip(turns, await pipe.execute(), strict=True):
        before = _event(raw)
        if (before is not None and before.eid != turn.eid
                and abs(turn.at - before.at) <= REPHRASE_S
                and similar(str(before.data.get("text", "")), str(turn.data.get("text", "")))):
            earlier = before if before.at <= turn.at else turn
            filed.append(item_of(earlier, [*reasons_for(earlier), "rephrased"]))
        reasons = reasons_for(turn)
        if reasons:
            filed.append(item_of(turn, reasons))
    if not filed:
        return 0
    pipe = batch(r)
    for item in filed:
        pipe.eval(ADD, 2, keys.items, keys.mark(item.eid), script_arg(
            {"fields": item.fields(), "maxlen": MAXLEN, "ttl": MARK_S}))
    return sum(int(x) for x in await pipe.execute())


def _event(raw: Any) -> Event | None:
    """The stored turn, if there was one and it reads back."""
    if raw is None or raw is False:
        return None
    try:
        return Event.from_fields(json.loads(text_of(raw)))
    except (ValueError, TypeError):
        return None


async def recent(r: AsyncRedis, brand: str, since: float, until: float,
                 limit: int = 3000) -> list[Item]:
    """The newest items filed between two moments (unix seconds), newest first."""
    rows = await r.xrevrange(InboxKeys(brand).items, max=f"{int(until * 1000)}-999999",
                             min=f"{int(since * 1000)}-0", count=limit)
    return [Item.from_fields(fields) for _id, fields in rows]
