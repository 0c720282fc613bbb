"""Operator YAML: the shipped files load, and mistakes name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from actions.config import ConfigError, load_brand, load_games

SHIPPED = Path(__file__).resolve().parent.parent / "data" / "games.yml"


def test_shipped_files_are_valid() -> None:
    assert load_brand().stores
    games = load_games()
    assert games.lucky_draw.consolation.kind == "nothing"


def _games_with(tmp_path: Path, old: str, new: str) -> Path:
    text = SHIPPED.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "games.yml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.mark.parametrize(("old", "new", "field"), [
    ("stock: 500", "stock: -5", "coupons[0].stock"),
    ("per_member_limit: 1", "per_member_limit: zero", "coupons[0].per_member_limit"),
    ("kind: points", "kind: cash", "lucky_draw.prizes[2].kind"),
    ("base_points: 5", "base_points: 5\n  surprise: 1", "checkin.surprise"),
    ("ends: 2027-12-31 23:59", "ends: 2025-01-01 00:00", "coupons[0]"),
    ("starts: 2026-01-01 00:00", "starts: next monday", "coupons[0].starts"),
])
def test_errors_name_file_line_and_field(tmp_path: Path, old: str, new: str,
                                         field: str) -> None:
    path = _games_with(tmp_path, old, new)
    with pytest.raises(ConfigError) as err:
        load_games(path)
    message = str(err.value)
    assert str(path) in message and f": {field}" in message, message
    first_new_line = new.splitlines()[-1].strip()
    if field != "coupons[0]":
        assert f":{_line_of(path, first_new_line)}:" in message, message


def test_consolation_prize_is_required(tmp_path: Path) -> None:
    path = _games_with(tmp_path, "kind: nothing", "kind: points\n      points: 1")
    with pytest.raises(ConfigError, match=r"lucky_draw\.prizes.*kind: nothing"):
        load_games(path)


def test_broken_yaml_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "games.yml"
    broken.write_text("checkin:\n  base_points: [1,\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"games.yml:\d+"):
        load_games(broken)
    with pytest.raises(ConfigError, match="cannot read"):
        load_games(tmp_path / "missing.yml")
