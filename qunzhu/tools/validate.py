"""`make validate`: check the operator files and print each problem as file:line: field: message.

Exits 1 when a file is invalid, without a traceback: the output is for the operator who
just edited the file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qunzhu import settings
from qunzhu.campaigns import campaigns_file, load_campaigns
from qunzhu.config import brand_file, games_file, load_brand, load_games
from qunzhu.settings import shown_path
from qunzhu.yamlconfig import ConfigError


def _load_groups(path: Path) -> Any:
    from bot.common.groups import load_directory  # the groups schema lives with the bridge

    return load_directory(path, env={})


def check(files: list[tuple[Path, Callable[[Path], Any]]]) -> list[str]:
    """Every problem of every file, one line each, paths as operators know them."""
    problems: list[str] = []
    for path, load in files:
        try:
            load(path)
        except ConfigError as exc:
            shown = shown_path(path)
            problems += [line.replace(str(path), shown) for line in str(exc).splitlines()]
    return problems


def main(argv: list[str] | None = None) -> int:
    """Validate brand, games, groups and campaigns; 0 when all are good."""
    files: list[tuple[Path, Callable[[Path], Any]]] = [
        (brand_file(), load_brand), (games_file(), load_games),
        (settings.project_path("BRIDGE_GROUPS_FILE"), _load_groups),
        (campaigns_file(), load_campaigns)]
    problems = check(files)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"operator YAML: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("operator YAML: ok (" + ", ".join(shown_path(p) for p, _ in files) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
