"""`python -m bot`: start the WeCom bridge (callbacks, HTTP API, turn worker, sender)."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from bot.app import Background, create_app
from bot.common import logsafe
from bot.common.configwatch import OperatorFiles
from bot.common.eventloop import new_event_loop
from bot.common.settings import BridgeSettings
from bot.wecom.errors import WeComCryptoError
from qunzhu.yamlconfig import ConfigError


def main() -> int:
    """Validate settings, then serve until Ctrl-C; exit 2 on bad configuration."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bridge %(levelname)s %(message)s")
    try:
        settings = BridgeSettings.from_env()
        files = OperatorFiles.load(settings.groups_file)
        directory = files.groups.value
        background = Background(turns="turns" in settings.roles, sender="sender" in settings.roles,
                                handoff="handoff" in settings.roles,
                                events="events" in settings.roles,
                                campaigns="campaigns" in settings.roles)
        app = create_app(settings, files=files, background=background)
    except (ConfigError, WeComCryptoError, ValueError) as exc:
        print(f"bridge: refusing to start: {exc}", file=sys.stderr)
        return 2
    secrets = [settings.token, settings.encoding_aes_key, settings.corp_secret,
               settings.api_token, *(r.key for r in directory.robots.values())]
    logsafe.install(secrets)
    log = logging.getLogger("bot")
    if not settings.token or not settings.encoding_aes_key:
        log.warning("WECOM_TOKEN / WECOM_ENCODING_AES_KEY unset: callbacks answer 503")
    if not settings.api_token:
        log.warning("BRIDGE_API_TOKEN unset: the HTTP API refuses every request")
    for group in directory.unkeyed:
        log.warning("no webhook key for group %s: its posts will be dead-lettered", group)
    # reuse_port: several bridge processes may listen on one port (the kernel spreads the
    # callbacks), so one that dies or restarts never leaves WeCom without an answer.
    web.run_app(app, host=settings.host, port=settings.port, print=None, reuse_port=True,
                access_log=None, handle_signals=True, shutdown_timeout=5,
                loop=new_event_loop())
    return 0


if __name__ == "__main__":
    sys.exit(main())
