"""The WeCom simulator in its own process, for the bridge benchmark: many groups, /sim/stats.

Keeping it out of the benchmark's event loop means the loop that measures latencies is
not also the one serving a thousand webhook calls a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aiohttp import web

from bot.common.clock import RealClock
from bot.common.eventloop import new_event_loop
from bot.simulator.callbacks import CallbackSender
from bot.simulator.keys import STATE
from bot.simulator.server import create_sim_app
from bot.simulator.state import SimState


class Tally:
    """Posts to groups g* counted as they arrive, so polling costs the simulator nothing."""

    def __init__(self) -> None:
        self.read = 0  # entries of the webhook log already counted
        self.total = 0
        self.distinct: set[str] = set()

    async def stats(self, request: web.Request) -> web.Response:
        """How many posts arrived (in total and distinct), and the errcodes answered."""
        state = request.app[STATE]
        log = state.webhook_log
        for _t, g, p in log[self.read:]:
            if g.startswith("g"):
                self.total += 1
                self.distinct.add(json.dumps(p, sort_keys=True, ensure_ascii=False))
        self.read = len(log)
        return web.json_response({"webhook": self.total, "distinct": len(self.distinct),
                                  "errors": state.errors})


def main(argv: list[str] | None = None) -> int:
    """Serve until terminated."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--groups", type=Path, required=True, help="JSON [[chatid, key], …]")
    args = parser.parse_args(argv)
    state = SimState(RealClock(), token="unused", aes_key="A" * 43, corp_id="unused",
                     corp_secret="unused")
    for chatid, key in json.loads(args.groups.read_text(encoding="utf-8")):
        state.add_group(chatid, chatid, key)
    app = create_sim_app(state, CallbackSender(state, "http://127.0.0.1:9"), bot_name="福利官",
                         public_url=f"http://127.0.0.1:{args.port}")
    app.router.add_get("/sim/stats", Tally().stats)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None,
                loop=new_event_loop())
    return 0


if __name__ == "__main__":
    sys.exit(main())
