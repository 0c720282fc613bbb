"""The groups file's schema (data/groups.yml): the bridge posts by it, the console names by it.

Only the schema and the names live here; webhook keys are resolved by the bridge alone.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, root_validator

from qunzhu.yamlconfig import ConfigError, Strict, load_yaml, validate


class GroupEntry(Strict):
    """One group and its robot."""

    chatid: str = Field(min_length=1, max_length=128)
    name: str = ""
    webhook_key: str = ""
    webhook_key_env: str = ""
    welcome_newcomers: bool = False
    tags: list[str] = Field(default_factory=list)  # campaigns and budgets target groups by tag

    @root_validator(skip_on_failure=True)
    def _one_key_source(cls, values: dict[str, object]) -> dict[str, object]:
        if bool(values.get("webhook_key")) == bool(values.get("webhook_key_env")):
            raise ValueError("give exactly one of webhook_key or webhook_key_env")
        return values


class StaffEntry(Strict):
    """Where handoff requests are delivered."""

    chatid: str = Field(min_length=1)
    mention: list[str] = Field(default_factory=list)


class GroupsFile(Strict):
    """The whole groups YAML."""

    groups: list[GroupEntry] = Field(default_factory=list)
    staff: StaffEntry | None = None


def group_names(path: Path) -> dict[str, str]:
    """Each listed group's display name by chatid (its chatid when it has none); {} when the
    file cannot be read — names are a courtesy, never a reason to fail a page."""
    try:
        parsed: GroupsFile = validate(path, load_yaml(path, None), GroupsFile, None)
    except (ConfigError, OSError):
        return {}
    return {g.chatid: g.name or g.chatid for g in parsed.groups}
