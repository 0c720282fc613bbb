"""群设置: each group's name and welcome, and whom handoffs @, edited as a form.

data/groups.yml is the file the bridge posts by (reloaded live, qunzhu.liveconfig). Webhook
keys are passwords: the form never shows or writes them, and a deployment that keeps its
groups in a private file (BRIDGE_GROUPS_FILE outside the project, with inline keys) is shown
read-only here, since the console's commits would not reach the file the bridge reads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ruamel.yaml.error import YAMLError

from console import yamlform
from console.trainingdata import Change, TeachError
from console.yamlform import Field, Section
from qunzhu.groupsfile import GroupsFile
from qunzhu.yamlconfig import ConfigError, load_yaml, validate

GROUPS_FILE = Path("data/groups.yml")
INLINE_KEY = re.compile(r"^\s*-?\s*webhook_key\s*:\s*\S", re.MULTILINE)  # not _env


def editable(root: Path, groups_file: Path) -> bool:
    """Whether the console may edit the groups: the bridge reads the project's own file, that
    file is not a link to a private one, and it holds no webhook key (a commit would put
    the key in git, a diff would show it)."""
    own = root / GROUPS_FILE
    if own.is_symlink() or groups_file.resolve() != own.resolve():
        return False
    try:
        return not INLINE_KEY.search(own.read_text("utf-8"))
    except OSError:
        return False


def _load(root: Path) -> Any:
    return yamlform.yaml().load((root / GROUPS_FILE).read_text("utf-8"))


def sections(doc: Any) -> tuple[Section, ...]:
    """One section per group, and the staff group's mentions."""
    out = []
    for group in doc.get("groups") or []:
        chatid = str(group.get("chatid"))
        title = str(group.get("name") or chatid)
        prefix = ("groups", f"#{chatid}")
        out.append(Section(title, (
            Field((*prefix, "name"), f"{title} · 群名", short="群名（运营台和机器人回复里显示）",
                  optional=True),
            Field((*prefix, "welcome_newcomers"), f"{title} · 新人进群时欢迎", "flag",
                  short="新人进群时，机器人发欢迎语"),
        ), note=f"群 ID {chatid}"))
    if isinstance(doc.get("staff"), dict):
        out.append(Section("转人工", (
            Field(("staff", "mention"), "转人工 · 要 @ 的客服账号", "ids",
                  short="要 @ 的客服账号（企业微信账号，用顿号隔开）", optional=True),
        ), note=f"转人工请求发到群 {doc['staff'].get('chatid')}"))
    return tuple(out)


def current(root: Path) -> tuple[tuple[Section, ...], dict[str, str]]:
    """The sections and the values the file has now (a TeachError if it cannot be shown)."""
    try:
        doc = _load(root)
        found = sections(doc)
        return found, yamlform.read(doc, [f for s in found for f in s.fields])
    except TeachError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError, YAMLError, OSError) as exc:
        raise TeachError(f"{GROUPS_FILE} 现在有错误，这里没法显示（{type(exc).__name__}）："
                         "请在“改动历史”里撤销最近的改动，或请开发同事修好它。") from None


def edit(root: Path, values: dict[str, str]) -> tuple[Change, dict[str, list[str]]]:
    """The new groups file for these values, checked as the bridge loads it; what changed."""
    current(root)  # a file the form cannot show is said so
    doc = _load(root)
    fields = [f for s in sections(doc) for f in s.fields]
    changed = yamlform.apply(doc, fields, values)
    if not changed:
        raise TeachError("没有改动：每一项都和现在一样")
    text = yamlform.dump(doc)
    try:
        validate(root / GROUPS_FILE, load_yaml(root / GROUPS_FILE, text), GroupsFile, None)
    except ConfigError as exc:
        raise TeachError("保存前检查没通过：" + yamlform.explain(exc, doc, fields)) from None
    return Change({GROUPS_FILE: text}, "修改群设置：" + "、".join(changed)), changed
