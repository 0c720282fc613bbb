"""Operator YAML as a form: read fields, apply what was typed, explain refusals in Chinese.

One module for every settings page (brand facts, game rules, groups). A field is a path into
the file's mapping; `#<id>` selects the list item with that id (or chatid), so a coupon keeps
its field when the list is reordered. Values are written into ruamel.yaml's round-trip document, so
comments, order, quoting and flow style stay as the team wrote them and the diff shows only
what the operator changed. The file is then loaded by the same model the bot loads it with;
its file:line:field errors are translated back into the labels the operator sees.
"""

from __future__ import annotations

import copy
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.tokens import ScalarToken

from console.trainingdata import TeachError
from qunzhu.config import SHANGHAI
from qunzhu.yamlconfig import ConfigError

# text / long (a textarea) / int / number / time / words (names, 、-separated) / numbers
# (integers, 、-separated) / ids (account names: spaces separate too) / flag (a checkbox) /
# date (a local day, 2026-12-01)
Kind = Literal["text", "long", "int", "number", "time", "words", "numbers", "ids", "flag",
               "date"]
PathPart = str | int
MAX_VALUE = 2000
ID_KEYS = ("id", "chatid")  # what names a list item: a coupon's id, a group's chatid
WORD_SEPARATORS = re.compile(r"[、,，;；\n]+")
ID_SEPARATORS = re.compile(r"[、,，;；\s]+")


@dataclass(frozen=True)
class Field:
    """One value an operator may change, and how it is written."""

    path: tuple[PathPart, ...]  # from the form's base mapping; "#id" picks a list item
    label: str  # the whole name, used in errors and the audit log: "满30减5券 · 库存"
    kind: Kind = "text"
    short: str = ""  # the name inside its section of the form: "库存"
    optional: bool = False  # may be left empty (for a number: removed, meaning "no limit")
    help: str = ""
    default: Any = None  # what the bot takes when the key is absent (a campaign is enabled)

    @property
    def key(self) -> str:
        """The form input's name."""
        return ".".join(str(p) for p in self.path)

    @property
    def long(self) -> bool:
        return self.kind == "long"

    @property
    def number(self) -> bool:
        return self.kind in ("int", "number")

    @property
    def name(self) -> str:
        return self.short or self.label


@dataclass(frozen=True)
class Section:
    """Fields shown together under a title (one coupon, one prize)."""

    title: str
    fields: tuple[Field, ...]
    note: str = ""


@dataclass(frozen=True)
class Form:
    """A page's sections and the values to show in them."""

    sections: tuple[Section, ...]
    values: dict[str, str]


def yaml() -> YAML:
    """A round-trip YAML that writes lines as wide as the team does."""
    y = YAML()
    y.preserve_quotes = True  # type: ignore[assignment]
    y.width = 4096  # type: ignore[assignment]
    y.indent(mapping=2, sequence=4, offset=2)
    return y


# ruamel.yaml before 0.17.22 (Rasa 3.6 pins <0.17.22) escapes every character beyond the
# BMP in a double-quoted scalar: "🎉" would be written back as "\U0001F389".
_ESCAPED_ASTRAL = re.compile(r"(?<!\\)((?:\\\\)*)\\U(0001[0-9A-Fa-f]{4}"
                             r"|000[2-9A-Fa-f][0-9A-Fa-f]{4}|0010[0-9A-Fa-f]{4})")


def dump(doc: Any) -> str:
    """The document as text, emoji written as themselves (the same data either way)."""
    out = io.StringIO()
    yaml().dump(doc, out)
    text = out.getvalue()
    if "\\U" not in text:
        return text
    kept = _unescape_astral(text)
    return kept if YAML(typ="safe").load(kept) == YAML(typ="safe").load(text) else text


def _unescape_astral(text: str) -> str:
    """Each double-quoted scalar's escaped emoji as the emoji (comments and other scalars,
    where a backslash means itself, are left alone)."""
    spans = [(token.start_mark.index, token.end_mark.index) for token in YAML().scan(text)
             if isinstance(token, ScalarToken) and token.style == '"']
    parts, done = [], 0
    for start, end in spans:
        parts += [text[done:start],
                  _ESCAPED_ASTRAL.sub(lambda m: m[1] + chr(int(m[2], 16)), text[start:end])]
        done = end
    return "".join(parts) + text[done:]


def _step(node: Any, part: PathPart) -> Any:
    if isinstance(part, str) and part.startswith("#") and isinstance(node, list):
        return node[_index(node, part[1:])]
    return node[part]


def _index(items: list[Any], ident: str) -> int:
    for i, item in enumerate(items):
        if isinstance(item, Mapping) and any(k in item and str(item[k]) == ident
                                             for k in ID_KEYS):
            return i
    raise TeachError(f"找不到 {ident}：可能刚被别人改过，请刷新页面再试")


def parent_of(base: Any, path: tuple[PathPart, ...]) -> Any:
    """The mapping that holds the field's value."""
    node = base
    for part in path[:-1]:
        node = _step(node, part)
    return node


def loc(base: Any, path: tuple[PathPart, ...]) -> str:
    """The field as qunzhu.yamlconfig names it in errors: coupons[0].stock."""
    out, node = "", base
    for part in path:
        if isinstance(part, str) and part.startswith("#") and isinstance(node, list):
            index = _index(node, part[1:])
            out += f"[{index}]"
            node = node[index]
        else:
            out += f".{part}" if out else str(part)
            node = node[part] if isinstance(node, Mapping) and part in node else {}
    return out


def show(value: Any, kind: Kind) -> str:
    """A value as the form shows it."""
    if value is None:
        return ""
    if kind in ("words", "numbers", "ids") and isinstance(value, list):
        return "、".join(str(v) for v in value)
    if kind == "flag":
        return "1" if truthy(value) else ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read(base: Any, fields: Iterable[Field]) -> dict[str, str]:
    """Each field's value as the file has it now."""
    out = {}
    for f in fields:
        holder = parent_of(base, f.path)
        out[f.key] = show(holder.get(f.path[-1], f.default) if isinstance(holder, Mapping)
                          else f.default,
                          f.kind)
    return out


def truthy(value: Any) -> bool:
    """A flag as the bot reads it (pydantic's rules: "no", "false", "0", "off" are false)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "n", "off", "f")
    return bool(value)


YEARS = range(2000, 2101)  # a time an operator means; others are typos (and overflow later)


def _time(text: str) -> datetime:
    """A typed time, in the brand's zone (naive means Asia/Shanghai); ValueError if none."""
    when = datetime.fromisoformat(text.strip().replace("/", "-"))
    if when.year not in YEARS:
        raise ValueError("year out of range")
    return when.astimezone(SHANGHAI).replace(tzinfo=None) if when.tzinfo else when


def parse(f: Field, raw: str) -> Any:
    """What the typed text means for this field; a TeachError naming it if it means nothing."""
    raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    text = raw.strip() if f.kind == "long" else " ".join(raw.split())
    if len(text) > MAX_VALUE:
        raise TeachError(f"{f.label}：太长了（最多 {MAX_VALUE} 字）")
    if f.kind == "flag":
        return truthy(text)
    if f.kind in ("int", "number", "time", "numbers", "date"):  # an IME's full-width ５０ and ：
        text = unicodedata.normalize("NFKC", text)
    if not text:
        if f.optional:  # an empty number or list means "none": the key goes
            return (None if f.kind in ("int", "number", "words", "numbers", "ids", "date")
                    else "")
        raise TeachError(f"{f.label}：不能为空")
    if f.kind == "int":
        if not re.fullmatch(r"-?[0-9]+", text):
            raise TeachError(f"{f.label}：请填一个整数（收到：{text[:20]}）")
        return int(text)
    if f.kind == "number":
        try:
            number = float(text) if re.fullmatch(r"[0-9.eE+-]+", text) else float("nan")
        except ValueError:
            number = float("nan")
        if number != number or number in (float("inf"), float("-inf")):
            raise TeachError(f"{f.label}：请填一个数字（收到：{text[:20]}）")
        return int(number) if number.is_integer() else number
    if f.kind == "time":
        try:
            return _time(text).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            raise TeachError(f"{f.label}：时间请写成 2026-01-01 09:00 这样"
                             f"（收到：{text[:20]}）") from None
    if f.kind == "date":
        try:
            day = date.fromisoformat(text.replace("/", "-").replace(".", "-"))
            if day.year not in YEARS:
                raise ValueError("year out of range")
            return day
        except ValueError:
            raise TeachError(f"{f.label}：日期请写成 2026-01-01 这样"
                             f"（收到：{text[:20]}）") from None
    if f.kind in ("words", "numbers", "ids"):
        separators = ID_SEPARATORS if f.kind == "ids" else WORD_SEPARATORS
        words = [w.strip() for w in separators.split(text) if w.strip()]
        if f.kind == "numbers":
            if not all(re.fullmatch(r"[0-9]+", w) for w in words):
                raise TeachError(f"{f.label}：请填整数，用顿号隔开（收到：{text[:20]}）")
            return [int(w) for w in words]
        return words
    return text


def _same(before: Any, after: Any, kind: Kind) -> bool:
    """Whether the typed value is what the file says already (nothing to write)."""
    if kind == "flag":
        return truthy(before) == truthy(after)
    if before is None or after is None:  # an absent key and an emptied field agree
        return all(v is None or v == "" or v == [] for v in (before, after))
    if kind == "time":
        try:
            return _time(show(before, "time")) == _time(str(after))
        except ValueError:
            return False
    if isinstance(before, list) and isinstance(after, list):
        return [str(v) for v in before] == [str(v) for v in after]
    if isinstance(before, bool) or isinstance(after, bool):
        return bool(before) == bool(after)
    if isinstance(before, int | float) and isinstance(after, int | float):
        return float(before) == float(after)
    return show(before, "text") == str(after)


def as_written(before: Any, after: list[Any]) -> CommentedSeq:
    """A new list in the old one's style: [a, b] stays on one line."""
    seq = CommentedSeq(after)
    if before is None or (isinstance(before, CommentedSeq) and before.fa.flow_style()):
        seq.fa.set_flow_style()
    return seq


def _said(value: Any, kind: Kind) -> str:
    """A value as the audit log and the commit say it."""
    if kind == "flag":
        return "是" if truthy(value) else "否"
    return show(value, kind)


def detach_trailing(node: CommentedMap, key: Any) -> Any:
    """Detach the lines after a key's value (blank lines, a comment about what follows) and
    return them as comment tokens to attach elsewhere; a comment on the key's own line stays."""
    tokens = node.ca.items.get(key)
    comment = tokens[2] if tokens and len(tokens) > 2 else None
    text = str(getattr(comment, "value", "")) if comment is not None else ""
    if not text:
        return None
    own, newline, after = text.partition("\n") if text.startswith("#") else ("", "", text)
    if not after:
        return None
    assert comment is not None  # text came from it
    moved = copy.copy(comment)
    moved.value = newline + after if own else text  # its first newline ends the new line
    if own:
        comment.value = own + newline
    else:
        tokens[2] = None
        if not any(tokens):
            node.ca.items.pop(key)
    return [None, None, moved, None]


def append_item(items: CommentedSeq, entry: CommentedMap) -> None:
    """Append after the last item, moving the lines that ended it to the new one."""
    last = items[-1] if len(items) else None
    tokens = None
    if isinstance(last, CommentedMap) and len(last) and len(entry):
        tokens = detach_trailing(last, list(last.keys())[-1])
    items.append(entry)
    if tokens is not None:
        entry.ca.items[list(entry.keys())[-1]] = tokens


def _end_of(node: CommentedMap, key: Any) -> tuple[CommentedMap, Any]:
    """Where the lines after a key's value hang: on the deepest last key of a nested block
    mapping, else on the key itself."""
    inner = node[key]
    if isinstance(inner, CommentedMap) and len(inner) and not inner.fa.flow_style():
        return _end_of(inner, list(inner.keys())[-1])
    return node, key


def _deepest_last(node: CommentedMap) -> tuple[CommentedMap, Any] | None:
    """Where the lines that follow a whole mapping hang (None: it is empty)."""
    return _end_of(node, list(node.keys())[-1]) if len(node) else None


def attach_after(node: CommentedMap, key: Any, tokens: Any) -> None:
    """Hang detached lines (detach_trailing's) after a key's value, after any already there."""
    holder, at = _end_of(node, key)
    existing = holder.ca.items.get(at)
    current = existing[2] if existing and len(existing) > 2 else None
    if current is not None and str(getattr(current, "value", "")):
        merged = copy.copy(current)  # its own text already ends the key's line
        # one blank line where the lines of two places meet, not two
        merged.value = re.sub(r"\n{3,}", "\n\n", str(current.value) + str(tokens[2].value)[1:])
        existing[2] = merged
    elif existing:
        existing[2] = tokens[2]
    else:
        holder.ca.items[at] = tokens


def add_last(node: CommentedMap, key: Any, value: Any) -> None:
    """Add a key at the end of a mapping, before the blank lines and comments that ended it
    (those of its last value's own last line, however deeply nested). An empty value takes
    none: it has no line for them to follow, and is likely to go again."""
    before = _deepest_last(node)
    empty = isinstance(value, CommentedMap | CommentedSeq) and not len(value)
    tokens = detach_trailing(*before) if before is not None and not empty else None
    node[key] = value
    if tokens is not None:
        attach_after(node, key, tokens)


def remove(node: CommentedMap, key: Any) -> Any:
    """Remove a key, keeping the lines that came after its value (blank lines, a comment about
    what follows) on the key before it; with no key before it, they are returned for the
    caller to keep where the mapping ends (None: nothing to keep)."""
    keys = list(node.keys())
    tokens = detach_trailing(*_end_of(node, key))
    del node[key]
    node.ca.items.pop(key, None)
    if tokens is None:
        return None
    at = keys.index(key)
    if at > 0:
        attach_after(node, keys[at - 1], tokens)
        return None
    return tokens


def _keep(base: Any, path: tuple[PathPart, ...], tokens: Any) -> None:
    """Lines left by a mapping emptied of its last key: kept after the mapping's own key."""
    if tokens is None or not path or not isinstance(path[-1], str) or path[-1].startswith("#"):
        return
    parent = parent_of(base, path)
    if isinstance(parent, CommentedMap) and path[-1] in parent:
        attach_after(parent, path[-1], tokens)


def apply(base: Any, fields: Iterable[Field], values: Mapping[str, str]
          ) -> dict[str, list[str]]:
    """Write the typed values into the document; what changed (label → [before, after])."""
    changed: dict[str, list[str]] = {}
    for f in fields:
        if f.key not in values:  # a form's checkbox comes with a hidden "" before it
            continue
        holder = parent_of(base, f.path)
        name = f.path[-1]
        before = holder.get(name, f.default) if isinstance(holder, Mapping) else f.default
        after = parse(f, str(values.get(f.key, "")))
        if _same(before, after, f.kind):
            continue
        if isinstance(after, list):
            after = as_written(before, after)
        if after is None:
            if isinstance(holder, CommentedMap):
                _keep(base, f.path[:-1], remove(holder, name))
            else:
                holder.pop(name)
        elif name not in holder and isinstance(holder, CommentedMap):
            add_last(holder, name, after)
        else:
            holder[name] = after
        changed[f.label] = [_said(before, f.kind), _said(after, f.kind)]
    return changed


# -------------------------------------------------------------- refusals in Chinese
_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), chinese) for pattern, chinese in (
        (r"ensure this value is greater than or equal to (\S+)", r"不能小于 \1"),
        (r"ensure this value is greater than (\S+)", r"要大于 \1"),
        (r"ensure this value is less than or equal to (\S+)", r"不能大于 \1"),
        (r"ensure this value is less than (\S+)", r"要小于 \1"),
        (r"ensure this value has at least (\d+) characters?", r"至少要 \1 个字"),
        (r"value is not a valid integer", "请填一个整数"),
        (r"value is not a valid float", "请填一个数字"),
        (r"field required", "必须填写"),
        (r"none is not an allowed value", "不能为空"),
        (r"ends must be after starts", "结束时间要晚于开始时间"),
        (r"expected a time like", "时间请写成 2026-01-01 09:00 这样"),
        (r"streak days must be", "连续天数至少 2 天，奖励积分不能是负数"),
        (r"exactly one prize must be kind: nothing", "要有且只有一个不限量的“谢谢参与”"),
        (r"the weights must add up to more than 0", "所有奖品的权重加起来要大于 0"),
        (r"a points prize needs 'points:' > 0", "积分奖品的积分要大于 0"),
        (r"duplicate id", "编号重复了"),
        (r"expected opening hours like", "营业时间请写成 7:30–21:00，或者用文字描述"),
        (r"opening_hours is a description", "营业时间写成了文字，每家门店都要填自己的营业时间"),
        (r"string does not match regex", "只能用小写字母、数字和下划线"),
        (r"ensure this value has at most (\d+) characters?", r"最多 \1 个字"),
        (r"value is not a valid list", "要填一串，用顿号隔开"),
        (r"value is not a valid dict", "格式不对"),
        (r"value could not be parsed to a boolean", "要选“是”或“否”"),
        # the campaigns file's own checks (qunzhu.campaigns)
        (r"expected a local time like", "时间请写成 09:00 这样"),
        (r"expected a weekday and a time", "请写成 周一 10:00 这样"),
        (r"expected a cron expression of five fields", "cron 表达式要五段，例如 0 9 * * 1-5"),
        (r"this cron expression never fires", "这个 cron 表达式永远不会触发"),
        (r"fires too often: campaigns may run at most every (\d+) minutes",
         r"太频繁了：同一条推送最密 \1 分钟一次"),
        (r"expected a time like 2026", "时间请写成 2026-12-01 12:00 这样"),
        (r"give exactly one of daily, weekly, cron or once",
         "发送时间只能选一种：每天、每周、cron 或一次"),
        (r"expected quiet hours like", "免打扰时段请写成 22:00-08:00 这样"),
        (r"unknown placeholder \{([^}]*)\}", r"没有 {\1} 这个占位；能用的见说明"),
        (r"braces must pair", "花括号要成对：写 {群名} 这样的占位"),
        (r"placeholder \{([^}]*)\} must be a plain name", r"占位 {\1} 只能是名字，例如 {群名}"),
        (r"ends must be on or after starts", "结束日期不能早于开始日期"),
        (r"give groups or tags, not both", "发到哪些群：指定群和标签只能选一种"),
        (r"a post about a coupon is a promotion",
         "提到券的推送算推广：请标为推广，或者让它只在券有库存/已抢光时发"),
        (r"need coupon: <a coupon id>", "用了 {券名}/{剩余张数} 就要指定是哪张券"),
        (r"needs countdown_to", "用了 {剩余天数} 就要有倒计时到哪天（或结束日期）"),
        (r"a welcome names the newcomers", "欢迎语里要有 {新人}"),
    ))
_LINE = re.compile(r"^[^:\n]+(?::\d+)?: (?P<field>[^:\n]+): (?P<msg>.*)$")


def _chinese(message: str) -> str:
    for pattern, chinese in _MESSAGES:
        found = pattern.search(message)
        if found:
            return found.expand(chinese)
    return f"不符合要求（{message}）"


def explain(error: ConfigError, base: Any, fields: Iterable[Field],
            sections: Mapping[str, str] = {}) -> str:
    """The bot's own check of the file, said with the form's names for the fields."""
    names: dict[str, str] = {}
    for f in fields:
        try:
            names[loc(base, f.path)] = f.label
        except (TeachError, KeyError, IndexError, TypeError):
            continue
    for path, title in sections.items():
        names.setdefault(path, title)
    said = []
    for line in str(error).splitlines():
        found = _LINE.match(line)
        if not found:
            said.append(_chinese(line))
            continue
        field = found["field"]
        label = names.get(field)
        while label is None and re.search(r"[.\[]", field):
            field = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", field)
            label = names.get(field)
        said.append(f"{label or found['field']}：{_chinese(found['msg'])}")
    return "；".join(dict.fromkeys(said))
