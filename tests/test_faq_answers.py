"""Every wording of every FAQ answer answers its question, from one source of truth."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actions import answers, config
from actions.faq import ActionAnswerFaq, facts, opening_hours_text
from console.answers import PLACEHOLDERS
from qunzhu.config import load_brand
from tests.helpers import domain, run, tracker

ROOT = Path(__file__).resolve().parent.parent


def _key_facts() -> dict[str, list[str]]:
    """What each answer must say, taken from the operator files (not from domain.yml)."""
    brand, games = config.brand(), config.games()
    stores_with_own_hours = [f"{s.name}：{s.hours}" for s in brand.store_hours() if not s.usual]
    prizes = [p.name for p in games.lucky_draw.prizes if p.kind != "nothing"]
    return {
        "opening_hours": [brand.opening_hours, *stores_with_own_hours],
        "delivery": [brand.delivery.channels, f"{brand.delivery.radius_km:g} 公里",
                     f"{brand.delivery.min_order_yuan:g} 元", f"{brand.delivery.fee_yuan:g} 元",
                     f"{brand.delivery.free_over_yuan:g} 元", brand.delivery.hours],
        "membership_benefits": [brand.membership],
        "coupon_usage": ["券码", "一张", "过期"],
        "points_rules": [f"{games.checkin.base_points} 分", "积分兑换"],
        "refund": [brand.refund],
        "checkin_rules": ["0 点", f"{games.checkin.base_points} ", "连续"],
        "lucky_draw_rules": [f"{games.lucky_draw.daily_limit} 次", *prizes],
        "store_location": [s.address for s in brand.stores],
        "invoice": [brand.invoice],
        "campaign_posts": ["别@我了", "恢复提醒"],
    }


def _filled(template: str, values: dict[str, Any]) -> str:
    import re

    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), m.group(0))), template)


FAQ_KEYS = sorted(k.split("/", 1)[1] for k in domain()["responses"] if k.startswith("utter_faq/"))


def test_every_faq_key_has_its_facts_listed() -> None:
    assert set(FAQ_KEYS) == set(_key_facts())


@pytest.mark.parametrize("key", FAQ_KEYS)
def test_every_variation_states_the_key_facts(key: str) -> None:
    values = facts(domain())
    variations = domain()["responses"][f"utter_faq/{key}"]
    assert len(variations) >= 2, f"{key}: give members more than one wording"
    for variation in variations:
        text = _filled(variation["text"], values)
        assert "{" not in text, text
        for fact in _key_facts()[key]:
            assert fact in text, f"utter_faq/{key}: {text!r} lacks {fact!r}"


async def test_the_answer_sent_is_filled_from_the_brand_file() -> None:
    selected = {"faq": {"response": {"intent_response_key": "faq/opening_hours",
                                     "utter_action": "utter_faq/opening_hours",
                                     "confidence": 0.9}}}
    msgs, _ = await run(ActionAnswerFaq(), tracker("几点开门", response_selector=selected))
    assert "7:30–21:00" in msgs[0]["opening_hours_text"]


def _brand(tmp_path: Path, usual: str, stores: list[str | None]) -> config.Brand:
    lines = (ROOT / "data" / "brand.yml").read_text(encoding="utf-8").split("  stores:")[0]
    lines = lines.replace("opening_hours: 7:30–21:00", f"opening_hours: {usual}")
    out = [lines, "  stores:"]
    for i, hours in enumerate(stores):
        out.append(f"    - id: s{i}\n      name: 店{i}\n      address: 路{i}号")
        if hours:
            out.append(f"      hours: {hours}")
    path = tmp_path / "brand.yml"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return load_brand(path)


def test_hours_answer_is_generated_so_it_cannot_contradict_itself(tmp_path: Path) -> None:
    d = domain()
    alike = opening_hours_text(d, _brand(tmp_path, "8:00-22:30", [None, None]))
    assert alike.startswith("所有门店") and "8:00–22:30" in alike
    most = opening_hours_text(d, _brand(tmp_path, "8:00–22:30", [None, None, "7:00–23:00"]))
    assert most.startswith("大部分门店每天 8:00–22:30") and "店2：7:00–23:00" in most
    assert "店0" not in most
    # Most stores keep other hours: "大部分" would be untrue, so every store is listed.
    each = opening_hours_text(d, _brand(tmp_path, "8:00–22:30", [None, "7:00–23:00", "9:00–18:00"]))
    assert "大部分" not in each and "店0：8:00–22:30" in each and "店2：9:00–18:00" in each


@pytest.mark.parametrize("bad", ["25:00–26:00", "8:00", "7:30-"])
def test_hours_must_look_like_hours(tmp_path: Path, bad: str) -> None:
    with pytest.raises(config.ConfigError, match="opening_hours"):
        _brand(tmp_path, bad, [None])


def test_hours_described_in_words_are_quoted_store_by_store(tmp_path: Path) -> None:
    # The format before this version: a sentence, and every store's own hours.
    described = "大部分门店每天 7:30–21:00 营业，节假日照常开门"
    with pytest.raises(config.ConfigError, match="every store needs its own hours"):
        _brand(tmp_path, described, [None, "7:00–22:00"])
    brand = _brand(tmp_path, described, ["7:30–21:00", "周一至周五 7:00–22:00，周末休息"])
    answer = opening_hours_text(domain(), brand)
    assert "大部分" not in answer and "所有门店" not in answer
    assert "店0：7:30–21:00" in answer and "店1：周一至周五 7:00–22:00，周末休息" in answer


# ------------------------------------------------------------- answers live from domain.yml
HOURS = ('    - text: "⏰ {opening_hours_text}"\n'
         '    - text: "营业时间是这样的：{opening_hours_text}\\n欢迎来坐坐 ☕"\n')
INVOICE = "\n  utter_faq/invoice:\n"
_saved_at = itertools.count(100, -1)


def _save(path: Path, text: str) -> None:
    """Write as an editor does, a moment ago (each save a different moment)."""
    path.write_text(text, encoding="utf-8")
    past = time.time() - next(_saved_at)
    os.utime(path, (past, past))


@pytest.fixture
def live_domain(tmp_path: Path) -> Iterator[Path]:
    """A copy of domain.yml the action reads its wordings from, checked on every answer."""
    path = tmp_path / "domain.yml"
    _save(path, (ROOT / "domain.yml").read_text(encoding="utf-8"))
    answers.use_domain_file(path, check_every_s=0)
    yield path
    answers.use_domain_file(None)


def _asked(key: str) -> Any:
    return tracker("?", response_selector={"faq": {"response": {
        "intent_response_key": f"faq/{key}", "utter_action": f"utter_faq/{key}",
        "confidence": 0.9}}})


async def _answer(key: str) -> dict[str, Any]:
    msgs, _ = await run(ActionAnswerFaq(), _asked(key))
    assert len(msgs) == 1 and msgs[0]["response"] == f"utter_faq/{key}"
    return msgs[0]


def test_the_console_offers_exactly_the_placeholders_the_action_fills() -> None:
    assert set(PLACEHOLDERS) == set(facts(domain()))


async def test_an_answer_reworded_in_domain_yml_is_sent_without_retraining(
    live_domain: Path,
) -> None:
    values = facts(domain())
    before = await _answer("opening_hours")
    assert before["text"] in {_filled(v["text"], values)
                              for v in domain()["responses"]["utter_faq/opening_hours"]}
    text = live_domain.read_text(encoding="utf-8")
    assert HOURS in text
    _save(live_domain, text.replace(
        HOURS, '    - text: "新说法：{opening_hours_text}\\n电话 {hotline} # 不是注释"\n'))
    after = await _answer("opening_hours")
    assert after["text"] == (f"新说法：{values['opening_hours_text']}\n"
                             f"电话 {values['hotline']} # 不是注释")
    assert after["opening_hours_text"] == values["opening_hours_text"]  # facts still sent


async def test_a_faq_missing_from_the_file_is_answered_with_the_models_wording(
    live_domain: Path,
) -> None:
    text = live_domain.read_text(encoding="utf-8")
    start = text.index(INVOICE)
    end = text.find("\n\n", start + len(INVOICE))
    end = len(text) if end < 0 else end
    _save(live_domain, text[:start] + text[end:])
    assert answers.wordings("utter_faq/invoice") == ()
    sent = await _answer("invoice")
    assert sent["text"] is None and "invoice_policy" in sent  # Rasa renders the response


async def test_a_broken_domain_file_keeps_the_last_good_answers(live_domain: Path) -> None:
    good = live_domain.read_text(encoding="utf-8").replace(
        HOURS, '    - text: "只说这一句 {hotline}"\n')
    _save(live_domain, good)
    hotline = facts(domain())["hotline"]
    assert (await _answer("opening_hours"))["text"] == f"只说这一句 {hotline}"
    for broken in ("responses: [broken\n", good.replace('"只说这一句 {hotline}"', "[1, 2]")):
        _save(live_domain, broken)
        assert (await _answer("opening_hours"))["text"] == f"只说这一句 {hotline}"
        assert answers.live_file().problem is not None
