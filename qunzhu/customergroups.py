"""Customer groups (data/customer_groups.yml): what qunzhu asks WeCom to do in 外部群.

Robots cannot be in customer groups, so this file holds only what WeCom's official routes
allow, validated like the other operator files (file:line:field):

- `welcome_templates:` — 入群欢迎语素材 the bridge keeps in the corp's library (added, edited,
  deleted as this list changes; it never touches a template it did not create). Each has a
  stable local `id`; WeCom's template_id is remembered per id in Redis.
- `mass_sends:` — owner-confirmed 企业群发: at `send_at` (once, Asia/Shanghai) the bridge asks
  each group's owner to send `text` to the listed groups (`groups:` chat ids, and/or every
  customer group of the employees in `owners:`), skipping a group that already had its
  month's 群发 (as many as the month has days), then follows the results.

WeCom's limits (in UTF-8 bytes) are repeated here so a mistake is told before anything is
sent; the bridge's protocol library (bot.wecom.customer_api) holds the same numbers.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field, root_validator, validator

from qunzhu import settings
from qunzhu.config import SHANGHAI
from qunzhu.yamlconfig import Strict, load_yaml, validate

__all__ = ["CustomerGroupsFile", "LinkSpec", "MassSend", "WelcomeTemplate",
           "customer_groups_file", "load_customer_groups"]

MAX_WELCOME_TEMPLATES = 100  # per corp (doc 92366)
WELCOME_TEXT_MAX_BYTES = 3000
LINK_TITLE_MAX_BYTES = 128
LINK_DESC_MAX_BYTES = 512
MASS_TEXT_MAX_BYTES = 4000  # add_msg_template text.content (doc 92135)
_ID = r"^[a-z0-9_]+$"
_URL = re.compile(r"^https?://\S+$")


def _bytes(value: str, limit: int) -> str:
    size = len(value.encode("utf-8"))
    if size > limit:
        raise ValueError(f"WeCom takes at most {limit} bytes here, this is {size} "
                         "(a Chinese character is 3 bytes)")
    return value


class LinkSpec(Strict):
    """A 图文 link shown under a welcome text."""

    title: str = Field(min_length=1)
    url: str
    desc: str | None = None
    picurl: str | None = None

    @validator("title")
    def _title(cls, value: str) -> str:
        return _bytes(value, LINK_TITLE_MAX_BYTES)

    @validator("desc")
    def _desc(cls, value: str | None) -> str | None:
        return None if value is None else _bytes(value, LINK_DESC_MAX_BYTES)

    @validator("url", "picurl")
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not _URL.match(value):
            raise ValueError("expected an http:// or https:// address")
        return value


class WelcomeTemplate(Strict):
    """A welcome template in the corp's library (WeCom sends it to joiners itself)."""

    id: str = Field(regex=_ID, max_length=40)  # stable: renaming it replaces the template
    text: str = Field(min_length=1)  # %NICKNAME% becomes the joiner's nickname
    link: LinkSpec | None = None
    notify: bool = True  # when added, WeCom tells group owners they may apply it

    @validator("text")
    def _text(cls, value: str) -> str:
        return _bytes(value, WELCOME_TEXT_MAX_BYTES)


class MassSend(Strict):
    """One owner-confirmed 群发 to customer groups, once."""

    id: str = Field(regex=_ID, max_length=40)
    name: str = Field(min_length=1, max_length=40)
    text: str = Field(min_length=1)
    groups: list[str] = Field(default_factory=list)  # customer group chat ids (wr…)
    owners: list[str] = Field(default_factory=list)  # employees: every group they own
    send_at: datetime  # local time, Asia/Shanghai
    grace_minutes: int = Field(60, ge=0, le=24 * 60)  # still asked this late (bridge down)
    results_hours: int = Field(72, ge=1, le=30 * 24)  # owners have this long to confirm
    enabled: bool = True

    @validator("text")
    def _text(cls, value: str) -> str:
        return _bytes(value, MASS_TEXT_MAX_BYTES)

    @validator("send_at", pre=True)
    def _local(cls, value: Any) -> datetime:
        if isinstance(value, datetime):
            parsed = value
        else:
            try:
                parsed = datetime.fromisoformat(str(value).strip().replace("/", "-"))
            except ValueError:
                raise ValueError("expected a time like 2026-12-01 12:00") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=SHANGHAI)

    @validator("groups", "owners", each_item=True)
    def _name(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError("expected an id without spaces")
        return value

    @root_validator(skip_on_failure=True)
    def _targets(cls, values: dict[str, Any]) -> dict[str, Any]:
        if not values.get("groups") and not values.get("owners"):
            raise ValueError("name the groups (chat ids) or their owners (userids), or both")
        for where in ("groups", "owners"):
            items = values.get(where) or []
            dupes = sorted({i for i in items if items.count(i) > 1})
            if dupes:
                raise ValueError(f"{where}: listed twice: {', '.join(dupes)}")
        return values


class CustomerGroupsFile(Strict):
    """The whole data/customer_groups.yml."""

    welcome_templates: list[WelcomeTemplate] = Field(default_factory=list)
    mass_sends: list[MassSend] = Field(default_factory=list)

    @root_validator(skip_on_failure=True)
    def _unique(cls, values: dict[str, Any]) -> dict[str, Any]:
        problems = []
        templates = values.get("welcome_templates") or []
        if len(templates) > MAX_WELCOME_TEMPLATES:
            problems.append(f"welcome_templates: WeCom keeps at most {MAX_WELCOME_TEMPLATES} "
                            f"per corp, this lists {len(templates)}")
        for where, items in (("welcome_templates", templates),
                             ("mass_sends", values.get("mass_sends") or [])):
            ids = [item.id for item in items]
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                problems.append(f"{where}: duplicate id {', '.join(dupes)}")
        if problems:
            raise ValueError("; ".join(problems))
        return values

    def send(self, send_id: str) -> MassSend | None:
        """A mass send by id."""
        return next((s for s in self.mass_sends if s.id == send_id), None)


def customer_groups_file() -> Path:
    """Where the customer groups' file is (QZ_CUSTOMER_GROUPS_FILE)."""
    return settings.project_path("QZ_CUSTOMER_GROUPS_FILE")


def load_customer_groups(path: Path | None = None, text: str | None = None
                         ) -> CustomerGroupsFile:
    """Load and validate the file (from `text` if given, named `path`); empty is valid."""
    path = path or customer_groups_file()
    raw = load_yaml(path, text)
    if raw is None:
        return CustomerGroupsFile()
    loaded: CustomerGroupsFile = validate(path, raw, CustomerGroupsFile, None)
    return loaded
