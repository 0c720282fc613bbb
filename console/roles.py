"""Who may do what: four roles, each allowed everything the one before it is."""

from __future__ import annotations

from enum import IntEnum


class Role(IntEnum):
    """Operator roles, weakest first; a role includes every weaker one."""

    VIEWER = 1  # reads dashboards, exports CSV
    EDITOR = 2  # edits answers, games, campaigns, groups
    PUBLISHER = 3  # publishes a new model, rolls back
    ADMIN = 4  # manages accounts, reads the audit log

    @classmethod
    def parse(cls, name: str) -> Role:
        """A role from its name ("viewer" …); ValueError when there is no such role."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"no role {name!r}") from None

    @property
    def label(self) -> str:
        """How the console names the role."""
        return {Role.VIEWER: "查看", Role.EDITOR: "编辑", Role.PUBLISHER: "发布",
                Role.ADMIN: "管理员"}[self]
