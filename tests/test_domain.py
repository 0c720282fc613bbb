"""domain.yml and the code agree: every response an action names exists, none is dead."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _domain() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "domain.yml").read_text("utf-8"))
    return loaded


def _named_in_code() -> set[str]:
    names: set[str] = set()
    for path in [*(ROOT / "actions").glob("*.py"), *(ROOT / "bot").rglob("*.py")]:
        text = path.read_text("utf-8")
        names |= set(re.findall(r"\"(utter_[a-z_]+)\"", text)) - {"utter_action"}
    return names


def _named_in_dialogue() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "data").rglob("*.yml"):
        names |= set(re.findall(r"action: (utter_[a-z_]+)", path.read_text("utf-8")))
    return names


def test_every_response_named_in_code_exists() -> None:
    responses = set(_domain()["responses"])
    missing = _named_in_code() - responses
    assert not missing, f"actions name responses that domain.yml lacks: {missing}"


def test_no_dead_responses() -> None:
    responses = {r for r in _domain()["responses"]
                 if not r.startswith("utter_faq/")}
    dead = responses - _named_in_code() - _named_in_dialogue()
    assert not dead, f"responses nobody sends: {dead}"


def test_every_response_has_variations_or_is_a_lookup() -> None:
    single = [name for name, variations in _domain()["responses"].items()
              if len(variations) < 2 and not name.startswith(("utter_code_", "utter_fmt_"))
              and name not in {"utter_leaderboard_not_group", "utter_draw_insufficient",
                               "utter_redeem_sold_out", "utter_redeem_shop_closed"}]
    assert not single, f"add a second wording so the bot does not repeat itself: {single}"


def test_no_chinese_in_python() -> None:
    """Member-facing Chinese lives in domain.yml only (docstrings/comments excepted).

    The simulator is a stand-in for WeCom and its users, not the bot: its sample member
    names are exempt.
    """
    cjk = re.compile(r"[\u4e00-\u9fff]")
    bot_code = [p for p in (ROOT / "bot").rglob("*.py") if "simulator" not in p.parts]
    for path in [*(ROOT / "actions").glob("*.py"), *bot_code]:
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            strings = re.findall(r"\"[^\"]*\"|'[^']*'", code)
            if any(cjk.search(s) for s in strings) and '"""' not in line:
                raise AssertionError(f"{path.name}:{number} has Chinese in code: {line.strip()}")
