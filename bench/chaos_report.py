"""The fault suite's bookkeeping: who was answered how often, which posts arrived, the table.

Pure functions over what the simulator observed, so the accounting is unit-tested apart
from the processes it measures (tests/bridge/test_chaos_report.py).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MENTION = re.compile(r"<@([^<>\s]+)>")
ACCEPTED = 200
WECOM_TRIES = 4  # one delivery plus WeCom's three retries


@dataclass(frozen=True)
class Sent:
    """One member message the harness said through the simulator."""

    userid: str
    text: str
    kind: str  # checkin, coupon, question or probe
    at: float  # wall-clock time it was said


@dataclass(frozen=True)
class Slot:
    """One response_url the simulator handed out, as /sim/replies reports it."""

    userid: str
    msgid: str
    replied_at: float | None
    reply: str
    refused: int  # second replies the simulator turned away
    statuses: tuple[int, ...]  # HTTP status of each callback attempt (-1: no answer)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Slot:
        """Read one row of /sim/replies."""
        replied = doc.get("replied_at")
        return cls(str(doc["userid"]), str(doc.get("msgid", "")),
                   float(replied) if replied is not None else None, str(doc.get("reply", "")),
                   int(doc.get("refused", 0)), tuple(int(s) for s in doc.get("statuses", [])))

    @property
    def never_accepted(self) -> bool:
        """WeCom tried every time and the bridge never said 200: the message is gone."""
        return len(self.statuses) >= WECOM_TRIES and ACCEPTED not in self.statuses


@dataclass(frozen=True)
class Answer:
    """A reply a member saw: through the message's response_url or a post mentioning them."""

    userid: str
    at: float
    text: str
    via: str  # response_url or webhook


def webhook_text(payload: Mapping[str, Any]) -> str:
    """The visible text of a robot post (empty for images, cards and the like)."""
    msgtype = str(payload.get("msgtype", ""))
    body = payload.get(msgtype)
    if isinstance(body, Mapping) and isinstance(body.get("content"), str):
        return str(body["content"])
    return ""


def webhook_mentions(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(userid, line) for every member a post addresses; a digest addresses many, line by line."""
    found = [(m, line) for line in webhook_text(payload).splitlines()
             for m in MENTION.findall(line)]
    if payload.get("msgtype") == "text":
        body = payload.get("text")
        listed = body.get("mentioned_list") if isinstance(body, Mapping) else None
        found += [(str(m), webhook_text(payload)) for m in listed or [] if m != "@all"]
    return found


Posted = tuple[float, Mapping[str, Any]]  # (time, payload) of one robot post


def answers_by_member(slots: Iterable[Slot],
                      webhook: Iterable[Posted]) -> dict[str, list[Answer]]:
    """Every answer each member saw, in time order."""
    out: dict[str, list[Answer]] = {}
    for slot in slots:
        if slot.replied_at is not None:
            out.setdefault(slot.userid, []).append(
                Answer(slot.userid, slot.replied_at, slot.reply, "response_url"))
    for at, payload in webhook:
        for userid, line in webhook_mentions(payload):
            out.setdefault(userid, []).append(Answer(userid, at, line, "webhook"))
    for answers in out.values():
        answers.sort(key=lambda a: a.at)
    return out


def is_busy(text: str, busy_texts: Sequence[str]) -> bool:
    """Whether an answer is the polite busy reply rather than a real one."""
    return any(b and b in text for b in busy_texts)


def recovery_s(probes: Iterable[Sent], answers: Mapping[str, list[Answer]], fault_at: float,
               busy_texts: Sequence[str]) -> float | None:
    """Seconds from the fault until a probe said after it got a real (not busy) answer."""
    real = [a.at for p in probes if p.at >= fault_at for a in answers.get(p.userid, [])
            if not is_busy(a.text, busy_texts)]
    return max(0.0, min(real) - fault_at) if real else None


def token_counts(tokens: Iterable[str], texts: Iterable[str]) -> dict[str, int]:
    """How many times each post's unique token reached a group (digests included)."""
    joined = "\n".join(texts)
    return {token: joined.count(token) for token in tokens}


@dataclass
class Row:
    """One scenario's line of the table, plus notes that explain it."""

    scenario: str
    sent: int = 0
    once: int = 0
    twice: int = 0
    unanswered: int = 0
    never_accepted: int = 0  # of the unanswered: no callback attempt got HTTP 200
    busy: int = 0  # answered with the busy reply (counts as answered)
    posts_accepted: int = 0
    posts_lost: int = 0
    posts_doubled: int = 0
    credits_doubled: int = 0
    recovery_s: float | None = None
    notes: list[str] = field(default_factory=list)
    broken: bool = False  # the harness itself could not finish (part gave up, oversold …)

    @property
    def failed(self) -> bool:
        """Losses, doubles and silence fail the suite; slowness alone does not."""
        return bool(self.broken or self.unanswered or self.twice or self.posts_lost
                    or self.posts_doubled or self.credits_doubled)


def tally_messages(row: Row, sent: Sequence[Sent], slots: Iterable[Slot],
                   answers: Mapping[str, list[Answer]], busy_texts: Sequence[str]) -> None:
    """Fill the message columns: each member said exactly one thing, so count per member."""
    by_user = {s.userid: s for s in slots}
    row.sent = len(sent)
    for message in sent:
        got = answers.get(message.userid, [])
        if not got:
            row.unanswered += 1
            slot = by_user.get(message.userid)
            row.never_accepted += int(slot is not None and slot.never_accepted)
        elif len(got) == 1:
            row.once += 1
        else:
            row.twice += 1
        row.busy += int(any(is_busy(a.text, busy_texts) for a in got))


def tally_posts(row: Row, accepted: Sequence[str], counts: Mapping[str, int]) -> None:
    """Fill the post columns from the tokens of posts the API accepted with 202."""
    row.posts_accepted = len(accepted)
    row.posts_lost = sum(1 for t in accepted if counts.get(t, 0) == 0)
    row.posts_doubled = sum(1 for t in accepted if counts.get(t, 0) > 1)


def doubled_credits(credits: Mapping[str, int]) -> list[str]:
    """Members credited more than once for their single check-in or coupon claim."""
    return sorted(user for user, n in credits.items() if n > 1)


def credit_counts(ledger: Iterable[Mapping[str, str]], users: Iterable[str]) -> Counter[str]:
    """Check-in and coupon credits in the game ledger per member (ledger rows as dicts)."""
    wanted = set(users)
    return Counter(row["user"] for row in ledger
                   if row.get("user") in wanted and row.get("reason") in ("checkin", "coupon"))


COLUMNS = ("scenario", "sent", "answered once", "answered twice", "unanswered", "busy reply",
           "posts accepted", "posts lost", "posts doubled", "credits doubled", "recovery")


def _cells(row: Row) -> list[str]:
    recovery = "—" if row.recovery_s is None else f"{row.recovery_s:.1f} s"
    unanswered = str(row.unanswered)
    if row.never_accepted:
        unanswered += f" ({row.never_accepted} never accepted)"
    return [row.scenario, str(row.sent), str(row.once), str(row.twice), unanswered,
            str(row.busy), str(row.posts_accepted), str(row.posts_lost),
            str(row.posts_doubled), str(row.credits_doubled), recovery]


def markdown_table(rows: Sequence[Row]) -> str:
    """The results as a markdown table, one row per scenario."""
    lines = ["| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(COLUMNS))) + "|"]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def notes_text(rows: Sequence[Row]) -> str:
    """Each scenario's notes, one bullet per line, for under the table."""
    return "\n".join(f"- {row.scenario}: {note}" for row in rows for note in row.notes)
