"""`GET /api/customer-groups`: what qunzhu did in customer groups (外部群), through WeCom.

The welcome templates of data/customer_groups.yml with their WeCom template_ids and whether
WeCom's copy is in step; each mass send with its state, per-group outcome (pending, sent,
not_sent, failed, skipped — with reasons such as monthly_cap or not_confirmed), counts and
the owners' tasks. `?send=<id>` gives one mass send. Needs the bridge's bearer token, like
the rest of its API.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from bot.campaigns.customer import known_sends, send_report
from bot.campaigns.welcome_sync import synced_templates
from bot.common import appkeys
from bot.common.auth import authorised
from bot.wecom.customer_api import monthly_cap
from qunzhu.config import SHANGHAI
from qunzhu.customergroups import CustomerGroupsFile
from qunzhu.redisconn import REDIS_DOWN

MAX_GROUPS = 500  # groups listed per send (the counts cover them all)

CustomerGroupsNow = Callable[[], CustomerGroupsFile]  # the file now in force (reloaded live)
CUSTOMER_GROUPS: web.AppKey[CustomerGroupsNow] = web.AppKey("customer_groups")


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def customer_groups(request: web.Request) -> web.Response:
    """Templates synced and their WeCom ids; each mass send with per-group status and counts."""
    if not authorised(request):
        return _problem(401, "missing or wrong bearer token")
    app = request.app
    file = app[CUSTOMER_GROUPS]() if CUSTOMER_GROUPS in app else CustomerGroupsFile()
    redis, brand = app[appkeys.REDIS], app[appkeys.BRAND_ID]
    only = request.query.get("send", "")
    try:
        ids = [s.id for s in file.mass_sends]
        ids += [i for i in await known_sends(redis, brand) if i not in ids]
        if only:
            if only not in ids:
                return _problem(404, f"no mass send {only!r} in the customer groups file")
            ids = [only]
        templates = [] if only else await synced_templates(redis, brand, file)
        sends = [await send_report(redis, brand, file.send(i), i, max_groups=MAX_GROUPS)
                 for i in ids]
    except REDIS_DOWN:
        return _problem(503, "customer group status unavailable, retry")
    local = datetime.fromtimestamp(app[appkeys.CLOCK].now(), tz=SHANGHAI)
    body: dict[str, object] = {"mass_sends": sends, "monthly_cap": {
        "month": f"{local:%Y-%m}", "per_group": monthly_cap(local)}}
    if not only:
        body["welcome_templates"] = templates
    return web.json_response(body)


def add_routes(app: web.Application) -> None:
    """Mount GET /api/customer-groups."""
    app.router.add_get("/api/customer-groups", customer_groups)


__all__ = ["CUSTOMER_GROUPS", "CustomerGroupsNow", "add_routes", "customer_groups"]
