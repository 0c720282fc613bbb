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
from qunzhu.campaign_templates import WORDINGS, builtin_examples, validated
from qunzhu.campaigns import CampaignsFile, campaigns_file, load_campaigns
from qunzhu.config import Games, brand_file, games_file, load_brand, load_games
from qunzhu.customergroups import customer_groups_file, load_customer_groups
from qunzhu.groupsfile import GroupsFile
from qunzhu.settings import shown_path
from qunzhu.yamlconfig import ConfigError, load_yaml, validate


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


def campaign_references(campaigns: CampaignsFile, games: Games, groups: GroupsFile,
                        path: Path) -> list[str]:
    """What the campaigns name that the other files lack: a coupon, a group, a tag.

    The bridge would skip such a post with a reason; an operator is better told now.
    """
    coupons = {c.id for c in games.coupons}
    chatids = {g.chatid for g in groups.groups}
    tags = {t for g in groups.groups for t in g.tags}
    shown = shown_path(path)
    problems = []
    for n, campaign in enumerate(campaigns.campaigns):
        where = f"{shown}: campaigns[{n}] ({campaign.id})"
        if campaign.coupon and campaign.coupon not in coupons:
            problems.append(f"{where}: coupon: no coupon {campaign.coupon!r} in games.yml")
        if campaign.groups != "all":
            problems += [f"{where}: groups: no group {c!r} in groups.yml"
                         for c in campaign.groups if c not in chatids]
        problems += [f"{where}: tags: no group has the tag {t!r} in groups.yml"
                     for t in campaign.tags if t not in tags]
    problems += [f"{shown}: budget_by_group: no group {c!r} in groups.yml"
                 for c in campaigns.budget_by_group if c not in chatids]
    return problems


def main(argv: list[str] | None = None) -> int:
    """Validate brand, games, groups and campaigns; 0 when all are good."""
    groups_path = settings.project_path("BRIDGE_GROUPS_FILE")
    files: list[tuple[Path, Callable[[Path], Any]]] = [
        (brand_file(), load_brand), (games_file(), load_games),
        (groups_path, _load_groups), (campaigns_file(), load_campaigns),
        (customer_groups_file(), load_customer_groups),
        (WORDINGS, lambda _path: validated(builtin_examples()))]
    problems = check(files)
    if not problems:
        groups_file: GroupsFile = validate(groups_path, load_yaml(groups_path, None),
                                           GroupsFile, None)
        problems = campaign_references(load_campaigns(), load_games(), groups_file,
                                       campaigns_file())
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"operator YAML: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("operator YAML: ok (" + ", ".join(shown_path(p) for p, _ in files) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
