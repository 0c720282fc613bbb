"""活动规则: check-in points, coupons, the lucky draw and the points shop as a form.

data/games.yml is edited through console.yamlform (comments, order and flow style kept),
checked with the model the action server loads it with (qunzhu.config.load_games) and picked
up by the running actions within about a second (qunzhu.liveconfig): no training, no
restart. Members' state in Redis is untouched: a coupon's stock is the total it may ever
issue, so lowering it below what was issued simply stops new claims.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from console import yamlform
from console.trainingdata import Change, TeachError
from console.yamlform import Field, Form, Section
from qunzhu.config import load_games
from qunzhu.yamlconfig import ConfigError

GAMES_FILE = Path("data/games.yml")
PRIZE_KINDS = {"coupon": "优惠券", "points": "积分", "nothing": "谢谢参与"}


def _load(root: Path) -> Any:
    return yamlform.yaml().load((root / GAMES_FILE).read_text("utf-8"))


def _name(item: Any, fallback: str) -> str:
    return str(item.get("name") or item.get("id") or fallback)


def _coupon_fields(prefix: tuple[str, ...], title: str) -> tuple[Field, ...]:
    """What a coupon says once issued: shared by claimable coupons and shop rewards."""
    return (
        Field((*prefix, "name"), f"{title} · 名称", short="名称"),
        Field((*prefix, "value_yuan"), f"{title} · 面值（元）", "number", short="面值（元）"),
        Field((*prefix, "condition"), f"{title} · 使用条件", short="使用条件", optional=True),
        Field((*prefix, "valid_days"), f"{title} · 领到后几天内有效", "int",
              short="领到后几天内有效"),
    )


def sections(doc: Any) -> tuple[Section, ...]:
    """The form as the file is now: one section per coupon, prize and reward."""
    out: list[Section] = []
    checkin = doc["checkin"]
    # The file's own keys (3, or '3' quoted): the field must find the key as written.
    days = sorted(checkin.get("streak_bonus") or {},
                  key=lambda d: int(str(d)) if str(d).isdigit() else 0)
    out.append(Section("每日打卡", (
        Field(("checkin", "base_points"), "每日打卡 · 每次打卡得几分", "int",
              short="每次打卡得几分"),
        *(Field(("checkin", "streak_bonus", day), f"每日打卡 · 连续 {day} 天那天多得几分",
                "int", short=f"连续 {day} 天那天多得几分") for day in days),
        Field(("checkin", "announce_streaks"), "每日打卡 · 在群里祝贺的连续天数", "numbers",
              short="在群里祝贺的连续天数", optional=True, help="用顿号隔开，例如 7、30、100"),
        Field(("checkin", "leaderboard_size"), "每日打卡 · 排行榜显示几名", "int",
              short="排行榜显示几名"),
    )))
    for coupon in doc.get("coupons") or []:
        ident, title = coupon["id"], f"领券 · {_name(coupon, '优惠券')}"
        prefix = ("coupons", f"#{ident}")
        out.append(Section(title, (
            *_coupon_fields(prefix, title),
            Field((*prefix, "aliases"), f"{title} · 群友可能的叫法", "words",
                  short="群友可能的叫法", optional=True, help="用顿号隔开，例如 五元券、5元券"),
            Field((*prefix, "stock"), f"{title} · 一共发多少张", "int",
                  short="一共发多少张", help="已经领走的也算在内；改小不会收回已发的券"),
            Field((*prefix, "per_member_limit"), f"{title} · 每人最多领几张", "int",
                  short="每人最多领几张"),
            Field((*prefix, "starts"), f"{title} · 开始领取", "time", short="开始领取",
                  help="北京时间，例如 2026-01-01 09:00"),
            Field((*prefix, "ends"), f"{title} · 停止领取", "time", short="停止领取"),
        ), note=f"编号 {ident}"))
    draw = doc["lucky_draw"]
    out.append(Section("抽奖", (
        Field(("lucky_draw", "daily_limit"), "抽奖 · 每人每天能抽几次", "int",
              short="每人每天能抽几次"),
        Field(("lucky_draw", "cost_points"), "抽奖 · 每次花几积分（0 = 免费）", "int",
              short="每次花几积分（0 = 免费）"),
    )))
    for prize in draw.get("prizes") or []:
        ident, title = prize["id"], f"抽奖奖品 · {_name(prize, '奖品')}"
        prize_at = ("lucky_draw", "prizes", f"#{ident}")
        kind = str(prize.get("kind"))
        fields = [Field((*prize_at, "name"), f"{title} · 名称", short="名称"),
                  Field((*prize_at, "weight"), f"{title} · 权重（越大越容易抽中）", "int",
                        short="权重（越大越容易抽中）")]
        if kind != "nothing":
            fields.append(Field((*prize_at, "stock"), f"{title} · 一共有几份", "int",
                                short="一共有几份", optional=True, help="空着 = 不限量"))
        if kind == "points":
            fields.append(Field((*prize_at, "points"), f"{title} · 积分", "int", short="积分"))
        out.append(Section(title, tuple(fields),
                           note=f"编号 {ident} · {PRIZE_KINDS.get(kind, kind)}"))
    for reward in doc.get("rewards") or []:
        ident, title = reward["id"], f"积分商城 · {_name(reward, '兑换品')}"
        prefix = ("rewards", f"#{ident}")
        out.append(Section(title, (
            *_coupon_fields(prefix, title),
            Field((*prefix, "cost_points"), f"{title} · 要几积分", "int", short="要几积分"),
            Field((*prefix, "stock"), f"{title} · 一共有几份", "int", short="一共有几份",
                  optional=True, help="空着 = 不限量"),
            Field((*prefix, "aliases"), f"{title} · 群友可能的叫法", "words",
                  short="群友可能的叫法", optional=True),
        ), note=f"编号 {ident}"))
    return tuple(out)


def fields(doc: Any) -> tuple[Field, ...]:
    """Every field of the form, in order."""
    return tuple(f for s in sections(doc) for f in s.fields)


def _titles(doc: Any) -> dict[str, str]:
    """Error locations of whole items (a coupon's window, a prize's payload) → their title."""
    out = {"checkin": "每日打卡", "lucky_draw": "抽奖", "lucky_draw.prizes": "抽奖奖品"}
    for i, coupon in enumerate(doc.get("coupons") or []):
        out[f"coupons[{i}]"] = f"领券 · {_name(coupon, '优惠券')}"
    for i, prize in enumerate((doc.get("lucky_draw") or {}).get("prizes") or []):
        out[f"lucky_draw.prizes[{i}]"] = f"抽奖奖品 · {_name(prize, '奖品')}"
    for i, reward in enumerate(doc.get("rewards") or []):
        out[f"rewards[{i}]"] = f"积分商城 · {_name(reward, '兑换品')}"
    return out


@contextmanager
def _readable() -> Iterator[None]:
    """A file edited by hand into a shape the form cannot show is said so, not a 500."""
    try:
        yield
    except TeachError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError, YAMLError) as exc:
        raise TeachError(f"{GAMES_FILE} 现在有错误，这里没法显示（{type(exc).__name__}）："
                         "请在“改动历史”里撤销最近的改动，或请开发同事修好它。"
                         "机器人仍在用上一次正确的规则。") from None


def current(root: Path) -> Form:
    """The form filled with the file as it is now."""
    return form_for(root, {})


def form_for(root: Path, values: dict[str, str]) -> Form:
    """The form filled with what the operator typed (to show it again with an error); a
    TeachError when the file, edited by hand, is not one the form can show."""
    with _readable():
        doc = _load(root)
        shown = yamlform.read(doc, fields(doc))
        found = sections(doc)
    shown.update({k: v for k, v in values.items() if k in shown})
    return Form(found, shown)


def _checked(root: Path, doc: Any, summary: str) -> Change:
    text = yamlform.dump(doc)
    try:
        load_games(root / GAMES_FILE, text=text)
    except ConfigError as exc:
        raise TeachError("保存前检查没通过：" + yamlform.explain(exc, doc, fields(doc),
                                                              _titles(doc))) from None
    return Change({GAMES_FILE: text}, summary)


def edit(root: Path, values: dict[str, str]) -> tuple[Change, dict[str, list[str]]]:
    """The new games file for these values, checked as the actions will load it; and what
    changed (label → [before, after]) for the audit log."""
    with _readable():
        doc = _load(root)
        changed = yamlform.apply(doc, fields(doc), values)
    if not changed:
        raise TeachError("没有改动：每一项都和现在一样")
    return _checked(root, doc, "修改活动规则：" + "、".join(changed)), changed


# ------------------------------------------------------------------ a new coupon
NEW_COUPON = (
    Field(("name",), "新优惠券 · 名称", short="名称", help="例如 满50减10券"),
    Field(("value_yuan",), "新优惠券 · 面值（元）", "number", short="面值（元）"),
    Field(("condition",), "新优惠券 · 使用条件", short="使用条件", optional=True),
    Field(("stock",), "新优惠券 · 一共发多少张", "int", short="一共发多少张"),
    Field(("per_member_limit",), "新优惠券 · 每人最多领几张", "int", short="每人最多领几张"),
    Field(("starts",), "新优惠券 · 开始领取", "time", short="开始领取",
          help="北京时间，例如 2026-12-01 09:00"),
    Field(("ends",), "新优惠券 · 停止领取", "time", short="停止领取"),
    Field(("valid_days",), "新优惠券 · 领到后几天内有效", "int", short="领到后几天内有效"),
    Field(("aliases",), "新优惠券 · 群友可能的叫法", "words", short="群友可能的叫法",
          optional=True, help="用顿号隔开"),
)
NEW_ID = "新优惠券 · 编号"
NEW_ID_PATTERN = re.compile(r"coupon(_[0-9]+)*_[0-9a-f]{4}")  # what _new_id makes
_ORDER = ("id", "name", "aliases", "value_yuan", "condition", "stock", "per_member_limit",
          "starts", "ends", "valid_days")


def _new_id(taken: set[str], name: str) -> str:
    """A new id for the coupon: it names its stock and claims in Redis, so it must never be
    one used before — not even by a coupon added and then undone (hence the random part)."""
    digits = "_".join(re.findall(r"[0-9]+", unicodedata.normalize("NFKC", name)))[:20]
    base = f"coupon_{digits}" if digits else "coupon"
    while True:
        candidate = f"{base}_{secrets.token_hex(2)}"
        if candidate not in taken:
            return candidate


def issued_key(brand: str) -> str:
    """Redis set of every coupon id the console gave out (kept: an id names stock and claims)."""
    return f"qz:{{{brand}:console}}:coupon_ids"


def add_coupon(root: Path, values: dict[str, str], issued: Collection[str] = ()
               ) -> tuple[Change, dict[str, list[str]]]:
    """games.yml with a new claimable coupon appended, checked; and its fields for the audit.

    `issued`: ids the console gave before (an undone coupon's among them), never given again.
    """
    with _readable():
        doc = _load(root)
        fields(doc)  # the file is one the form can show
    item = CommentedMap()
    for f in NEW_COUPON:
        if f.kind == "words":
            item[f.path[0]] = CommentedSeq()
        else:
            item[f.path[0]] = None
    yamlform.apply(item, NEW_COUPON, {f.key: values.get(f.key, "") for f in NEW_COUPON})
    coupons = doc.get("coupons")
    if coupons is None:
        coupons = doc["coupons"] = CommentedSeq()
    taken = {str(c.get("id")) for c in coupons} | set(issued)
    if str(item.get("name")) in {str(c.get("name")) for c in coupons}:
        raise TeachError(f"新优惠券 · 名称：已经有一张叫“{item.get('name')}”的券了")
    entry = CommentedMap()
    offered = str(values.get("id") or "")
    entry["id"] = (offered if NEW_ID_PATTERN.fullmatch(offered) and offered not in taken
                   else _new_id(taken, str(item.get("name") or "")))
    for key in _ORDER[1:]:
        value = item.get(key)
        if value not in (None, "") and not (isinstance(value, list) and not value):
            entry[key] = value
    if isinstance(entry.get("aliases"), list):
        entry["aliases"] = yamlform.as_written(None, list(entry["aliases"]))
    yamlform.append_item(coupons, entry)
    added = {NEW_ID: ["", str(entry["id"])],
             **{f.label: ["", yamlform.show(entry.get(f.path[0]), f.kind)] for f in NEW_COUPON
                if f.path[0] in entry}}
    title = f"新增优惠券：{entry['name']}"
    return _checked(root, doc, title), added
