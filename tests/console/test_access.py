"""Who may do what: every route for every role, CSRF on every form, throttled sign-in."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from console import keys
from console.__main__ import write_first_login
from console.accounts import Accounts
from console.auth import PUBLIC_PREFIXES, ROLE_ATTR
from console.roles import Role
from tests.console.conftest import PASSWORD, Login, csrf_of, settings_for, sign_in

pytestmark = pytest.mark.redis

# (method, path, form, the weakest role that may) — every page and API route of the console.
ROUTES: list[tuple[str, str, dict[str, str], Role]] = [
    ("GET", "/", {}, Role.VIEWER),
    ("GET", "/groups", {}, Role.VIEWER),
    ("GET", "/groups/g1", {}, Role.VIEWER),
    ("GET", "/export.csv", {}, Role.VIEWER),
    ("GET", "/me", {}, Role.VIEWER),
    ("POST", "/me/tokens", {}, Role.VIEWER),
    ("POST", "/me/tokens/revoke", {}, Role.VIEWER),
    ("POST", "/me/password", {"current": "x", "new": "y", "again": "y"}, Role.VIEWER),
    ("GET", "/inbox", {}, Role.VIEWER),
    ("GET", "/api/inbox", {}, Role.VIEWER),
    ("GET", "/redeem", {}, Role.VIEWER),
    ("GET", "/brand", {}, Role.VIEWER),
    ("POST", "/brand/preview", {"hotline": "400-000-0000"}, Role.EDITOR),
    ("POST", "/brand/save", {"hotline": ""}, Role.EDITOR),
    ("GET", "/answers", {}, Role.VIEWER),
    ("GET", "/answers/nope", {}, Role.VIEWER),
    ("POST", "/answers/nope/preview", {"answers": "x"}, Role.EDITOR),
    ("POST", "/answers/nope/save", {"answers": ""}, Role.EDITOR),
    ("GET", "/api/answers", {}, Role.VIEWER),
    ("GET", "/api/answers/nope", {}, Role.VIEWER),
    ("POST", "/api/answers/nope", {}, Role.EDITOR),
    ("GET", "/games", {}, Role.VIEWER),
    ("POST", "/games/preview", {"checkin.base_points": "6"}, Role.EDITOR),
    ("POST", "/games/save", {"checkin.base_points": "x"}, Role.EDITOR),
    ("POST", "/games/coupons/preview", {"name": "满50减10券"}, Role.EDITOR),
    ("POST", "/games/coupons/save", {"name": ""}, Role.EDITOR),
    ("GET", "/api/games", {}, Role.VIEWER),
    ("POST", "/api/games", {}, Role.EDITOR),
    ("POST", "/api/games/coupons", {}, Role.EDITOR),
    ("GET", "/group-settings", {}, Role.VIEWER),
    ("POST", "/group-settings/preview", {"staff.mention": "kefu09"}, Role.EDITOR),
    ("POST", "/group-settings/save", {"staff.mention": "kefu09"}, Role.EDITOR),
    ("GET", "/campaigns", {}, Role.VIEWER),
    ("GET", "/campaigns/checkin_reminder", {}, Role.VIEWER),
    ("POST", "/campaigns/preview", {"budget.promo_per_day": "1"}, Role.EDITOR),
    ("POST", "/campaigns/save", {"budget.promo_per_day": "x"}, Role.EDITOR),
    ("POST", "/campaigns/new/preview", {"template": "checkin_reminder"}, Role.EDITOR),
    ("POST", "/campaigns/new/save", {"template": ""}, Role.EDITOR),
    ("POST", "/campaigns/budget/preview", {"group": "g1"}, Role.EDITOR),
    ("POST", "/campaigns/budget/save", {"group": ""}, Role.EDITOR),
    ("GET", "/handoffs", {}, Role.VIEWER),
    ("POST", "/handoffs/nope/claim", {}, Role.VIEWER),
    ("POST", "/handoffs/nope/note", {"note": "x"}, Role.VIEWER),
    ("POST", "/handoffs/nope/close", {}, Role.VIEWER),
    ("GET", "/api/handoffs", {}, Role.VIEWER),
    ("POST", "/api/handoffs/nope/claim", {}, Role.VIEWER),
    ("POST", "/api/handoffs/nope/close", {}, Role.VIEWER),
    ("POST", "/teach/preview", {}, Role.EDITOR),
    ("POST", "/teach/save", {}, Role.EDITOR),
    ("POST", "/api/teach", {}, Role.EDITOR),
    ("GET", "/history", {}, Role.VIEWER),
    ("GET", "/history/0000000", {}, Role.VIEWER),
    ("POST", "/history/0000000/revert", {}, Role.EDITOR),
    ("GET", "/api/history", {}, Role.VIEWER),
    ("GET", "/publish", {}, Role.VIEWER),
    ("POST", "/publish", {}, Role.PUBLISHER),
    ("POST", "/publish/rollback", {}, Role.PUBLISHER),
    ("GET", "/api/publish", {}, Role.VIEWER),
    ("POST", "/api/publish", {}, Role.PUBLISHER),
    ("POST", "/api/publish/rollback", {}, Role.PUBLISHER),
    ("GET", "/api/publish/jobs/nope", {}, Role.VIEWER),
    ("POST", "/redeem", {"code": "QZNOPE1234", "store": "nowhere"}, Role.VIEWER),
    ("POST", "/api/coupons/QZNOPE1234/redeem", {}, Role.VIEWER),
    ("GET", "/accounts", {}, Role.ADMIN),
    ("POST", "/accounts", {"name": "newbie", "display": "新人", "role": "viewer",
                           "password": "long-enough-1"}, Role.ADMIN),
    ("POST", "/accounts/nobody/role", {"role": "editor"}, Role.ADMIN),
    ("POST", "/accounts/nobody/delete", {}, Role.ADMIN),
    ("GET", "/audit", {}, Role.ADMIN),
    ("GET", "/api/me", {}, Role.VIEWER),
    ("GET", "/api/stats", {}, Role.VIEWER),
    ("GET", "/api/stats.csv", {}, Role.VIEWER),
    ("GET", "/api/groups", {}, Role.VIEWER),
    ("GET", "/api/accounts", {}, Role.ADMIN),
    ("GET", "/api/audit", {}, Role.ADMIN),
    ("POST", "/logout", {}, Role.VIEWER),
]


def test_every_route_of_the_console_is_in_the_matrix_and_states_its_role(tmp_path: Path,
                                                                        ) -> None:
    from console.app import create_app
    app = create_app(settings_for(tmp_path), client=object())
    listed = {(m, p) for m, p, _f, _r in ROUTES}
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method == "HEAD" or path.startswith(PUBLIC_PREFIXES) or path == "/static":
            continue
        concrete = (path.replace("{group}", "g1").replace("{name}", "nobody")
                    .replace("{code}", "QZNOPE1234").replace("{sha}", "0000000")
                    .replace("{ticket}", "nope").replace("{job}", "nope")
                    .replace("{key}", "nope").replace("{campaign}", "checkin_reminder"))
        assert (route.method, concrete) in listed, f"{route.method} {path} is not tested"
        assert getattr(route.handler, ROLE_ATTR, None) is not None, f"{path} states no role"


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_reaches_exactly_the_routes_it_may(login: Login, role: Role) -> None:
    client = await login(role)
    for method, path, form, weakest in ROUTES:
        if path == "/logout":
            continue
        if method == "POST":
            form = {**form, "_csrf": await csrf_of(client, "/me")}
        response = await client.request(method, path, data=form or None,
                                        allow_redirects=False)
        if role >= weakest:
            assert response.status in (200, 303, 400, 404, 409), (role, method, path,
                                                                  response.status)
        else:
            assert response.status == 403, (role, method, path, response.status)
            if path.startswith("/api/"):
                assert "权限" in (await response.json())["error"]


async def test_without_signing_in_pages_go_to_login_and_the_api_answers_401(
    anonymous: TestClient,
) -> None:
    for method, path, _form, _role in ROUTES:
        response = await anonymous.request(method, path, allow_redirects=False)
        if path.startswith("/api/"):
            assert response.status == 401, path
            assert "登录" in (await response.json())["error"]
        else:
            assert response.status == 303, path
            assert response.headers["Location"].startswith("/login?next=")


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    login: Login, accounts: Accounts,
) -> None:
    admin = await login(Role.ADMIN)
    form = {"name": "sneaky", "display": "x", "role": "admin", "password": "long-enough-1"}
    for sent in ({}, {"_csrf": "forged"}):
        response = await admin.post("/accounts", data={**form, **sent}, allow_redirects=False)
        assert response.status == 403
        assert "CSRF" in await response.text()
    assert await accounts.get("sneaky") is None
    response = await admin.post("/accounts", data={**form, "_csrf": await csrf_of(admin, "/me")})
    assert response.status == 200 and await accounts.get("sneaky") is not None


async def test_ten_wrong_passwords_lock_the_name_even_for_the_right_one(
    anonymous: TestClient, accounts: Accounts,
) -> None:
    await accounts.create("clerk", "店员", Role.VIEWER, PASSWORD)
    statuses = [await sign_in(anonymous, "clerk", "wrong-password!") for _ in range(10)]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429] * 5
    assert await sign_in(anonymous, "clerk", PASSWORD) == 429  # locked: the right one too
    page = await anonymous.get("/login")
    assert page.status == 200


async def test_signing_in_gives_a_new_session_and_signing_out_ends_it(
    console_server: TestServer, accounts: Accounts,
) -> None:
    await accounts.create("ops", "运营", Role.VIEWER, PASSWORD)
    async with TestClient(console_server) as client:
        await client.get("/login")
        before = client.session.cookie_jar.filter_cookies(client.make_url("/"))["qz_console"].value
        assert await sign_in(client, "ops") == 303
        after = client.session.cookie_jar.filter_cookies(client.make_url("/"))["qz_console"].value
        assert before != after  # a cookie planted before sign-in is worth nothing after
        assert (await client.get("/api/me")).status == 200
        await client.post("/logout", data={"_csrf": await csrf_of(client, "/me")})
        assert (await client.get("/api/me")).status == 401


async def test_a_role_change_or_deletion_takes_effect_on_the_next_request(
    login: Login, accounts: Accounts,
) -> None:
    editor = await login(Role.EDITOR)
    name = (await (await editor.get("/api/me")).json())["name"]
    assert (await editor.get("/api/accounts")).status == 403
    await accounts.set_role(name, Role.ADMIN)
    assert (await editor.get("/api/accounts")).status == 200
    await accounts.create("otheradmin", "另一位管理员", Role.ADMIN, PASSWORD)
    await accounts.set_role(name, Role.VIEWER)
    await accounts.delete(name)
    assert (await editor.get("/api/me")).status == 401


async def test_the_last_admin_cannot_be_removed_or_demoted(login: Login,
                                                           accounts: Accounts) -> None:
    admin = await login(Role.ADMIN)
    name = (await (await admin.get("/api/me")).json())["name"]
    token = await csrf_of(admin, "/me")
    response = await admin.post(f"/accounts/{name}/role", data={"role": "viewer",
                                                                "_csrf": token})
    assert response.status == 400 and "至少要保留一位管理员" in await response.text()
    assert (await accounts.get(name)).role is Role.ADMIN  # type: ignore[union-attr]


async def test_api_tokens_work_without_cookies_and_stop_when_revoked(
    login: Login, console_server: TestServer,
) -> None:
    viewer = await login(Role.VIEWER)
    page = await viewer.post("/me/tokens", data={"_csrf": await csrf_of(viewer, "/me")})
    text = await page.text()
    token = text.split('id="new-token">')[1].split("<")[0]
    async with TestClient(console_server) as script:
        auth = {"Authorization": f"Bearer {token}"}
        assert (await script.get("/api/me", headers=auth)).status == 200
        assert (await script.get("/api/accounts", headers=auth)).status == 403  # a viewer's
        bad = await script.get("/api/me", headers={"Authorization": "Bearer qzc_nope"})
        assert bad.status == 401
        await viewer.post("/me/tokens/revoke", data={"_csrf": await csrf_of(viewer, "/me")})
        assert (await script.get("/api/me", headers=auth)).status == 401


async def test_every_change_is_in_the_audit_log_with_who_and_what(login: Login) -> None:
    admin = await login(Role.ADMIN)
    token = await csrf_of(admin, "/me")
    await admin.post("/accounts", data={"name": "clerk2", "display": "店员", "role": "viewer",
                                        "password": "long-enough-1", "_csrf": token})
    await admin.post("/accounts/clerk2/role", data={"role": "editor", "_csrf": token})
    entries = (await (await admin.get("/api/audit")).json())["entries"]
    actions = [(e["action"], e["target"]) for e in entries]
    assert ("新建账号", "clerk2") in actions and ("修改角色", "clerk2") in actions
    change = next(e for e in entries if e["action"] == "修改角色")
    assert change["diff"] == {"role": ["viewer", "editor"]}
    assert change["who"].startswith("admin")
    page = await admin.get("/audit")
    assert "修改角色" in await page.text()


async def test_passwords_are_stored_as_argon2id_hashes_never_as_given(
    accounts: Accounts, redis_client: object,
) -> None:
    await accounts.create("hashcheck", "x", Role.VIEWER, PASSWORD)
    stored = await redis_client.hget("qz:{console}:user:hashcheck", "hash")  # type: ignore[attr-defined]
    text = stored.decode() if isinstance(stored, bytes) else stored
    assert text.startswith("$argon2id$") and PASSWORD not in text


async def test_the_first_admin_is_made_once_and_its_password_kept_owner_only(
    accounts: Accounts, tmp_path: Path,
) -> None:
    password = await accounts.ensure_first_admin()
    assert password and await accounts.verify("admin", password) is not None
    assert await accounts.ensure_first_admin() is None
    settings = settings_for(tmp_path)
    write_first_login(settings, password)
    mode = stat.S_IMODE(os.stat(settings.first_login_file).st_mode)
    assert mode == 0o600
    assert settings.first_login_file.read_text().split() == ["admin", password]


async def test_pages_send_headers_that_keep_scripts_local_and_forbid_framing(
    login: Login,
) -> None:
    viewer = await login(Role.VIEWER)
    response = await viewer.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_changing_the_first_admins_password_forgets_the_generated_one(
    console_server: TestServer, accounts: Accounts,
) -> None:
    password = await accounts.ensure_first_admin()
    assert password
    settings = console_server.app[keys.SETTINGS]
    write_first_login(settings, password)
    async with TestClient(console_server) as client:
        assert await sign_in(client, "admin", password) == 303
        page = await client.post("/me/password", data={
            "current": password, "new": "a-new-long-password", "again": "a-new-long-password",
            "_csrf": await csrf_of(client, "/me")})
        assert "密码已修改" in await page.text()
    assert not settings.first_login_file.exists()
    assert await accounts.verify("admin", "a-new-long-password") is not None
