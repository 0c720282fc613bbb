"""群推送: the campaigns, their welcome texts and the anti-spam budget as a form, and new
campaigns started from the built-in templates.

data/campaigns.yml is edited through console.yamlform (comments and order kept), checked
with the model the bridge loads it with (qunzhu.campaigns.load_campaigns) and picked up by
the running scheduler within about a second (qunzhu.liveconfig). The budget's ceilings are
not the form's to change: a value looser than them is refused by that same check, so no
form input can make a campaign spam a group. A campaign's id names its occurrences and
status in Redis, so a new one always gets an id never used before (an added, undone and
re-added campaign would otherwise find its posts already claimed and stay silent).
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from console import yamlform
from console.trainingdata import Change, TeachError
from console.yamlform import Field, Form, Section
from qunzhu import campaign_templates
from qunzhu.campaigns import CEILING, Campaign, CampaignsFile, Schedule, load_campaigns
from qunzhu.config import SHANGHAI, Games
from qunzhu.groupsfile import GroupsFile
from qunzhu.names import masked_group
from qunzhu.yamlconfig import ConfigError

CAMPAIGNS_FILE = Path("data/campaigns.yml")
Adder = Callable[[Path], tuple[Change, dict[str, list[str]]]]
WEEKDAYS = {"mon": "周一", "tue": "周二", "wed": "周三", "thu": "周四", "fri": "周五",
            "sat": "周六", "sun": "周日"}
SCHEDULE_HELP = {
    "daily": ("每天几点发", "北京时间，例如 09:00"),
    "weekly": ("每周哪天几点发", "例如 周一 10:00"),
    "cron": ("发送时间（cron 表达式）", "五段，例如 0 9 * * 1-5 = 工作日 9 点；最密 30 分钟一次"),
    "once": ("发送时间（只发一次）", "北京时间，例如 2026-12-12 12:00"),
}
QUOTED = ("daily", "weekly", "cron", "once")  # times kept in quotes, as the file's comments ask


def _name(item: Any) -> str:
    return str(item.get("name") or item.get("id") or "推送")


def describe_schedule(schedule: Schedule) -> str:
    """When a campaign runs, as an operator says it."""
    if schedule.daily:
        return f"每天 {schedule.daily}"
    if schedule.weekly:
        day, clock = schedule.weekly.split()
        return f"每{WEEKDAYS.get(day, day)} {clock}"
    if schedule.once is not None:
        return f"{schedule.once.astimezone(SHANGHAI):%Y-%m-%d %H:%M}（一次）"
    return f"按 cron：{schedule.cron}"


def describe_targets(campaign: Campaign, groups: GroupsFile) -> str:
    """Where a campaign posts, by group name or tag."""
    if campaign.tags:
        return "标签为 " + "、".join(campaign.tags) + " 的群"
    if campaign.groups == "all":
        return "全部群"
    names = {g.chatid: g.name for g in groups.groups if g.name}
    return "、".join(names.get(chatid) or masked_group(chatid) for chatid in campaign.groups)


# ------------------------------------------------------------------ the form
def _load(root: Path) -> Any:
    doc = yamlform.yaml().load((root / CAMPAIGNS_FILE).read_text("utf-8"))
    return CommentedMap() if doc is None else doc


def _budget_fields(at: tuple[str, ...] = ("budget",), title: str = "推送预算",
                   scope: str = "每个群") -> tuple[Field, ...]:
    """The four budget values under `at` (all groups, one group or one tag)."""
    c = CEILING
    return (
        Field((*at, "promo_per_day"), f"{title} · {scope}每天最多几条推广", "int",
              short=f"{scope}每天最多几条推广", optional=True,
              help=f"最多 {c.promo_per_day} 条；空着 = {c.promo_per_day}"),
        Field((*at, "promo_gap_minutes"), f"{title} · 两条推广至少隔几分钟", "int",
              short="两条推广至少隔几分钟", optional=True,
              help=f"至少 {c.promo_gap_minutes} 分钟；空着 = {c.promo_gap_minutes}"),
        Field((*at, "quiet_hours"), f"{title} · 免打扰时段", short="免打扰时段",
              optional=True,
              help=f"例如 21:30-08:30，要包含 {c.quiet_start:%H:%M}-{c.quiet_end:%H:%M}；"
                   f"空着 = {c.quiet_start:%H:%M}-{c.quiet_end:%H:%M}"),
        Field((*at, "service_per_day"), f"{title} · {scope}每天最多几条通知", "int",
              short=f"{scope}每天最多几条通知", optional=True,
              help=f"打卡提醒、周报这类非推广消息；最多 {c.service_per_day} 条；"
                   f"空着 = {c.service_per_day}"),
    )


def _where(item: Any, names: Mapping[str, str]) -> str:
    """The groups an item of the file (a welcome) is for, by name or tag."""
    if item.get("tags"):
        return "标签为 " + "、".join(map(str, item["tags"])) + " 的群"
    groups = item.get("groups", "all")
    if groups == "all" or not isinstance(groups, list):
        return "全部群"
    return "、".join(names.get(str(g)) or masked_group(str(g)) for g in groups)


def _override_sections(doc: Any, names: Mapping[str, str]) -> list[Section]:
    """A section for each group (by name) and tag with a budget of its own."""
    out = []
    named = [names.get(str(k)) for k in doc.get("budget_by_group") or {}]
    for where in ("budget_by_group", "budget_by_tag"):
        for key in doc.get(where) or {}:
            shown = (names.get(str(key)) or masked_group(str(key)) if where == "budget_by_group"
                     else f"标签 {key}")
            if where == "budget_by_group" and named.count(names.get(str(key))) > 1:
                shown += f"（{key}）"  # two groups of one name: told apart by id
            title = f"推送预算 · {shown}"
            out.append(Section(title, _budget_fields((where, str(key)), title, "这个群"),
                               note="只对" + ("这个群" if where == "budget_by_group"
                                             else "有这个标签的群") + "，在所有群的预算上再收紧；"
                                    "全部空着 = 不再单独设置"))
    return out


def sections(doc: Any, names: Mapping[str, str] = {}) -> tuple[Section, ...]:
    """The form as the file is now: the budget, each campaign, each welcome (`names`: the
    groups' names, for the budgets of single groups)."""
    out = [Section("推送预算（所有群）", _budget_fields(),
                   note="只能比上限更严，不能更松：这是为了不把群变成广告群"),
           *_override_sections(doc, names)]
    items = doc.get("campaigns") or []
    called = [_name(item) for item in items]
    for item in items:
        ident = item["id"]
        # two campaigns of one name are told apart by id in labels, errors and the audit log
        title = f"推送 · {_name(item)}" + (f"（{ident}）" if called.count(_name(item)) > 1 else "")
        at = ("campaigns", f"#{ident}")
        kind = next((k for k in QUOTED if k in (item.get("schedule") or {})), "daily")
        when, when_help = SCHEDULE_HELP[kind]
        fields = [
            Field((*at, "enabled"), f"{title} · 开启", "flag", short="开启", default=True),
            Field((*at, "name"), f"{title} · 名称", short="名称"),
            Field((*at, "text"), f"{title} · 内容", "long", short="内容",
                  help="{群名} {昨日前三} {剩余张数} 这类占位会在发送时填上"),
            Field((*at, "fallback_text"), f"{title} · 备用内容", "long", short="备用内容",
                  optional=True, help="占位没有数据时（比如昨天没人打卡）发这条；空着 = 那次不发"),
            Field((*at, "schedule", kind), f"{title} · {when}", "time" if kind == "once"
                  else "text", short=when, help=when_help),
            Field((*at, "starts"), f"{title} · 从哪天开始", "date", short="从哪天开始",
                  optional=True, help="例如 2026-12-01；空着 = 现在就开始"),
            Field((*at, "ends"), f"{title} · 到哪天结束", "date", short="到哪天结束",
                  optional=True, help="空着 = 一直发"),
        ]
        if "{昨日前三}" in str(item.get("text")) + str(item.get("fallback_text")):
            fields.append(Field((*at, "mention_top3"), f"{title} · @昨天打卡前三", "flag",
                                short="@昨天打卡前三（说过“别@我了”的不会被@）"))
        kind_said = "推广" if item.get("promotional") else "通知"
        out.append(Section(title, tuple(fields), note=f"编号 {ident} · {kind_said}"))
    for i, welcome in enumerate(doc.get("welcomes") or []):
        title = f"新人欢迎语 {i + 1}"
        out.append(Section(title, (
            Field(("welcomes", i, "text"), f"{title} · 内容", "long", short="内容",
                  help="{新人} 新人的名字（必须有）、{群名}、{机器人}"),
        ), note="用在" + _where(welcome, names) + "（按顺序，第一条合适的）"))
    return tuple(out)


def fields(doc: Any, names: Mapping[str, str] = {}) -> tuple[Field, ...]:
    """Every field of the form, in order."""
    return tuple(f for s in sections(doc, names) for f in s.fields)


def _titles(doc: Any) -> dict[str, str]:
    """Error locations of whole items (a campaign's window or template) → their title."""
    out = {"budget": "推送预算", "campaigns": "推送"}
    for i, section in enumerate(s for s in sections(doc) if s.title.startswith("推送 · ")):
        out[f"campaigns[{i}]"] = section.title
        out[f"campaigns[{i}].schedule"] = f"{section.title} · 发送时间"
    for i, _welcome in enumerate(doc.get("welcomes") or []):
        out[f"welcomes[{i}]"] = f"新人欢迎语 {i + 1}"
    return out


@contextmanager
def _readable() -> Iterator[None]:
    """A file edited by hand into a shape the form cannot show is said so, not a 500."""
    try:
        yield
    except TeachError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError, IndexError, YAMLError,
            OSError) as exc:
        raise TeachError(f"{CAMPAIGNS_FILE} 现在有错误，这里没法显示（{type(exc).__name__}）："
                         "请在“改动历史”里撤销最近的改动，或请开发同事修好它。"
                         "群里仍按上一次正确的推送计划发。") from None


def _with_budget(doc: Any) -> bool:
    """Give the document a `budget:` mapping for the form to read; whether it was added."""
    if isinstance(doc.get("budget"), dict):
        return False
    yamlform.add_last(doc, "budget", CommentedMap())
    return True


def form_for(root: Path, values: dict[str, str], names: Mapping[str, str] = {}) -> Form:
    """The form filled with what the operator typed (to show it again with an error)."""
    with _readable():
        doc = _load(root)
        _with_budget(doc)
        shown = yamlform.read(doc, fields(doc))
        found = sections(doc, names)
    shown.update({k: v for k, v in values.items() if k in shown})
    return Form(found, shown)


def _typed_time(value: str, key: str = "") -> str:
    """A time as the file writes it: ASCII digits (an IME's ０９：００ too), quoted, and for a
    schedule in the form the bot reads it back as (8:45 → 08:45)."""
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if key in QUOTED:
        try:
            parsed = getattr(Schedule.parse_obj({key: text}), key)
        except ValidationError:
            return _quoted(text)  # the file's check says what is wrong
        text = (f"{parsed.astimezone(SHANGHAI):%Y-%m-%d %H:%M}" if isinstance(parsed, datetime)
                else str(parsed))
    return _quoted(text)


def _quoted(text: str) -> str:
    quoted: str = DoubleQuotedScalarString(text)
    return quoted


def _tidy(doc: Any, touched: list[Field], added_budget: bool) -> None:
    """What the form wrote, in the file's own style: times quoted and as the bot reads them
    back, an emptied optional text removed (no backup text means "skip that group"; no quiet
    hours, the default ones), no empty budget left behind. Only what the operator changed:
    the rest stays as the team wrote it."""
    for f in touched:
        holder, key = yamlform.parent_of(doc, f.path), f.path[-1]
        value = holder.get(key)
        if value == "" and f.optional:  # an emptied backup text or quiet hours: the default
            yamlform.remove(holder, key)
        elif isinstance(value, str) and (f.path[-2] == "schedule" or key == "quiet_hours"):
            holder[key] = _typed_time(value, str(key))
    budget = doc.get("budget")
    if added_budget and isinstance(budget, dict) and not budget:
        yamlform.remove(doc, "budget")
    for where in ("budget_by_group", "budget_by_tag"):
        overrides = doc.get(where)
        for key in [k for k, v in (overrides or {}).items() if isinstance(v, dict) and not v]:
            left = yamlform.remove(overrides, key)  # every value emptied: none of its own
            if left is not None:
                yamlform.attach_after(doc, where, left)
        if isinstance(overrides, dict) and not overrides and where in [str(f.path[0])
                                                                       for f in touched]:
            yamlform.remove(doc, where)


RUSH_STEPS = ("countdown", "open", "left", "closed")  # what campaign_templates.coupon_rush makes
RUSH_SAID = {"countdown": "预告", "open": "开抢", "left": "还剩", "closed": "已抢光"}


def _rushes_in_order(loaded: CampaignsFile, schedules: dict[str, str]) -> None:
    """A coupon rush whose one-off times were changed still runs 预告 → 开抢 → 还剩 → 已抢光."""
    times = {c.id: c.schedule.once for c in loaded.campaigns if c.schedule.once is not None}
    coupons = {c.id: c.coupon for c in loaded.campaigns}
    for changed in schedules:
        base, _, step = changed.rpartition("_")
        if step not in RUSH_STEPS:
            continue
        steps = [s for s in RUSH_STEPS if f"{base}_{s}" in times]
        followed = {coupons.get(f"{base}_{s}") for s in steps}
        if len(followed) != 1 or None in followed:
            continue  # not one rush (a rush's posts all follow one coupon)
        found = [(s, times[f"{base}_{s}"]) for s in steps]
        if any(a[1] >= b[1] for a, b in pairwise(found)):
            said = " → ".join(f"{RUSH_SAID[s]} {t.astimezone(SHANGHAI):%m-%d %H:%M}"
                              for s, t in found)
            raise TeachError(f"{schedules[changed]}：限时抢券的几条要按顺序发"
                             f"（预告 → 开抢 → 还剩 → 已抢光），现在是 {said}")


def _sendable(loaded: CampaignsFile, schedules: dict[str, str], now: datetime) -> None:
    """Refuse a time that can never go out: a one-off in the past, or a time (with its
    spread) in the quiet hours, where every group's post would wait and then be dropped."""
    limits = loaded.budget.apply(CEILING)
    quiet = f"{limits.quiet_start:%H:%M}–{limits.quiet_end:%H:%M}"
    for campaign in loaded.campaigns:
        label = schedules.get(campaign.id)
        if label is None:
            continue
        schedule, spread = campaign.schedule, timedelta(minutes=campaign.jitter_minutes)
        if schedule.once is not None and schedule.once < now:
            raise TeachError(f"{label}：{schedule.once.astimezone(SHANGHAI):%Y-%m-%d %H:%M} "
                             "已经过去了，请填一个以后的时间")
        if schedule.once is not None:
            moment = schedule.once.astimezone(SHANGHAI)
        elif schedule.daily or schedule.weekly:
            clock = (schedule.daily or str(schedule.weekly).split()[1]).split(":")
            moment = now.astimezone(SHANGHAI).replace(hour=int(clock[0]), minute=int(clock[1]))
        else:
            continue  # a cron expression's times vary; the budget defers or drops them
        if any(limits.is_quiet(moment + offset) for offset in (-spread, timedelta(0), spread)):
            spread_said = f"（前后 {campaign.jitter_minutes} 分钟错开发）" if spread else ""
            raise TeachError(f"{label}：{moment:%H:%M}{spread_said}在免打扰时段 {quiet} 里，"
                             "群里收不到，请换个时间")


# What qunzhu.campaigns says of a value looser than the ceilings, in the whole file's check
LOOSER = re.compile(r"(budget(?:_by_(?:tag|group)\.[^.;:\s]+)?)\.(\w+): (at most|at least|must "
                    r"cover) ([^;()]+?) \(the ceiling\)")
LOOSER_SAID = {"at most": "最多", "at least": "至少", "must cover": "要包含"}


def _looser(error: ConfigError, doc: Any, names: Mapping[str, str]) -> str:
    """The budget values looser than the ceilings, said with the form's labels ("" if none)."""
    labels = {".".join(map(str, f.path)): f.label for f in fields(doc, names)
              if str(f.path[0]).startswith("budget")}
    said = [f"{labels.get(f'{scope}.{key}', f'{scope}.{key}')}：不能比上限更松"
            f"（{LOOSER_SAID[how]} {limit}）"
            for scope, key, how, limit in LOOSER.findall(str(error))]
    return "；".join(said)


def _checked(root: Path, doc: Any, summary: str, schedules: dict[str, str],
             now: datetime | None = None, names: Mapping[str, str] = {}) -> Change:
    """The file as text, checked as the bridge loads it, and every changed schedule as
    one that can go out (`schedules`: campaign id → the label to name it by)."""
    text = yamlform.dump(doc)
    try:
        loaded = load_campaigns(root / CAMPAIGNS_FILE, text=text)
    except ConfigError as exc:
        said = (_looser(exc, doc, names)
                or yamlform.explain(exc, doc, fields(doc, names), _titles(doc)))
        raise TeachError("保存前检查没通过：" + said) from None
    _sendable(loaded, schedules, now or datetime.now(SHANGHAI))
    _rushes_in_order(loaded, schedules)
    return Change({CAMPAIGNS_FILE: text}, summary)


def edit(root: Path, values: dict[str, str], now: datetime | None = None,
         names: Mapping[str, str] = {}) -> tuple[Change, dict[str, list[str]]]:
    """The new campaigns file for these values, checked as the bridge will load it; and what
    changed (label → [before, after]) for the audit log (`names`: the groups' names)."""
    with _readable():
        doc = _load(root)
        added = _with_budget(doc)
        shown = fields(doc, names)
        before = yamlform.read(doc, shown)
        changed = yamlform.apply(doc, shown, values)
        after = yamlform.read(doc, shown)
        touched = [f for f in shown if before[f.key] != after[f.key]]
        _tidy(doc, touched, added)
    if not changed:
        raise TeachError("没有改动：每一项都和现在一样")
    schedules = {str(f.path[1])[1:]: f.label for f in touched if f.path[-2:-1] == ("schedule",)}
    return (_checked(root, doc, "修改群推送：" + "、".join(changed), schedules, now, names),
            changed)


# ------------------------------------------------------------------ a new campaign
@dataclass(frozen=True)
class Template:
    """A built-in template as the page offers it: what it is, what it asks for."""

    key: str
    title: str
    about: str
    fields: tuple[Field, ...]
    build: Callable[[dict[str, Any], str | list[str], str], list[dict[str, Any]]]


def _field(key: str, label: str, kind: yamlform.Kind = "text", help: str = "",
           default: str | None = None) -> Field:
    return Field((key,), f"新推送 · {label}", kind, short=label, help=help, default=default)


TEMPLATES: tuple[Template, ...] = (
    Template("checkin_reminder", "每日打卡提醒",
             "每天早上提醒大家打卡，点名昨天坚持最久的三位（昨天没人打卡就发一句普通提醒）。",
             (_field("at", "每天几点发", help="例如 09:00", default="09:00"),),
             lambda v, groups, ident: campaign_templates.checkin_reminder(
                 at=v["at"], groups=groups, campaign_id=ident)),
    Template("weekly_recap", "周报",
             "每周一次：上周本群打卡次数和坚持最久的三位。",
             (_field("at", "每周哪天几点发", help="例如 周一 10:00", default="周一 10:00"),),
             lambda v, groups, ident: campaign_templates.weekly_recap(
                 at=v["at"], groups=groups, campaign_id=ident)),
    Template("coupon_rush", "限时抢券",
             "开抢前 10 分钟预告、准点开抢、半小时后“还剩 N 张”（抢光了就不发）、"
             "一个半小时后“已抢光”（没抢光就不发）。只有开抢那条算一条推广。",
             (_field("coupon", "哪张券"),
              _field("opens", "开抢时间", "time", help="北京时间，例如 2026-12-12 12:00")),
             lambda v, groups, ident: campaign_templates.coupon_rush(
                 coupon=v["coupon"], opens=v["opens"], groups=groups, campaign_id=ident)),
    Template("migration", "迁群",
             "把群友搬到新群：服务升级通知、每天一条“新群领福利”倒计时、停用前一晚最后提醒。",
             (_field("new_group", "新群的加入方式", help="新群的邀请链接，或者怎么进新群"),
              _field("notice_at", "什么时候发通知", "time", help="例如 2026-12-10 10:00"),
              _field("closes_on", "老群哪天停用", "date", help="例如 2026-12-20")),
             lambda v, groups, ident: campaign_templates.migration(
                 new_group=v["new_group"], notice_at=v["notice_at"], closes_on=v["closes_on"],
                 groups=groups, campaign_id=ident)),
)
TARGET = Field(("target",), "新推送 · 发到哪些群", short="发到哪些群")
NEW_ID = "新推送 · 编号"
NEW_ID_PATTERN = re.compile(r"[a-z_]+_[0-9a-f]{4}")  # what _new_id makes


def template(key: str) -> Template:
    """The template by its key; a TeachError for any other."""
    found = next((t for t in TEMPLATES if t.key == key), None)
    if found is None:
        raise TeachError("请选一个模板")
    return found


def targets(groups: GroupsFile) -> list[tuple[str, str]]:
    """What a new campaign may be sent to: all groups, each tag, each group (value, label)."""
    out = [("all", "全部群")]
    tags = sorted({tag for g in groups.groups for tag in g.tags})
    out += [(f"tag:{tag}", f"标签为 {tag} 的群") for tag in tags]
    out += [(f"group:{g.chatid}", g.name or masked_group(g.chatid)) for g in groups.groups]
    return out


def coupons(games: Games) -> list[tuple[str, str]]:
    """The coupons a rush may open (value, label)."""
    return [(c.id, c.name) for c in games.coupons]


def _new_id(taken: set[str], key: str) -> str:
    """An id never used before, even by a campaign added and then undone (see above)."""
    base = {"checkin_reminder": "checkin", "weekly_recap": "weekly",
            "coupon_rush": "rush", "migration": "move"}[key]
    while True:
        candidate = f"{base}_{secrets.token_hex(2)}"
        if not any(t == candidate or t.startswith(candidate + "_") for t in taken):
            return candidate


def _parameters(chosen: Template, values: dict[str, str], games: Games) -> dict[str, Any]:
    """The template's parameters as typed, each checked and named like the form names it."""
    out: dict[str, Any] = {}
    for f in chosen.fields:
        parsed = yamlform.parse(f, values.get(f.key, ""))
        if f.kind == "time":
            parsed = datetime.fromisoformat(str(parsed)).replace(tzinfo=SHANGHAI)
        elif f.key == "at":  # an IME's ０９：３０, and 9:30 written as the bot reads it
            parsed = _typed_time(parsed, "weekly" if chosen.key == "weekly_recap" else "daily")
        out[f.key] = parsed
    if "coupon" in out and out["coupon"] not in {c.id for c in games.coupons}:
        raise TeachError("新推送 · 哪张券：请从列表里选一张券")
    notice, closes = out.get("notice_at"), out.get("closes_on")
    if isinstance(notice, datetime) and isinstance(closes, date) \
            and closes <= notice.date() + timedelta(days=1):
        raise TeachError("新推送 · 老群哪天停用：要比发通知那天至少晚两天")
    return out


def _target(values: dict[str, str], groups: GroupsFile) -> tuple[str | list[str], list[str]]:
    """The chosen target as the file writes it: all, a group list, or tags."""
    chosen = values.get("target", "")
    if chosen not in {value for value, _label in targets(groups)}:
        raise TeachError("新推送 · 发到哪些群：请从列表里选")
    if chosen.startswith("tag:"):
        return "all", [chosen[4:]]
    if chosen.startswith("group:"):
        return [chosen[6:]], []
    return "all", []


def _as_yaml(doc: dict[str, Any], tags: list[str]) -> CommentedMap:
    """A template's campaign in the file's style: flow-style schedule and lists, quoted times."""
    item = CommentedMap()
    for key, value in doc.items():
        if key == "groups" and tags:
            continue
        if key == "schedule":
            value = CommentedMap((k, DoubleQuotedScalarString(str(v))) for k, v in value.items())
            value.fa.set_flow_style()
        elif isinstance(value, list):
            value = yamlform.as_written(None, value)
        elif isinstance(value, datetime):
            value = DoubleQuotedScalarString(f"{value:%Y-%m-%d %H:%M}")
        elif isinstance(value, str) and key != "id":
            value = DoubleQuotedScalarString(value)
        item[key] = value
    if tags:
        item["tags"] = yamlform.as_written(None, tags)
    return item


def add_campaign(root: Path, values: dict[str, str], games: Games, groups: GroupsFile,
                 issued: Collection[str] = (), now: datetime | None = None,
                 ) -> tuple[Change, dict[str, list[str]]]:
    """campaigns.yml with a template's campaigns appended, checked; their fields for the audit.

    `issued`: ids the console gave before (an undone campaign's among them), never given again.
    """
    chosen = template(values.get("template", ""))
    with _readable():
        doc = _load(root)
        fields(doc)  # the file is one the form can show
    parameters = _parameters(chosen, values, games)
    target, tags = _target(values, groups)
    items = doc.get("campaigns")
    if items is None:
        items = doc["campaigns"] = CommentedSeq()
    taken = {str(item.get("id")) for item in items} | set(issued)
    offered = str(values.get("id") or "")
    ident = (offered if NEW_ID_PATTERN.fullmatch(offered)
             and not any(t == offered or t.startswith(offered + "_") for t in taken)
             else _new_id(taken, chosen.key))
    try:
        built = chosen.build(parameters, target, ident)
    except (ValueError, KeyError, OverflowError) as exc:
        raise TeachError(f"新推送：这些时间排不出推送（{type(exc).__name__}），"
                         "请换个时间") from None
    names = {str(item.get("name")) for item in items}
    when = next((f.label for f in chosen.fields if f.key in ("at", "opens", "notice_at")), "")
    schedules = {}
    for campaign in built:
        campaign["name"] = _unique(str(campaign["name"]), names)
        names.add(campaign["name"])
        schedules[str(campaign["id"])] = when or f"新推送 · {campaign['name']}"
        yamlform.append_item(items, _as_yaml(campaign, tags))
    added = {NEW_ID: ["", ident], "新推送 · 模板": ["", chosen.title],
             TARGET.label: ["", dict(targets(groups))[values["target"]]],
             **{f.label: ["", values.get(f.key, "")] for f in chosen.fields}}
    return (_checked(root, doc, f"新增群推送：{chosen.title}（{ident}）", schedules, now),
            added)


def _unique(name: str, taken: set[str]) -> str:
    """A campaign name no other has (两条“每日打卡提醒” would be told apart by id alone)."""
    if name not in taken:
        return name
    n = 2
    while f"{name} {n}" in taken:
        n += 1
    return f"{name} {n}"


def issued_key(brand: str) -> str:
    """Redis set of every campaign id the console gave out (kept: ids name Redis state)."""
    return f"qz:{{{brand}:console}}:campaign_ids"



# ------------------------------------------------------------------ one group's own budget
NEW_BUDGET = _budget_fields((), "单独收紧", "这个群")
BUDGET_GROUP = Field(("group",), "单独收紧 · 哪个群", short="哪个群")


def budget_groups(doc_root: Path, groups: GroupsFile) -> list[tuple[str, str]]:
    """The groups that have no budget of their own yet (value, name)."""
    with _readable():
        own = _load(doc_root).get("budget_by_group") or {}
    return [(g.chatid, g.name or masked_group(g.chatid)) for g in groups.groups
            if g.chatid not in own]


def add_group_budget(root: Path, values: dict[str, str], groups: GroupsFile
                     ) -> tuple[Change, dict[str, list[str]]]:
    """campaigns.yml with one group's stricter budget added, checked; its values for the audit.

    What an operator does when 群列表 shows a group saying 嫌消息多: fewer posts there only.
    """
    chatid = values.get("group", "")
    if chatid not in {value for value, _name in budget_groups(root, groups)}:
        raise TeachError(f"{BUDGET_GROUP.label}：请从列表里选（已经单独设置过的群在上面修改）")
    with _readable():
        doc = _load(root)
        fields(doc)  # the file is one the form can show
    entry = CommentedMap()
    for f in NEW_BUDGET:
        value = yamlform.parse(f, values.get(f.key, ""))
        if value not in (None, ""):
            entry[f.key] = _typed_time(str(value)) if f.key == "quiet_hours" else value
    if not entry:
        raise TeachError("单独收紧：至少填一项（比如每天最多几条推广）")
    overrides = doc.get("budget_by_group")
    if isinstance(overrides, CommentedMap):
        yamlform.add_last(overrides, chatid, entry)
    else:  # none yet (or `{}`): a block mapping holding this group's
        if overrides is not None:
            yamlform.remove(doc, "budget_by_group")
        yamlform.add_last(doc, "budget_by_group", CommentedMap([(chatid, entry)]))
    name = dict(budget_groups(root, groups))[chatid]
    added = {BUDGET_GROUP.label: ["", name],
             **{f.label: ["", str(entry[f.key])] for f in NEW_BUDGET if f.key in entry}}
    names = {g.chatid: g.name for g in groups.groups if g.name}
    return _checked(root, doc, f"单独收紧推送预算：{name}", {}, names=names), added
