"""群推送: what each campaign did today and will do next, its form, new ones from templates,
and one campaign's week group by group with what followed its posts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from console import campaignrules
from console.auth import needs
from console.history import HistoryError
from console.keys import REDIS, SETTINGS
from console.roles import Role
from console.trainingdata import TeachError
from console.views.dashboard import page
from console.views.saving import (
    AddEdit,
    NewIds,
    add_form_routes,
    commit,
    form_values,
    version_of,
)
from console.yamlform import Form
from qunzhu.campaign_effect import effect
from qunzhu.campaign_status import STATES, StatusBook
from qunzhu.campaigns import Campaign, CampaignsFile, load_campaigns
from qunzhu.config import SHANGHAI, Games, load_games
from qunzhu.groupsfile import GroupsFile
from qunzhu.names import masked_group
from qunzhu.yamlconfig import ConfigError, load_yaml, validate

routes = web.RouteTableDef()
DETAIL_DAYS = 7
GAMES_FILE = Path("data/games.yml")
PRIVATE_FILE = ("这个部署的推送计划在单独的文件里（QZ_CAMPAIGNS_FILE），运营台改不到它，"
                "请联系部署的同事修改")
STATE_LABELS = {"sent": "已发出", "deferred": "推迟了", "dropped": "没发（过时）",
                "skipped": "跳过"}
REASON_LABELS = {
    "ok": "", "again": "已经发过", "late": "服务停了太久，错过了时间",
    "quiet_hours": "免打扰时段", "daily_cap": "当天推广条数已满", "spacing": "离上一条推广太近",
    "service_cap": "当天通知条数已满", "service_spacing": "离上一条通知太近",
    "reaction_cap": "当天互动消息已满", "campaign_off": "推送已关闭", "no_group": "群不在群设置里",
    "error": "出错了（请开发同事看日志）", "no_checkins_yesterday": "昨天没人打卡",
    "no_checkins_last_week": "上周没人打卡", "member_count_unknown": "还不知道群人数",
    "coupon_unknown": "券不存在", "coupon_ended": "券已停止领取", "sold_out": "券已抢光",
    "in_stock": "券还没抢光", "countdown_over": "倒计时已结束",
}


def reason_label(reason: str) -> str:
    """A recorded reason as operators read it ("fallback:…": the backup text went out)."""
    if reason.startswith("fallback:"):
        return "发了备用内容（" + REASON_LABELS.get(reason[9:], reason[9:]) + "）"
    return REASON_LABELS.get(reason, reason)


@dataclass(frozen=True)
class Files:
    """What the page reads besides Redis, each loaded as the services load it."""

    campaigns: CampaignsFile | None  # None: the file is broken (the error says so)
    groups: GroupsFile
    games: Games | None
    error: str = ""


def _files(request: web.Request) -> Files:
    settings = request.app[SETTINGS]
    root = settings.project_root
    try:
        groups: GroupsFile = validate(settings.groups_file,
                                      load_yaml(settings.groups_file, None), GroupsFile, None)
    except (ConfigError, OSError):
        groups = GroupsFile()
    try:
        games: Games | None = load_games(root / GAMES_FILE)
    except (ConfigError, OSError):
        games = None
    try:
        return Files(load_campaigns(root / campaignrules.CAMPAIGNS_FILE), groups, games)
    except (ConfigError, OSError):
        return Files(None, groups, games, f"{campaignrules.CAMPAIGNS_FILE} 现在有错误："
                     "群里仍按上一次正确的推送计划发。请在“改动历史”里撤销最近的改动。")


def _editable(request: web.Request) -> bool:
    """The bridge reads the project's own campaigns file (else the console's commits would
    not reach it)."""
    settings = request.app[SETTINGS]
    own = settings.project_root / campaignrules.CAMPAIGNS_FILE
    used = settings.campaigns_file or own
    return not own.is_symlink() and used.resolve() == own.resolve()


def _now() -> datetime:
    return datetime.now(SHANGHAI)


async def _rows(request: web.Request, files: Files) -> list[dict[str, Any]]:
    """Each campaign as the list shows it: where, when next, today's tally."""
    if files.campaigns is None:
        return []
    settings, now = request.app[SETTINGS], _now()
    book = StatusBook(request.app[REDIS], settings.brand)
    tags = {g.chatid: list(g.tags) for g in files.groups.groups}
    rows = []
    for campaign in files.campaigns.campaigns:
        counts = await book.counts(campaign.id, now.date())
        upcoming = campaign.next_run(now)
        rows.append({"id": campaign.id, "name": campaign.name, "enabled": campaign.enabled,
                     "promotional": campaign.promotional,
                     "when": campaignrules.describe_schedule(campaign.schedule),
                     "where": campaignrules.describe_targets(campaign, files.groups),
                     "groups": len(campaign.targets(tags)),
                     "next": f"{upcoming:%m-%d %H:%M}" if upcoming else "",
                     "today": {s: counts.get(s, 0) for s in STATES}})
    return rows


def _names(files: Files) -> dict[str, str]:
    return {g.chatid: g.name for g in files.groups.groups if g.name}


def _context(request: web.Request) -> dict[str, Any]:
    """What the form's edit needs of the request: the groups' names for its labels."""
    return {"names": _names(_files(request))}


async def _page(request: web.Request, values: dict[str, str] | None = None, *,
                diff: str = "", error: str = "", new: dict[str, str] | None = None,
                new_diff: str = "", new_error: str = "", budget: dict[str, str] | None = None,
                budget_diff: str = "", budget_error: str = "", status: int = 200,
                seen: str | None = None) -> web.StreamResponse:
    """The page: today's tally, the form as the file is now (with what was typed), templates."""
    root = request.app[SETTINGS].project_root
    files = _files(request)
    try:
        form = campaignrules.form_for(root, values or {}, _names(files))
        budget_groups = campaignrules.budget_groups(root, files.groups)
    except TeachError as exc:
        form, error, status = Form((), {}), str(exc), max(status, 409)
        budget_groups = []
    can_edit = _editable(request)
    return await page(
        request, "campaigns.html", status=status, rows=await _rows(request, files),
        states=STATE_LABELS, file_error=files.error, form=form, diff=diff, error=error,
        can_edit=can_edit, private_note="" if can_edit else PRIVATE_FILE,
        templates=campaignrules.TEMPLATES, target_field=campaignrules.TARGET,
        targets=campaignrules.targets(files.groups),
        coupons=campaignrules.coupons(files.games) if files.games else [],
        new=new or {}, new_diff=new_diff, new_error=new_error,
        budget_groups=budget_groups, budget_fields=campaignrules.NEW_BUDGET,
        budget_group_field=campaignrules.BUDGET_GROUP, budget=budget or {},
        budget_diff=budget_diff, budget_error=budget_error,
        version=seen or version_of(root, campaignrules.CAMPAIGNS_FILE))


def _check_editable(request: web.Request) -> None:
    if not _editable(request):
        raise TeachError(PRIVATE_FILE)


@routes.get("/campaigns")
@needs(Role.VIEWER)
async def campaigns_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


add_form_routes(routes, "/campaigns", page=_page, edit=campaignrules.edit,
                guard=campaignrules.CAMPAIGNS_FILE, what="修改群推送", check=_check_editable,
                context=_context)


@routes.post("/campaigns/budget/preview")
@needs(Role.EDITOR)
async def budget_preview(request: web.Request) -> web.StreamResponse:
    values = form_values(await request.post())
    root = request.app[SETTINGS].project_root
    try:
        _check_editable(request)
        change, _added = campaignrules.add_group_budget(root, values, _files(request).groups)
    except TeachError as exc:
        return await _page(request, budget=values, budget_error=str(exc), status=400)
    return await _page(request, budget=values, budget_diff=change.diff(root))


@routes.post("/campaigns/budget/save")
@needs(Role.EDITOR)
async def budget_save(request: web.Request) -> web.StreamResponse:
    values = form_values(await request.post())
    groups = _files(request).groups
    try:
        _check_editable(request)
        sha = await commit(request,
                           lambda root: campaignrules.add_group_budget(root, values, groups),
                           what="单独收紧推送预算", target=str(campaignrules.CAMPAIGNS_FILE))
    except (TeachError, HistoryError) as exc:
        return await _page(request, budget=values, budget_error=str(exc), status=400)
    raise web.HTTPSeeOther(f"/history?saved={sha[:10]}&live=1")


def _add(request: web.Request) -> AddEdit:
    """The template edit, with the groups and games it may name."""
    files = _files(request)
    games = files.games
    if games is None:
        raise TeachError("活动规则（data/games.yml）现在有错误，先修好它再新建推送")
    return lambda root, values, given: campaignrules.add_campaign(root, values, games,
                                                                  files.groups, given)


def _ids(request: web.Request) -> NewIds:
    return NewIds(request, campaignrules.issued_key(request.app[SETTINGS].brand),
                  campaignrules.NEW_ID)


@routes.post("/campaigns/new/preview")
@needs(Role.EDITOR)
async def new_preview(request: web.Request) -> web.StreamResponse:
    values = form_values(await request.post())
    root = request.app[SETTINGS].project_root
    try:
        _check_editable(request)
        change, ident = await _ids(request).preview(root, _add(request), values)
    except TeachError as exc:
        return await _page(request, new=values, new_error=str(exc), status=400)
    # The id shown in the diff is the id saved: the confirm form carries it.
    return await _page(request, new={**values, "id": ident}, new_diff=change.diff(root))


@routes.post("/campaigns/new/save")
@needs(Role.EDITOR)
async def new_save(request: web.Request) -> web.StreamResponse:
    values = form_values(await request.post())
    root = request.app[SETTINGS].project_root
    try:
        _check_editable(request)
        edit = await _ids(request).reserve(root, _add(request), values)
        sha = await commit(request, edit, what="新增群推送",
                           target=str(campaignrules.CAMPAIGNS_FILE))
    except (TeachError, HistoryError) as exc:
        return await _page(request, new=values, new_error=str(exc), status=400)
    raise web.HTTPSeeOther(f"/history?saved={sha[:10]}&live=1")


# ------------------------------------------------------------------ one campaign
def _campaign(files: Files, ident: str) -> Campaign:
    found = next((c for c in (files.campaigns.campaigns if files.campaigns else [])
                  if c.id == ident), None)
    if found is None:
        raise web.HTTPNotFound(text="没有这条推送")
    return found


@routes.get("/campaigns/{campaign}")
@needs(Role.VIEWER)
async def campaign_page(request: web.Request) -> web.StreamResponse:
    files = _files(request)
    campaign = _campaign(files, request.match_info["campaign"])
    settings, now = request.app[SETTINGS], _now()
    r = request.app[REDIS]
    book = StatusBook(r, settings.brand)
    summary = await book.summary(campaign.id, now.date(), DETAIL_DAYS)
    helped = await effect(r, settings.brand, campaign, book, now.date(), now, DETAIL_DAYS)
    names = {g.chatid: g.name for g in files.groups.groups if g.name}
    groups = [{"name": names.get(chatid) or masked_group(chatid), "chatid": chatid,
               **{s: row[s] for s in STATES},
               "last": row["last"] and {
                   "scheduled": row["last"]["scheduled"],
                   "state": STATE_LABELS[row["last"]["state"]],
                   "reason": reason_label(row["last"]["reason"])}}
              for chatid, row in sorted(summary["groups"].items(),
                                        key=lambda kv: names.get(kv[0]) or kv[0])]
    reasons = [(STATE_LABELS.get(key.split(":", 1)[0], key), reason_label(key.split(":", 1)[1]),
                n) for key, n in summary["reasons"].items()]
    upcoming = campaign.next_run(now)
    return await page(
        request, "campaign.html", campaign=campaign, days=DETAIL_DAYS,
        when=campaignrules.describe_schedule(campaign.schedule),
        where=campaignrules.describe_targets(campaign, files.groups),
        next=f"{upcoming:%Y-%m-%d %H:%M}" if upcoming else "", totals=summary["totals"],
        states=STATE_LABELS, reasons=reasons, groups=groups[:500], groups_total=len(groups),
        effect=helped)
