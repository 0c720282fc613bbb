"""One Rasa slot: runs the model the registry assigns it, on its own port (blue-green).

`python -m qunzhu.tools.rasaslot a` serves on QZ_RASA_PORT, `b` on QZ_RASA_STANDBY_PORT. The
slot reads its assignment from Redis (qunzhu.models) twice a second: a new model → its Rasa is
stopped (SIGTERM: Sanic finishes the requests in flight) and started again with it; no model →
no Rasa, a few megabytes of Python waiting. Once Rasa answers, the slot records which model it
serves, which is what the publisher waits for before switching turns to it.

Slot "a" adopts the trained model (models/qunzhu.tar.gz) on a first start, when nothing is live
yet. If its Rasa dies, the slot starts it again after a growing pause (a candidate that cannot
load never takes the stack down); Rasa runs in the slot's process group, so a kill of the slot
takes Rasa with it, and `make run` restarts the slot.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp

from qunzhu import settings
from qunzhu.config import load_brand
from qunzhu.models import SLOTS, ModelRegistry, Release
from qunzhu.redisconn import REDIS_DOWN, async_client, cluster_mode

log = logging.getLogger("qunzhu.rasaslot")

ROOT = settings.PROJECT_ROOT
DEFAULT_MODEL = ROOT / "models" / "qunzhu.tar.gz"
POLL_S = 0.5
LOAD_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 20.0


def slot_port(slot: str) -> int:
    """The port each slot serves on."""
    return int(settings.get("QZ_RASA_PORT" if slot == "a" else "QZ_RASA_STANDBY_PORT"))


def slot_url(slot: str) -> str:
    """The address turns use to reach a slot."""
    return f"http://127.0.0.1:{slot_port(slot)}"


def initial_release(model: Path = DEFAULT_MODEL) -> Release:
    """The model `make train` built, as the release a first start adopts."""
    at = model.stat().st_mtime if model.exists() else time.time()
    return Release(id="initial", model=str(model), commit="", by="make train", at=at,
                   summary="make train 训练的模型")


def rasa_argv(model: str, port: int) -> list[str]:
    """Rasa serving one model on one port, with its API (token-protected) for warming."""
    argv = [sys.executable, "-m", "qunzhu.tools.rasacli", "run", "-i", "127.0.0.1",
            "-p", str(port), "-m", model, "--endpoints", "endpoints.yml",
            "--credentials", "credentials.yml"]
    token = settings.get("QZ_RASA_API_TOKEN")
    if token:
        argv += ["--enable-api", "--auth-token", token]
    return argv


class Slot:
    """Keeps one port serving the model its assignment names."""

    def __init__(self, name: str, registry: ModelRegistry) -> None:
        self.name = name
        self.port = slot_port(name)
        self.registry = registry
        self.model: str | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop after the current step (SIGTERM)."""
        self._stopping.set()

    async def run(self) -> int:
        """Follow the assignment until stopped (a Rasa that dies is started again)."""
        crashes = 0
        async with aiohttp.ClientSession() as http:
            while not self._stopping.is_set():
                wanted = await self._wanted()
                if wanted != self.model:
                    await self._serve(http, wanted)
                if self.proc is not None and self.proc.returncode is not None:
                    # Not an exit: a candidate that cannot load must not take the stack down.
                    crashes += 1
                    pause = min(30.0, 2.0 ** crashes)
                    log.error("slot %s: Rasa exited with code %s; starting it again in %.0f s",
                              self.name, self.proc.returncode, pause)
                    await self._halt()
                    self.model = None
                    await self._pause(pause)
                    continue
                if self.proc is not None and crashes:
                    crashes = 0 if await self._running_fine() else crashes
                await self._pause(POLL_S)
        await self._halt()
        return 0

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _running_fine(self) -> bool:
        try:
            return await self.registry.running(self.name) == self.model
        except REDIS_DOWN:
            return False

    async def _wanted(self) -> str | None:
        """The model this slot should serve now (what it serves, while Redis cannot say)."""
        try:
            wanted = await self.registry.assignment(self.name)
            if (wanted is None and self.name == "a" and DEFAULT_MODEL.exists()
                    and not await self.registry.live_slot()):
                # A first start, or the registry is gone (a flushed or new Redis): slot a
                # serves the trained model rather than nothing.
                await self.registry.adopt("a", slot_url("a"), initial_release())
                wanted = await self.registry.assignment(self.name)
        except REDIS_DOWN as exc:
            log.warning("slot %s: Redis unreachable (%s); serving on", self.name,
                        type(exc).__name__)
            return self.model
        if wanted is not None and not Path(wanted).exists():
            log.error("slot %s: model %s is missing; keeping what runs", self.name,
                      Path(wanted).name)
            return self.model
        return wanted

    async def _serve(self, http: aiohttp.ClientSession, model: str | None) -> None:
        await self._halt()
        self.model = model
        if model is None:
            log.info("slot %s: idle", self.name)
            return
        log.info("slot %s: starting Rasa with %s on port %d", self.name, Path(model).name,
                 self.port)
        env = {**os.environ, "SANIC_ACCESS_LOG": "false"}  # URLs carry the API token
        self.proc = await asyncio.create_subprocess_exec(
            *rasa_argv(model, self.port), cwd=ROOT, env=env)
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while time.monotonic() < deadline and not self._stopping.is_set():
            if self.proc.returncode is not None:
                return
            if await loaded(http, self.port, model):
                with contextlib.suppress(*REDIS_DOWN):
                    await self.registry.mark_running(self.name, model)
                log.info("slot %s: serving %s", self.name, Path(model).name)
                return
            await asyncio.sleep(0.25)

    async def _halt(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(*REDIS_DOWN):
            await self.registry.mark_running(self.name, None)
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()


async def loaded(http: aiohttp.ClientSession, port: int, model: str) -> bool:
    """Whether the Rasa on this port answers with this model loaded.

    Rasa answers `/` even when its model failed to load; `/status` (with the API token) says
    which model it has, or 409 without one.
    """
    token = settings.get("QZ_RASA_API_TOKEN")
    url = f"http://127.0.0.1:{port}/" + ("status" if token else "")
    try:
        async with http.get(url, params={"token": token} if token else None,
                            timeout=aiohttp.ClientTimeout(total=2)) as resp:
            if resp.status != 200:
                return False
            if not token:
                return True
            doc = await resp.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
        return False
    return isinstance(doc, dict) and str(doc.get("model_file", "")) == Path(model).name


async def serve(name: str) -> int:
    """Run one slot until SIGTERM."""
    r = async_client(settings.redis_url(), cluster=cluster_mode(), timeout_s=5)
    registry = ModelRegistry(r, load_brand().id)
    slot = Slot(name, registry)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, slot.stop)
    try:
        return await slot.run()
    finally:
        await r.close()


def main(argv: list[str] | None = None) -> int:
    """Serve the slot named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("slot", choices=SLOTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return asyncio.run(serve(args.slot))


if __name__ == "__main__":
    sys.exit(main())
