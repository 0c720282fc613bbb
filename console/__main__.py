"""`python -m console`: serve the operator console; on first start, create the first admin.

The first admin's generated password is written to a file only the owner can read
(`<QZ_DATA_DIR>/console-first-login.txt`), never to the log; `make run` prints it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

from aiohttp import web

from console.app import create_app, first_login
from console.settings import ConsoleSettings
from qunzhu.redisconn import REDIS_DOWN

log = logging.getLogger("console")


def write_first_login(settings: ConsoleSettings, password: str) -> None:
    """Keep the generated first login where `make run` can show it (mode 0600)."""
    path = settings.first_login_file
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(f"admin\n{password}\n")


async def serve(settings: ConsoleSettings) -> None:
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for _ in range(60):
        try:
            password = await first_login(app)
            break
        except REDIS_DOWN:  # started before Redis answers: wait for it
            await asyncio.sleep(1)
    else:
        raise SystemExit("console: Redis did not answer in 60 s")
    if password is not None:
        write_first_login(settings, password)
        log.info("first admin account created; its password is in %s",
                 settings.first_login_file)
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info("console on http://%s:%s", settings.host, settings.port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(ConsoleSettings.from_env()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
