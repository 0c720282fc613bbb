"""A console on a real Redis (server and cluster), with signed-in operators of every role."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

from console import keys
from console.accounts import Accounts
from console.app import create_app
from console.roles import Role
from console.settings import ConsoleSettings
from qunzhu.redisconn import AsyncRedis
from qunzhu.settings import PROJECT_ROOT

BRAND = "testbrand"
PASSWORD = "correct-horse-battery"
# Fast argon2 parameters for tests only (the console uses argon2-cffi's defaults).
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
CSRF = re.compile(r'name="_csrf" value="([^"]+)"')

Login = Callable[[Role], Awaitable[TestClient]]


def project_copy(tmp_path: Path) -> Path:
    """The operator-owned files of the project in a git repository of their own: the tests
    teach and revert there, never in the real project."""
    root = tmp_path / "project"
    if (root / ".git").exists():
        return root
    # Everything a model is trained and tested from, so 发布 can train from the copy too.
    shutil.copytree(PROJECT_ROOT / "data", root / "data", dirs_exist_ok=True)
    (root / "tests").mkdir(parents=True, exist_ok=True)
    for name in ("domain.yml", "config.yml", "tests/nlu_holdout.yml", "tests/nlu_members.yml",
                 "tests/nlu_members_b.yml", "tests/test_stories.yml"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    dev = ["-c", "user.name=开发", "-c", "user.email=dev@example.com"]
    for args in (["init", "-q"], ["add", "-A"], [*dev, "commit", "-q", "-m", "项目初始"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return root


def settings_for(tmp_path: Path) -> ConsoleSettings:
    groups = tmp_path / "groups.yml"
    groups.write_text(
        "groups:\n"
        "  - chatid: g1\n    name: 国贸店福利群\n    webhook_key_env: K1\n"
        "  - chatid: g2\n    name: 望京店福利群\n    webhook_key_env: K2\n", "utf-8")
    return ConsoleSettings(host="127.0.0.1", port=0, redis_url="", redis_cluster=False,
                           brand=BRAND, brand_name="测试咖啡", groups_file=groups,
                           first_login_file=tmp_path / "first-login.txt", session_hours=1,
                           secure_cookie=False, project_root=project_copy(tmp_path))


@pytest.fixture
async def console_server(redis_client: AsyncRedis, tmp_path: Path
                         ) -> AsyncIterator[TestServer]:
    app = create_app(settings_for(tmp_path), redis_client)
    app[keys.ACCOUNTS] = Accounts(redis_client, FAST)
    server = TestServer(app)
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
def accounts(console_server: TestServer) -> Accounts:
    return console_server.app[keys.ACCOUNTS]


async def csrf_of(client: TestClient, path: str = "/login") -> str:
    page = await client.get(path)
    found = CSRF.search(await page.text())
    assert found, f"no CSRF token on {path}"
    return found.group(1)


async def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> int:
    """Sign in through the login form as a browser does; the response status."""
    token = await csrf_of(client)
    response = await client.post("/login", data={"name": name, "password": password,
                                                 "_csrf": token, "next": "/"},
                                 allow_redirects=False)
    return response.status


@pytest.fixture
async def login(console_server: TestServer, accounts: Accounts) -> AsyncIterator[Login]:
    """A browser-like client signed in as a new operator of the given role."""
    clients: list[TestClient] = []

    async def make(role: Role) -> TestClient:
        name = f"{role.name.lower()}{len(clients)}"
        await accounts.create(name, f"测试{role.label}", role, PASSWORD)
        client = TestClient(console_server)
        await client.start_server()
        clients.append(client)
        assert await sign_in(client, name) == 303
        return client

    yield make
    for client in clients:
        await client.close()


async def editor_and_root(login: Login) -> tuple[TestClient, Path]:
    """A signed-in editor and the git copy of the project the console edits."""
    client = await login(Role.EDITOR)
    return client, client.app[keys.SETTINGS].project_root  # type: ignore[index]


@pytest.fixture
async def anonymous(console_server: TestServer) -> AsyncIterator[TestClient]:
    client = TestClient(console_server)
    await client.start_server()
    yield client
    await client.close()
