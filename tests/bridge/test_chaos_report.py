"""The fault suite's accounting: what counts as answered, doubled, lost and recovered."""

from __future__ import annotations

from typing import Any

from bench import chaos_report as report
from bench.chaos_report import Row, Sent, Slot

BUSY = ("系统有点忙，稍等一下再试一次好吗？🙏",)


def slot(userid: str, replied_at: float | None = None, reply: str = "好的",
         statuses: tuple[int, ...] = (200,)) -> Slot:
    """A response_url as /sim/replies reports it."""
    return Slot(userid, f"m-{userid}", replied_at, reply, 0, statuses)


def md(content: str) -> dict[str, Any]:
    """A markdown robot post."""
    return {"msgtype": "markdown", "markdown": {"content": content}}


def test_a_digest_answers_each_member_it_mentions_once_per_line() -> None:
    """A digest post carries many members' fallback replies, one per line."""
    posted = md(f"**3 条消息**\n<@u1> 打卡成功\n<@u2> {BUSY[0]}\n<@u1> 又一次")
    answers = report.answers_by_member([slot("u3", 5.0)], [(9.0, posted)])
    assert [a.via for a in answers["u1"]] == ["webhook", "webhook"]
    assert report.is_busy(answers["u2"][0].text, BUSY)
    assert answers["u3"][0].via == "response_url"


def test_text_posts_answer_the_members_in_their_mentioned_list() -> None:
    """Plain text posts name members in mentioned_list, not in the content."""
    posted = {"msgtype": "text", "text": {"content": "欢迎", "mentioned_list": ["u9", "@all"]}}
    assert [u for u, _line in report.webhook_mentions(posted)] == ["u9"]


def test_messages_are_counted_once_twice_or_unanswered() -> None:
    """Each member said one thing, so answers per member decide the columns."""
    sent = [Sent(u, "打卡", "checkin", 1.0) for u in ("a", "b", "c", "d")]
    slots = [slot("a", 2.0), slot("b", 2.0), slot("c"), slot("d", statuses=(503, -1, -1, 503))]
    answers = report.answers_by_member(slots, [(3.0, md("<@b> 打卡成功"))])
    row = Row("x")
    report.tally_messages(row, sent, slots, answers, BUSY)
    assert (row.sent, row.once, row.twice, row.unanswered, row.never_accepted) == (4, 1, 1, 2, 1)
    assert row.failed


def test_busy_replies_count_as_answered_but_are_reported() -> None:
    """The polite busy reply ends the member's wait: answered, and counted apart."""
    sent = [Sent("a", "打卡", "checkin", 1.0)]
    slots = [slot("a", 2.0, reply="<@a> " + BUSY[0])]
    row = Row("x")
    report.tally_messages(row, sent, slots, report.answers_by_member(slots, []), BUSY)
    assert (row.once, row.busy, row.failed) == (1, 1, False)


def test_recovery_is_the_first_real_answer_to_a_probe_said_after_the_fault() -> None:
    """Probes said before the fault, and busy replies, do not show recovery."""
    probes = [Sent("p0", "我的积分", "probe", 99.0), Sent("p1", "我的积分", "probe", 101.0),
              Sent("p2", "我的积分", "probe", 102.0)]
    slots = [slot("p0", 100.5), slot("p1", 150.0, reply=BUSY[0]), slot("p2", 130.0)]
    answers = report.answers_by_member(slots, [])
    assert report.recovery_s(probes, answers, 100.0, BUSY) == 30.0
    assert report.recovery_s(probes[:2], answers, 100.0, BUSY) is None


def test_posts_are_lost_doubled_or_delivered_by_their_token() -> None:
    """Tokens are found in plain posts and inside digests alike."""
    texts = ["公告 〔t1〕", "**digest**\n公告 〔t2〕\n公告 〔t1〕", "other"]
    counts = report.token_counts(["〔t1〕", "〔t2〕", "〔t3〕"], texts)
    row = Row("x")
    report.tally_posts(row, ["〔t1〕", "〔t2〕", "〔t3〕"], counts)
    assert (row.posts_accepted, row.posts_lost, row.posts_doubled) == (3, 1, 1)


def test_a_member_credited_twice_is_found_in_the_ledger() -> None:
    """Only check-in and coupon rows of this scenario's members count."""
    ledger = [{"user": "a", "reason": "checkin"}, {"user": "a", "reason": "checkin"},
              {"user": "b", "reason": "coupon"}, {"user": "b", "reason": "redeem"},
              {"user": "z", "reason": "checkin"}, {"user": "z", "reason": "checkin"}]
    credits = report.credit_counts(ledger, ["a", "b"])
    assert report.doubled_credits(credits) == ["a"]


def test_the_table_has_a_row_per_scenario_and_explains_never_accepted() -> None:
    """Markdown, one header, one separator, one line per scenario."""
    rows = [Row("redis_kill", sent=10, once=10, recovery_s=1.25),
            Row("bridge_kill", sent=10, once=7, unanswered=3, never_accepted=3)]
    lines = report.markdown_table(rows).splitlines()
    assert len(lines) == 4 and lines[0].startswith("| scenario |")
    assert "| 1.2 s |" in lines[2] or "| 1.3 s |" in lines[2]
    assert "3 (3 never accepted)" in lines[3] and lines[3].endswith("| — |")
    assert not rows[0].failed and rows[1].failed
