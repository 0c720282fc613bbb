"""The action server refuses to start on invalid operator YAML, with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_action_server_refuses_bad_games_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "games.yml"
    bad.write_text(
        (ROOT / "data" / "games.yml").read_text(encoding="utf-8").replace(
            "daily_limit: 1", "daily_limit: 0"),
        encoding="utf-8",
    )
    env = {**os.environ, "QZ_GAMES_FILE": str(bad), "QZ_ACTIONS_PORT": "1"}
    proc = subprocess.run([sys.executable, "-m", "actions"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "refusing to start" in proc.stderr
    assert f"{bad}:" in proc.stderr and "lucky_draw.daily_limit" in proc.stderr
    assert "Traceback" not in proc.stderr
