"""The whole stack as `make run` starts it: Rasa over REST, and the sandbox through the bridge."""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from actions.gamekeys import GameKeys
from bot.common.store import HANDOFF_METRICS
from tests.e2e.conftest import API_TOKEN, Running, feed, http_json, wait_for

pytestmark = pytest.mark.e2e
KEYS = GameKeys("xiaoman")


def say(base: str, text: str, user: str = "xiaoming", group: str = "sandbox",
        msgid: str | None = None) -> list[str]:
    payload: dict[str, Any] = {
        "sender": f"{group}:{user}",
        "message": f"@福利官\u2005{text}",
        "metadata": {"msgid": msgid or uuid.uuid4().hex, "chatid": group, "userid": user,
                     "chattype": "group"},
    }
    request = urllib.request.Request(
        f"{base}/webhooks/rest/webhook", data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
        return [m.get("text", "") for m in json.loads(response.read())]


def _numbers(replies: list[str]) -> list[str]:
    return re.findall(r"\d+", "".join(replies))


def test_member_journey(running: str, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert any("打卡" in t or "福利官" in t or "你好" in t for t in say(running, "你好"))
    first = say(running, "打卡", msgid="wecom-msg-1")
    assert "连续 1 天" in first[0] or "连续第 1 天" in first[0]
    # A WeCom retry replays the first result: same numbers (wording varies by design).
    assert _numbers(say(running, "打卡", msgid="wecom-msg-1")) == _numbers(first)
    assert "今天" in say(running, "簽到")[0]  # traditional, already checked in
    assert r.hget(KEYS.member("xiaoming"), "points") == "5"
    assert "5" in say(running, "我的积分")[0]
    board = say(running, "排行榜")[0]
    assert "小明" in board and "xiaoming" not in board, board  # names, not ids

    issued = say(running, "领一张满30减5")[0]
    assert "QZ" in issued
    code = issued.split("QZ", 1)[1][:8]
    assert f"QZ{code}" in say(running, "我的券")[0]
    unknown = "".join(say(running, "ABC12345 这个码能用吗"))  # either wording of the reply
    assert "不是我们" in unknown or "没有查到" in unknown, unknown

    assert say(running, "抽奖")
    assert r.xlen(KEYS.drawlog) == 1
    assert "积分" in say(running, "积分兑换")[0]
    assert "还差" in say(running, "兑换美式")[0]

    for question, fact in [("几点开门", "7:30"), ("能送外卖吗", "3 公里"),
                           ("怎么开发票", "发票"), ("门店地址", "静安寺店"),
                           ("会员有什么好处", "会员"), ("优惠券怎么用", "券"),
                           ("积分规则", "积分"), ("怎么退款", "退款"),
                           ("打卡规则", "打卡"), ("抽奖规则", "抽")]:
        answer = "".join(say(running, question))
        assert fact in answer and "{" not in answer, (question, answer)

    assert "人工" in "".join(say(running, "转人工"))
    assert r.hget(HANDOFF_METRICS, "handoffs_accepted") == "1"  # through the bridge's API
    assert r.keys("qztracker:*"), "trackers must live in Redis"


def test_bad_input_gets_a_reply_and_changes_nothing(running: str, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    before = r.hgetall(KEYS.member("odd"))
    for text in ["", "👍👍👍", "领" * 5000, "\u200b", "ＱＺ??? mixed русский ✨"]:
        replies = say(running, text, user="odd")
        assert replies and all(replies), repr(text[:10])
    assert r.hgetall(KEYS.member("odd")) == before
    assert r.hlen(KEYS.wallet("odd")) == 0


def test_two_misses_offer_a_person(running: str) -> None:
    say(running, "🫠🫠", user="lost")  # an emoji no one trained on
    offer = "".join(say(running, "[动画表情]", user="lost"))  # a sticker, as WeCom sends it
    assert "人工" in offer
    assert "人工" in "".join(say(running, "好的", user="lost"))


# ------------------------------------------------------------------ through the bridge
def test_sandbox_member_checks_in_through_wecom_protocol(stack_up: Running) -> None:
    token = {"Authorization": f"Bearer {API_TOKEN}"}
    turns_before = http_json("GET", f"{stack_up.bridge}/api/metrics", headers=token)[
        "counters"].get("rasa_turns", 0)
    # The same callback delivered four times at once, as WeCom's retries can.
    http_json("POST", f"{stack_up.sandbox}/sandbox/say?copies=4",
              {"group": "sandbox", "userid": "lili", "text": "@福利官 打卡"})
    reply = wait_for(lambda: [i for i in feed(stack_up.sandbox)
                              if i["sender"] == "bot" and "lili" in i["content"]])
    time.sleep(1.5)
    replies = [i for i in feed(stack_up.sandbox) if i["sender"] == "bot" and "lili" in i["content"]]
    assert len(replies) == 1 and replies == reply
    assert "1 天" in replies[0]["content"] and replies[0]["content"].startswith("<@lili>")
    assert replies[0]["via"] == "response_url"
    counters = http_json("GET", f"{stack_up.bridge}/api/metrics", headers=token)["counters"]
    assert counters["rasa_turns"] - turns_before == 1


def test_handoff_reaches_the_staff_group(stack_up: Running) -> None:
    http_json("POST", f"{stack_up.sandbox}/sandbox/say",
              {"group": "sandbox", "userid": "aqiang", "text": "@福利官 我要找人工客服"})
    staff = wait_for(lambda: [i for i in feed(stack_up.sandbox, "staff")
                              if "阿强" in i["content"]],
                     explain=lambda: [i["content"] for i in feed(stack_up.sandbox, "staff")])
    card = staff[0]["content"]
    assert "<@kefu01>" in card, card
    assert "小满咖啡·福利群（沙盒）" in card and "aqiang" not in card, card  # names, not ids


def test_sandbox_page_in_headless_chromium(stack_up: Running) -> None:
    from tests.e2e.webdriver import Browser

    browser = Browser()
    try:
        browser.open(stack_up.sandbox + "/")
        wait_for(lambda: browser.run("return document.querySelectorAll('#as option').length"))
        browser.run("document.getElementById('as').value = 'xiaohong';")
        browser.type("#text", "@福利官 打卡")
        browser.click("#send")
        text = wait_for(lambda: browser.run(
            "const b = [...document.querySelectorAll('.msg.bot .bubble')]"
            ".map(e => e.innerText).filter(t => t.includes('@小红'));"
            "return b.length ? b[b.length - 1] : '';"))
        assert "连续" in text or "天" in text, text
        assert "1" in text  # the streak
        mine = browser.run("return [...document.querySelectorAll('.msg.mine .bubble')]"
                           ".map(e => e.innerText)")
        assert any("打卡" in m for m in mine)
        browser.screenshot(Path("results/sandbox.png"))
    finally:
        browser.close()
