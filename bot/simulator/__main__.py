"""`python -m bot.simulator`: a local WeCom with the sandbox group page (used by `make run`)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator

from aiohttp import web

from bot.common.clock import RealClock
from bot.simulator.callbacks import CallbackSender
from bot.simulator.customer import add_sandbox_customer_groups
from bot.simulator.server import create_sim_app
from bot.simulator.state import SimMember, SimState
from qunzhu import settings as env
from qunzhu.config import load_brand
from qunzhu.sandbox import SANDBOX_GROUP, SANDBOX_MEMBERS, STAFF_GROUP, STAFF_MEMBERS


def build(bridge_url: str, public_url: str) -> web.Application:
    """The simulator wired to the bridge, with the sandbox and staff groups."""
    clock = RealClock()
    state = SimState(clock, token=env.get("WECOM_TOKEN"),
                     aes_key=env.get("WECOM_ENCODING_AES_KEY"),
                     corp_id=env.get("WECOM_CORP_ID"), corp_secret=env.get("WECOM_CORP_SECRET"))
    brand = load_brand()
    sandbox = state.add_group(SANDBOX_GROUP, f"{brand.name}·福利群（沙盒）",
                              os.environ.get("QZ_SANDBOX_WEBHOOK_KEY", ""))
    now = int(clock.now()) - 86400
    for userid, name in SANDBOX_MEMBERS:  # colleagues in an internal group: type 1
        sandbox.members[userid] = SimMember(userid, name, now, type=1)
    staff = state.add_group(STAFF_GROUP, f"{brand.name}·客服值班群（沙盒）",
                            os.environ.get("QZ_SANDBOX_STAFF_WEBHOOK_KEY", ""))
    for userid, name in STAFF_MEMBERS:
        staff.members[userid] = SimMember(userid, name, now, type=1)
    add_sandbox_customer_groups(state, brand.name)  # 外部群: owner-confirmed 群发 only
    callbacks = CallbackSender(state, bridge_url)
    app = create_sim_app(state, callbacks, bot_name=brand.bot_name, public_url=public_url,
                         clock_file=env.project_path("QZ_DATA_DIR") / "sim-clock-offset")

    async def close_session(app: web.Application) -> AsyncIterator[None]:
        yield
        await callbacks.close()

    app.cleanup_ctx.append(close_session)
    return app


def main() -> int:
    """Serve the simulator until Ctrl-C."""
    logging.basicConfig(level=logging.WARNING)
    port = int(env.get("QZ_SIM_PORT"))
    public = f"http://127.0.0.1:{port}"
    missing = [n for n in ("WECOM_TOKEN", "WECOM_ENCODING_AES_KEY", "WECOM_CORP_ID")
               if not env.get(n)]
    if missing:
        print(f"simulator: set {', '.join(missing)} (make run does)", file=sys.stderr)
        return 2
    app = build(env.get("BRIDGE_URL"), public)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
