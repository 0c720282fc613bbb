"""Accounts (admins), one's own password and API tokens (everyone), and the audit log."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from aiohttp import web
from aiohttp_session import get_session

from console.accounts import AccountError
from console.auth import account, needs
from console.keys import ACCOUNTS, AUDIT, SETTINGS
from console.roles import Role
from console.views.dashboard import page
from qunzhu import metrics

routes = web.RouteTableDef()


def when(at: float) -> str:
    return datetime.fromtimestamp(at, metrics.TZ).strftime("%Y-%m-%d %H:%M:%S")


@routes.get("/accounts")
@needs(Role.ADMIN)
async def accounts_route(request: web.Request) -> web.StreamResponse:
    return await accounts_page(request)


async def accounts_page(request: web.Request, notice: str = "", error: str = "",
                        status: int = 200) -> web.StreamResponse:
    return await page(request, "accounts.html", status=status,
                      accounts=await request.app[ACCOUNTS].all(), roles=list(Role),
                      notice=notice, error=error)


@routes.post("/accounts")
@needs(Role.ADMIN)
async def create_account(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        role = Role.parse(str(form.get("role", "")))
        created = await request.app[ACCOUNTS].create(
            str(form.get("name", "")), str(form.get("display", "")), role,
            str(form.get("password", "")))
    except (AccountError, ValueError) as exc:
        message = str(exc) if isinstance(exc, AccountError) else "请选择一个角色"
        return await accounts_page(request, error=message, status=400)
    await request.app[AUDIT].record(account(request).name, "新建账号", created.name,
                                    {"role": [None, role.name.lower()]})
    return await accounts_page(request, notice=f"已新建账号 {created.name}")


@routes.post("/accounts/{name}/role")
@needs(Role.ADMIN)
async def change_role(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    form = await request.post()
    accounts = request.app[ACCOUNTS]
    before = await accounts.get(name)
    try:
        role = Role.parse(str(form.get("role", "")))
        await accounts.set_role(name, role)
    except (AccountError, ValueError) as exc:
        message = str(exc) if isinstance(exc, AccountError) else "请选择一个角色"
        return await accounts_page(request, error=message, status=400)
    await request.app[AUDIT].record(account(request).name, "修改角色", name, {
        "role": [before.role.name.lower() if before else None, role.name.lower()]})
    return await accounts_page(request, notice=f"{name} 的角色已改为“{role.label}”")


@routes.post("/accounts/{name}/delete")
@needs(Role.ADMIN)
async def delete_account(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name == account(request).name:
        return await accounts_page(request, error="不能删除自己正在使用的账号", status=400)
    try:
        await request.app[ACCOUNTS].delete(name)
    except AccountError as exc:
        return await accounts_page(request, error=str(exc), status=400)
    await request.app[AUDIT].record(account(request).name, "删除账号", name)
    return await accounts_page(request, notice=f"已删除账号 {name}")


@routes.get("/me")
@needs(Role.VIEWER)
async def me_route(request: web.Request) -> web.StreamResponse:
    return await me_page(request)


async def me_page(request: web.Request, notice: str = "", error: str = "", token: str = "",
                  status: int = 200) -> web.StreamResponse:
    return await page(request, "me.html", status=status, notice=notice, error=error,
                      token=token)


@routes.post("/me/password")
@needs(Role.VIEWER)
async def change_password(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    me = account(request)
    accounts = request.app[ACCOUNTS]
    if await accounts.verify(me.name, str(form.get("current", ""))) is None:
        return await me_page(request, error="当前密码不对", status=400)
    if str(form.get("new", "")) != str(form.get("again", "")):
        return await me_page(request, error="两次输入的新密码不一样", status=400)
    try:
        epoch = await accounts.set_password(me.name, str(form.get("new", "")))
    except AccountError as exc:
        return await me_page(request, error=str(exc), status=400)
    (await get_session(request))["epoch"] = epoch  # this session goes on; the others end
    await request.app[AUDIT].record(me.name, "修改密码", me.name)
    forget_first_login(request.app[SETTINGS].first_login_file, me.name)
    return await me_page(request, notice="密码已修改")


def forget_first_login(path: Path, name: str) -> None:
    """The generated first password is void once its owner changed it: `make run` stops
    printing it."""
    try:
        if path.read_text("utf-8").split()[:1] == [name]:
            path.unlink()
    except OSError:
        pass


@routes.post("/me/tokens")
@needs(Role.VIEWER)
async def new_token(request: web.Request) -> web.StreamResponse:
    me = account(request)
    token = await request.app[ACCOUNTS].new_token(me.name)
    await request.app[AUDIT].record(me.name, "新建 API 令牌", me.name)
    return await me_page(request, notice="新令牌只显示这一次，请现在复制保存", token=token)


@routes.post("/me/tokens/revoke")
@needs(Role.VIEWER)
async def revoke_tokens(request: web.Request) -> web.StreamResponse:
    me = account(request)
    count = await request.app[ACCOUNTS].revoke_tokens(me.name)
    await request.app[AUDIT].record(me.name, "撤销 API 令牌", me.name, {"count": [count, 0]})
    return await me_page(request, notice=f"已撤销 {count} 个令牌")


@routes.get("/audit")
@needs(Role.ADMIN)
async def audit_page(request: web.Request) -> web.StreamResponse:
    entries = await request.app[AUDIT].latest()
    return await page(request, "audit.html", entries=entries, when=when)
