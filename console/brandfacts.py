"""The brand's facts as a form: members see them in answers within seconds, no retraining.

data/brand.yml is read and written with ruamel.yaml's round trip (comments, order and
quoting kept; only the values the operator changed differ), checked with the same model the
bot loads it with (qunzhu.config) before it is saved, and picked up by the running actions
and bridge on their next look at the file (qunzhu.liveconfig, about a second).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from console.trainingdata import Change, TeachError
from qunzhu.config import load_brand
from qunzhu.yamlconfig import ConfigError

BRAND_FILE = Path("data/brand.yml")


@dataclass(frozen=True)
class Field:
    """One fact an operator may change."""

    path: tuple[str, ...]
    label: str
    number: bool = False
    long: bool = False

    @property
    def key(self) -> str:
        return ".".join(self.path)


FIELDS = (
    Field(("name",), "品牌名"),
    Field(("hotline",), "客服电话"),
    Field(("service_hours",), "客服时间"),
    Field(("opening_hours",), "门店营业时间（例如 7:30–21:00）"),
    Field(("hours_note",), "营业时间备注（例如 节假日照常开门）"),
    Field(("delivery", "radius_km"), "外卖配送范围（公里）", number=True),
    Field(("delivery", "min_order_yuan"), "外卖起送金额（元）", number=True),
    Field(("delivery", "fee_yuan"), "外卖配送费（元）", number=True),
    Field(("delivery", "free_over_yuan"), "满多少元免配送费", number=True),
    Field(("delivery", "hours"), "外卖配送时间"),
    Field(("delivery", "channels"), "外卖渠道"),
    Field(("membership",), "会员权益", long=True),
    Field(("refund",), "退款说明", long=True),
    Field(("invoice",), "发票说明", long=True),
)


def _yaml() -> YAML:
    y = YAML()
    y.preserve_quotes = True  # type: ignore[assignment]
    y.width = 4096  # type: ignore[assignment]
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _node(doc: Any, path: tuple[str, ...]) -> Any:
    node = doc["brand"]
    for part in path[:-1]:
        node = node[part]
    return node


def current(root: Path) -> dict[str, str]:
    """Each field's value as the file has it now."""
    doc = _yaml().load((root / BRAND_FILE).read_text("utf-8"))
    out = {}
    for f in FIELDS:
        value = _node(doc, f.path).get(f.path[-1], "")
        out[f.key] = "" if value is None else str(value)
    return out


def edit(root: Path, values: dict[str, str]) -> tuple[Change, dict[str, list[str]]]:
    """The new brand file for these values, checked as the bot will load it; and what
    changed (field label → [before, after]) for the audit log."""
    y = _yaml()
    text = (root / BRAND_FILE).read_text("utf-8")
    doc = y.load(text)
    changed: dict[str, list[str]] = {}
    for f in FIELDS:
        if f.key not in values:
            continue
        raw = " ".join(values[f.key].split())
        node = _node(doc, f.path)
        before = node.get(f.path[-1])
        new: Any = raw
        if f.number:
            try:
                new = int(raw) if raw.lstrip("-").isdigit() else float(raw)
            except ValueError:
                raise TeachError(f"{f.label}：请填一个数字（收到：{raw[:20]}）") from None
        elif not raw and f.path != ("hours_note",):
            raise TeachError(f"{f.label}：不能为空")
        if str(before) != str(new):
            node[f.path[-1]] = new
            changed[f.label] = [str(before), str(new)]
    if not changed:
        raise TeachError("没有改动：每一项都和现在一样")
    out = io.StringIO()
    y.dump(doc, out)
    try:
        load_brand(root / BRAND_FILE, text=out.getvalue())
    except ConfigError as exc:
        raise TeachError(f"保存前检查没通过：{exc}") from None
    summary = "修改品牌信息：" + "、".join(changed)
    return Change({BRAND_FILE: out.getvalue()}, summary), changed
