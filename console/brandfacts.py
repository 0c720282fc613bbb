"""The brand's facts as a form: members see them in answers within seconds, no retraining.

data/brand.yml is read and written with ruamel.yaml's round trip (comments, order and
quoting kept; only the values the operator changed differ), checked with the same model the
bot loads it with (qunzhu.config) before it is saved, and picked up by the running actions
and bridge on their next look at the file (qunzhu.liveconfig, about a second).
"""

from __future__ import annotations

from pathlib import Path

from console import yamlform
from console.trainingdata import Change, TeachError
from console.yamlform import Field
from qunzhu.config import load_brand
from qunzhu.yamlconfig import ConfigError

BRAND_FILE = Path("data/brand.yml")


FIELDS = (
    Field(("name",), "品牌名"),
    Field(("hotline",), "客服电话"),
    Field(("service_hours",), "客服时间"),
    Field(("opening_hours",), "门店营业时间（例如 7:30–21:00）"),
    Field(("hours_note",), "营业时间备注（例如 节假日照常开门）", optional=True),
    Field(("delivery", "radius_km"), "外卖配送范围（公里）", kind="number"),
    Field(("delivery", "min_order_yuan"), "外卖起送金额（元）", kind="number"),
    Field(("delivery", "fee_yuan"), "外卖配送费（元）", kind="number"),
    Field(("delivery", "free_over_yuan"), "满多少元免配送费", kind="number"),
    Field(("delivery", "hours"), "外卖配送时间"),
    Field(("delivery", "channels"), "外卖渠道"),
    Field(("membership",), "会员权益", kind="long"),
    Field(("refund",), "退款说明", kind="long"),
    Field(("invoice",), "发票说明", kind="long"),
)


def current(root: Path) -> dict[str, str]:
    """Each field's value as the file has it now."""
    doc = yamlform.yaml().load((root / BRAND_FILE).read_text("utf-8"))
    return yamlform.read(doc["brand"], FIELDS)


def edit(root: Path, values: dict[str, str]) -> tuple[Change, dict[str, list[str]]]:
    """The new brand file for these values, checked as the bot will load it; and what
    changed (field label → [before, after]) for the audit log."""
    doc = yamlform.yaml().load((root / BRAND_FILE).read_text("utf-8"))
    changed = yamlform.apply(doc["brand"], FIELDS, values)
    if not changed:
        raise TeachError("没有改动：每一项都和现在一样")
    text = yamlform.dump(doc)
    try:
        load_brand(root / BRAND_FILE, text=text)
    except ConfigError as exc:
        raise TeachError("保存前检查没通过：" + yamlform.explain(exc, doc["brand"], FIELDS)
                         ) from None
    summary = "修改品牌信息：" + "、".join(changed)
    return Change({BRAND_FILE: text}, summary), changed
