"""An operator's mistake never silences the groups: last good config serves, reloads are live."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qunzhu.config import Games, load_games
from qunzhu.liveconfig import LiveFile
from qunzhu.tools import validate
from qunzhu.yamlconfig import ConfigError

ROOT = Path(__file__).resolve().parent.parent
GOOD = (ROOT / "data" / "games.yml").read_text(encoding="utf-8")


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    past = time.time() - 5  # as if saved a moment ago and settled
    os.utime(path, (past, past))


def _live(tmp_path: Path) -> LiveFile[Games]:
    return LiveFile("games", tmp_path / "games.yml", load_games, keep=tmp_path / "keep",
                    check_every_s=0)


def test_a_valid_edit_goes_live_without_a_restart(tmp_path: Path) -> None:
    _write(tmp_path / "games.yml", GOOD)
    live = _live(tmp_path)
    assert live.value.checkin.base_points == 5
    _write(tmp_path / "games.yml", GOOD.replace("base_points: 5", "base_points: 8"))
    assert live.value.checkin.base_points == 8 and live.problem is None


def test_a_bad_edit_is_reported_and_the_last_good_version_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "games.yml"
    _write(path, GOOD)
    live = _live(tmp_path)
    _write(path, GOOD.replace("daily_limit: 1", "daily_limit: 0"))
    assert live.value.lucky_draw.daily_limit == 1
    assert live.problem is not None
    assert f"{path}:" in live.problem.message and "lucky_draw.daily_limit" in live.problem.message
    assert sum("lucky_draw.daily_limit" in r.getMessage() for r in caplog.records) == 1
    live.refresh()  # the same mistake is not logged again
    assert sum("lucky_draw.daily_limit" in r.getMessage() for r in caplog.records) == 1
    _write(path, GOOD.replace("base_points: 5", "base_points: 6"))  # fixed
    assert live.value.checkin.base_points == 6 and live.problem is None


def test_a_restart_with_a_bad_file_serves_the_last_good_copy(tmp_path: Path) -> None:
    path = tmp_path / "games.yml"
    _write(path, GOOD.replace("base_points: 5", "base_points: 7"))
    _live(tmp_path)  # a good start keeps a copy
    _write(path, "checkin: [broken\n")
    restarted = _live(tmp_path)
    assert restarted.value.checkin.base_points == 7
    assert restarted.problem is not None and "games.yml:" in restarted.problem.message


def test_no_good_version_ever_refuses_to_start(tmp_path: Path) -> None:
    _write(tmp_path / "games.yml", "checkin: [broken\n")
    with pytest.raises(ConfigError, match=r"games\.yml:\d+"):
        _live(tmp_path)


def test_a_deleted_file_keeps_serving(tmp_path: Path) -> None:
    path = tmp_path / "games.yml"
    _write(path, GOOD)
    live = _live(tmp_path)
    path.unlink()
    assert live.value.checkin.base_points == 5
    assert live.problem is not None and "cannot read" in live.problem.message


def test_a_file_still_being_written_is_not_read_yet(tmp_path: Path) -> None:
    path = tmp_path / "games.yml"
    _write(path, GOOD)
    live = _live(tmp_path)
    path.write_text("checkin: [half-writ", encoding="utf-8")  # mtime: now
    assert live.value.checkin.base_points == 5 and live.problem is None


def test_make_validate_prints_file_line_field_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "games.yml"
    bad.write_text(GOOD.replace("stock: 500", "stock: -5"), encoding="utf-8")
    env = {**os.environ, "QZ_GAMES_FILE": str(bad)}
    proc = subprocess.run([sys.executable, "-m", "qunzhu.tools.validate"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    line = next(i for i, t in enumerate(bad.read_text().splitlines(), 1) if "stock: -5" in t)
    assert f"{bad}:{line}: coupons[0].stock: " in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert validate.main([]) == 0  # the shipped files are fine


def test_action_server_starts_on_the_last_good_copy(tmp_path: Path) -> None:
    games = tmp_path / "games.yml"
    games.write_text(GOOD, encoding="utf-8")
    env = {**os.environ, "QZ_GAMES_FILE": str(games), "QZ_DATA_DIR": str(tmp_path / "data"),
           "QZ_ACTIONS_PORT": "1"}
    LiveFile("games", games, load_games, keep=tmp_path / "data" / "config")
    games.write_text(GOOD.replace("daily_limit: 1", "daily_limit: 0"), encoding="utf-8")
    code = ("import sys; from actions import config; config.live_files(); "
            "print(config.games().lucky_draw.daily_limit)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"
    assert "lucky_draw.daily_limit" in proc.stderr  # reported, with file:line:field


@pytest.mark.parametrize("broken", ["2026: x\n", "checkin:\n  2026-01-01: 5\n", "- a\n- b\n",
                                    "x: " + "[" * 5000 + "]" * 5000 + "\n"])
def test_any_malformed_file_is_a_reported_problem_never_a_crash(
    tmp_path: Path, broken: str,
) -> None:
    path = tmp_path / "games.yml"
    _write(path, GOOD)
    live = _live(tmp_path)
    _write(path, broken)
    assert live.value.checkin.base_points == 5
    assert live.problem is not None and "games.yml" in live.problem.message
    restarted = _live(tmp_path)  # and a restart on it serves the last good copy
    assert restarted.value.checkin.base_points == 5


def test_brand_id_cannot_change_under_a_running_process(tmp_path: Path) -> None:
    from qunzhu.config import brand_loader

    text = (ROOT / "data" / "brand.yml").read_text(encoding="utf-8")
    path = tmp_path / "brand.yml"
    _write(path, text)
    live = LiveFile("brand", path, brand_loader(), keep=tmp_path / "keep", check_every_s=0)
    _write(path, text.replace("id: xiaoman", "id: other").replace("name: 小满咖啡", "name: 新名"))
    assert live.value.id == "xiaoman" and live.value.name == "小满咖啡"
    assert live.problem is not None and "brand.id" in live.problem.message
