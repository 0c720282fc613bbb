"""Start the action server after validating the operator YAML (bad config = no start)."""

from __future__ import annotations

import logging
import os
import sys

from actions import config
from qunzhu import settings


def main() -> int:
    """Validate brand.yml and games.yml, then serve actions on 127.0.0.1 by default."""
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s - %(message)s")
    try:
        config.brand()
        config.games()
    except config.ConfigError as exc:
        print(f"qunzhu actions: refusing to start, fix the config first:\n{exc}",
              file=sys.stderr)
        return 2
    os.environ.setdefault("SANIC_HOST", "127.0.0.1")
    from rasa_sdk.endpoint import run

    run("actions", port=int(settings.get("QZ_ACTIONS_PORT")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
