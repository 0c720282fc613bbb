"""A broken operator file: the bridge keeps serving, tells staff once, and says so in its API."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.app import Background, create_app
from bot.common.configwatch import OperatorFiles, load_campaigns_text
from bot.common.groups import load_directory
from bot.common.store import OUTBOX
from qunzhu.config import load_brand, load_games
from qunzhu.liveconfig import LiveFile
from qunzhu.redisconn import AsyncRedis
from tests.bridge.conftest import directory
from tests.conftest import API_TOKEN, bridge_settings

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def _settled(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    past = time.time() - 5
    os.utime(path, (past, past))


async def _json(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, object]]:
    async with session.get(url, headers=AUTH) as resp:
        return resp.status, await resp.json()


async def test_a_broken_games_file_is_reported_once_and_never_silences_anything(
    tmp_path: Path, redis_url: str, redis_client: AsyncRedis,
) -> None:
    games_text = (ROOT / "data" / "games.yml").read_text(encoding="utf-8")
    games = tmp_path / "games.yml"
    _settled(games, games_text)
    keep = tmp_path / "keep"
    files = OperatorFiles(
        brand=LiveFile("brand", ROOT / "data" / "brand.yml", load_brand, keep=keep),
        games=LiveFile("games", games, load_games, keep=keep, check_every_s=0),
        groups=LiveFile("groups", ROOT / "data" / "groups.yml",
                        lambda p, t: load_directory(p, env={}, text=t), keep=keep),
        campaigns=LiveFile("campaigns", ROOT / "data" / "campaigns.yml", load_campaigns_text,
                           keep=keep),
    )
    app = create_app(bridge_settings(redis_url), files=files, directory=directory(),
                     background=Background(False, False, False))
    server = TestServer(app)
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    try:
        async with aiohttp.ClientSession() as session:
            assert (await _json(session, f"{base}/healthz"))[1]["status"] == "ok"
            _settled(games, games_text.replace("daily_limit: 1", "daily_limit: 0"))
            for _ in range(100):
                status, health = await _json(session, f"{base}/healthz")
                if health["status"] == "degraded":
                    break
                await asyncio.sleep(0.05)
            assert status == 200 and health["status"] == "degraded"  # serving, not down
            assert "lucky_draw.daily_limit" in str(health["config_errors"])
            _status, metrics = await _json(session, f"{base}/api/metrics")
            assert metrics["config"]["brand"] == "ok"  # type: ignore[index]
            assert "lucky_draw.daily_limit" in metrics["config"]["games"]  # type: ignore[index]
            await asyncio.sleep(2.5)  # several more checks: still one staff post
            posts = [f for _id, f in await redis_client.xrange(OUTBOX)]
            assert len(posts) == 1 and posts[0][b"group"] == b"staff"
            content = posts[0][b"content"].decode()
            assert "games.yml" in content and "lucky_draw.daily_limit" in content
            assert files.games.value.lucky_draw.daily_limit == 1  # the last good rules serve
            # A message can still be posted while the file is broken.
            async with session.post(f"{base}/api/groups/g1/messages", headers=AUTH,
                                    json={"msgtype": "text", "content": "还在"}) as resp:
                assert resp.status == 202
            _settled(games, games_text)
            for _ in range(100):
                if (await _json(session, f"{base}/healthz"))[1]["status"] == "ok":
                    break
                await asyncio.sleep(0.05)
            assert (await _json(session, f"{base}/healthz"))[1]["config_errors"] == {}
    finally:
        await server.close()


def test_webhook_keys_of_a_reloaded_groups_file_are_redacted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from bot.common import logsafe
    from bot.common.configwatch import load_groups

    logsafe.install([])
    try:
        caplog.handler.addFilter(logsafe._installed[-1])
        path = tmp_path / "groups.yml"
        key = "brand-new-webhook-key-0123456789"
        path.write_text(f"groups:\n  - chatid: g9\n    name: 新群\n    webhook_key: {key}\n",
                        encoding="utf-8")
        directory = load_groups(path, path.read_text(encoding="utf-8"))
        assert directory.robot("g9") is not None
        logging.getLogger("qz.test").warning("posting with %s", key)
        assert key not in caplog.text and "***" in caplog.text
    finally:
        logsafe._installed.pop()
