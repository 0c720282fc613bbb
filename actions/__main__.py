"""Start the action server with the operator YAML (or its last good version; never none)."""

from __future__ import annotations

import logging
import os
import sys

from actions import config
from qunzhu import settings
from qunzhu.quiet import quiet_library_deprecations


def main() -> int:
    """Load brand.yml and games.yml, move game state an older version left, then serve
    actions on 127.0.0.1 by default.

    An invalid file is reported and its last good version serves; only a file that was
    never valid stops the start.
    """
    quiet_library_deprecations()
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s - %(message)s")
    # Sanic's access records carry their text in extra fields this format does not show:
    # every request would print an empty "sanic.access -" line.
    logging.getLogger("sanic.access").setLevel(logging.WARNING)
    try:
        config.live_files()
    except config.ConfigError as exc:
        print(f"qunzhu actions: refusing to start, fix the config first:\n{exc}",
              file=sys.stderr)
        return 2
    from actions.legacy import migrate_when_ready
    from actions.store import redis_url
    from qunzhu.redisconn import sync_client

    migrate_when_ready(lambda: sync_client(redis_url(), decode_responses=True,
                                           socket_timeout=30, socket_connect_timeout=5),
                       config.brand().id)
    os.environ.setdefault("SANIC_HOST", "127.0.0.1")
    from rasa_sdk.endpoint import run

    run("actions", port=int(settings.get("QZ_ACTIONS_PORT")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
