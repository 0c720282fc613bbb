"""`make validate` tells an operator about a campaign naming a coupon, group or tag that
the other files lack — before the bridge would skip its posts."""

from __future__ import annotations

from pathlib import Path

from qunzhu.campaigns import CampaignsFile
from qunzhu.config import load_games
from qunzhu.groupsfile import GroupsFile
from qunzhu.tools.validate import campaign_references, main

GROUPS = GroupsFile.parse_obj({"groups": [
    {"chatid": "g1", "webhook_key_env": "K1", "tags": ["north"]},
    {"chatid": "g2", "webhook_key_env": "K2"}]})


def test_missing_coupons_groups_and_tags_are_named_with_the_campaign() -> None:
    campaigns = CampaignsFile.parse_obj({
        "budget_by_group": {"gone": {"promo_per_day": 1}},
        "campaigns": [
            {"id": "a", "name": "A", "text": "{券名}", "coupon": "no_such_coupon",
             "schedule": {"daily": "09:00"}, "promotional": True, "groups": ["g1", "g9"]},
            {"id": "b", "name": "B", "text": "hi", "schedule": {"daily": "09:00"},
             "promotional": False, "tags": ["north", "south"]},
            {"id": "c", "name": "C", "text": "{券名}", "coupon": "cut_30_5",
             "schedule": {"daily": "09:00"}, "promotional": True}]})
    problems = campaign_references(campaigns, load_games(), GROUPS, Path("data/campaigns.yml"))
    assert problems == [
        "data/campaigns.yml: campaigns[0] (a): coupon: no coupon 'no_such_coupon' in games.yml",
        "data/campaigns.yml: campaigns[0] (a): groups: no group 'g9' in groups.yml",
        "data/campaigns.yml: campaigns[1] (b): tags: no group has the tag 'south' in groups.yml",
        "data/campaigns.yml: budget_by_group: no group 'gone' in groups.yml"]


def test_the_shipped_files_and_built_in_templates_are_valid() -> None:
    assert main([]) == 0
