"""Which groups the bridge can post into, through which robot, and where handoffs go.

Webhook keys are passwords: they come from an environment variable named in the file
(or inline in a copy kept out of git) and are never printed — a group is named by its
chatid everywhere else.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from qunzhu.groupsfile import GroupEntry, GroupsFile, StaffEntry
from qunzhu.yamlconfig import ConfigError, load_yaml, validate

__all__ = ["Directory", "GroupEntry", "GroupsFile", "Robot", "StaffEntry", "load_directory"]


@dataclass(frozen=True)
class Robot:
    """A group's robot: its chatid, display name and webhook key (never printed)."""

    chatid: str
    name: str
    key: str
    welcome_newcomers: bool
    tags: tuple[str, ...] = ()

    @property
    def robot_id(self) -> str:
        """A stable non-secret id for the robot's rate-limit bucket and logs."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        """Leave the key out."""
        return f"Robot(chatid={self.chatid!r}, robot_id={self.robot_id!r})"


@dataclass(frozen=True)
class Directory:
    """Robots by chatid, and the staff destination."""

    robots: dict[str, Robot]
    staff_chatid: str
    staff_mention: tuple[str, ...]
    unkeyed: tuple[str, ...] = ()  # listed groups whose key variable is unset: posts refused

    def robot(self, chatid: str) -> Robot | None:
        """The robot that posts into this group, if we have one."""
        return self.robots.get(chatid)

    def tags(self) -> dict[str, list[str]]:
        """Every group the bridge can post into, with its tags (what campaigns target)."""
        return self._tags

    @cached_property
    def _tags(self) -> dict[str, list[str]]:
        """Built once per loaded file (the scheduler asks every second)."""
        return {chatid: list(robot.tags) for chatid, robot in self.robots.items()}


def load_directory(path: Path, env: dict[str, str] | None = None,
                   text: str | None = None) -> Directory:
    """Load and validate the groups file (from `text` if given); unset keys are listed."""
    env = dict(os.environ) if env is None else env
    parsed: GroupsFile = validate(path, load_yaml(path, text), GroupsFile, None)
    robots: dict[str, Robot] = {}
    missing: list[str] = []
    for entry in parsed.groups:
        if entry.chatid in robots:
            raise ConfigError(f"{path}: groups: chatid {entry.chatid!r} appears twice")
        key = entry.webhook_key or env.get(entry.webhook_key_env, "")
        if not key:
            missing.append(f"{entry.chatid} (set {entry.webhook_key_env})")
            continue
        robots[entry.chatid] = Robot(entry.chatid, entry.name, key, entry.welcome_newcomers,
                                     tuple(entry.tags))
    staff = parsed.staff
    return Directory(
        robots=robots,
        staff_chatid=staff.chatid if staff else "",
        staff_mention=tuple(staff.mention) if staff else (),
        unkeyed=tuple(missing),
    )
