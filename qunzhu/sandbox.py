"""The sandbox group's people, shared by the simulator's page and the terminal chat.

Both speak as the same members (小红 is `xiaohong` in either), so the leaderboard and the
name directory see one person, not two.
"""

from __future__ import annotations

SANDBOX_GROUP = "sandbox"
STAFF_GROUP = "staff"
SANDBOX_MEMBERS: tuple[tuple[str, str], ...] = (
    ("xiaoming", "小明"), ("xiaohong", "小红"), ("aqiang", "阿强"), ("lili", "莉莉"),
)
STAFF_MEMBERS: tuple[tuple[str, str], ...] = (("kefu01", "客服小周"),)


def member_id(name_or_id: str) -> str | None:
    """The sandbox member a name (小红) or id (xiaohong) means, if any."""
    wanted = name_or_id.strip()
    for userid, name in SANDBOX_MEMBERS:
        if wanted in (userid, name):
            return userid
    return None


# Customer groups (外部群) in the simulator. No robot can be in them: their owners, employees,
# confirm the brand's 群发 in their WeCom client, and WeCom sends the welcome templates itself.
# (chat id, name after the brand's, owner's userid); data/customer_groups.yml names these.
CUSTOMER_OWNERS: tuple[tuple[str, str], ...] = (("zhangdian", "张店长"), ("lidian", "李店长"))
CUSTOMER_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("wrSandboxVip0001", "会员福利群①", "zhangdian"),
    ("wrSandboxVip0002", "会员福利群②", "zhangdian"),
    ("wrSandboxStore03", "静安寺店顾客群", "lidian"),
)
CUSTOMER_MEMBERS: tuple[tuple[str, str], ...] = (
    ("wmSandboxGuest01", "阿花"), ("wmSandboxGuest02", "大伟"), ("wmSandboxGuest03", "Coco"),
)
