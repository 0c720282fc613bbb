"""Keep WeCom's 入群欢迎语素材 library in step with data/customer_groups.yml.

Each template in the file has a stable local id; the WeCom template_id qunzhu got for it is
remembered in one Redis hash per brand (field = local id), with a digest of what was sent.
Every tick compares the file with the hash: a new id is added, a changed one edited, a
removed one deleted — only template_ids recorded here, so a template somebody made in the
admin console is never touched. Removing a link cannot be expressed by `edit` (it keeps the
kinds it is not given), so that change adds a new template and deletes the old one.

Any number of bridge processes may run the loop: an entry is claimed (a Lua script, with
an expiry) before its WeCom call, so two processes never add the same id at once. A failed
call is recorded with its errcode and tried again after a growing pause (30 s … 1 h); a
template that vanished from WeCom (edit → INVALID_TEMPLATE_ID) is added again. An `add`
whose answer was lost may have created a template no one can name (WeCom has no list API
for them): the entry counts such `orphans` and the API shows them, so an operator can
delete the stray copy in the admin console.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.common.clock import Clock
from bot.wecom.api import WeComApi, WeComApiError
from bot.wecom.customer_api import INVALID_TEMPLATE_ID, CustomerContact, Link, WelcomeContent
from qunzhu.customergroups import CustomerGroupsFile, WelcomeTemplate
from qunzhu.redisconn import REDIS_DOWN, AsyncRedis, script_arg, text_of

log = logging.getLogger(__name__)

CLAIM_MS = 60_000  # longer than any WeCom call may take
RETRY_FIRST_S = 30
RETRY_MAX_S = 3600

# KEYS[1] the templates hash  ARGV[1] {id, owner, now (ms), ms}
# claims an entry for one WeCom call; returns the entry (JSON) or 'busy' / 'wait'
CLAIM = """
local a = cjson.decode(ARGV[1])
local raw = redis.call('HGET', KEYS[1], a.id)
local e = {}
if raw then
  e = cjson.decode(raw)
  if e.claim and e.claim ~= a.owner and (e.claim_until or 0) > a.now then return 'busy' end
  if (e.retry_at or 0) > a.now then return 'wait' end
end
e.claim = a.owner
e.claim_until = a.now + a.ms
redis.call('HSET', KEYS[1], a.id, cjson.encode(e))
return cjson.encode(e)
"""

# KEYS[1] the templates hash
# ARGV[1] {id, owner, set (fields to write; null removes one), forget (bool), keep (bool)}
# writes the fields (or removes the entry) and ends our claim unless `keep`;
# 0 when the claim was not ours (it expired and another process took the entry)
FINISH = """
local a = cjson.decode(ARGV[1])
local raw = redis.call('HGET', KEYS[1], a.id)
if not raw then return 0 end
local e = cjson.decode(raw)
if e.claim ~= a.owner then return 0 end
if a.forget then redis.call('HDEL', KEYS[1], a.id) return 1 end
for k, v in pairs(a.set) do
  if v == cjson.null then e[k] = nil else e[k] = v end
end
if not a.keep then
  e.claim = nil
  e.claim_until = nil
end
redis.call('HSET', KEYS[1], a.id, cjson.encode(e))
return 1
"""


def templates_key(brand: str) -> str:
    """The hash of local id → WeCom template (one slot: the brand's customer groups)."""
    return f"qz:{{{brand}:cg}}:tpl"


def content_of(template: WelcomeTemplate) -> WelcomeContent:
    """What a template in the file asks WeCom to show."""
    link = template.link
    return WelcomeContent(template.text, Link(link.title, link.url, link.desc or "",
                                              link.picurl or "") if link else None)


def digest(content: WelcomeContent) -> str:
    """A short fingerprint of a template's content (what was last sent to WeCom)."""
    doc = json.dumps(content.to_json(), ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()[:16]


@dataclass
class SyncTally:
    """What this process did (logs and tests)."""

    added: int = 0
    edited: int = 0
    deleted: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class WelcomeSync:
    """Adds, edits and deletes WeCom welcome templates until they match the file."""

    def __init__(self, client: AsyncRedis, brand: str,
                 customer: Callable[[], CustomerGroupsFile],
                 wecom: WeComApi | CustomerContact, clock: Clock, *, owner: str = "",
                 tick_s: float = 30.0) -> None:
        self._r = client
        self._key = templates_key(brand)
        self._customer = customer
        self._wecom = wecom if isinstance(wecom, CustomerContact) else CustomerContact(wecom)
        self._clock = clock
        self.owner = f"{owner or 'welcome'}-{secrets.token_hex(4)}"
        self._tick_s = tick_s
        self._claim = client.register_script(CLAIM)
        self._finish = client.register_script(FINISH)
        self._stopping = asyncio.Event()
        self.tally = SyncTally()

    def stop(self) -> None:
        """Return from run() after the current step."""
        self._stopping.set()

    async def run(self) -> None:
        """Sync every tick until stopped; Redis trouble pauses, a bug is logged."""
        while not self._stopping.is_set():
            try:
                await self.tick()
            except REDIS_DOWN as exc:
                log.warning("welcome templates not synced: Redis %s", type(exc).__name__)
            except Exception:  # one bad step must not end the loop
                log.exception("welcome template sync failed; trying again")
            await self._clock.sleep(self._tick_s)

    def _now_ms(self) -> int:
        return int(self._clock.now() * 1000)

    async def tick(self) -> SyncTally:
        """Bring every template that differs from the file in step (one call each)."""
        wanted = {t.id: t for t in self._customer().welcome_templates}
        stored = {text_of(k): json.loads(text_of(v))
                  for k, v in (await self._r.hgetall(self._key)).items()}
        work = [i for i in sorted(set(wanted) | set(stored))
                if _needs_work(wanted.get(i), stored.get(i))]
        for local_id in work:
            if self._stopping.is_set():
                break
            await self._one(local_id, wanted.get(local_id))
        return self.tally

    async def _one(self, local_id: str, template: WelcomeTemplate | None) -> None:
        raw = await self._claim(keys=[self._key], args=[script_arg({
            "id": local_id, "owner": self.owner, "now": self._now_ms(), "ms": CLAIM_MS})])
        reply = text_of(raw)
        if reply in ("busy", "wait"):
            return
        entry: dict[str, Any] = json.loads(reply)
        if not _needs_work(template, entry):  # another process finished it meanwhile
            await self._write(local_id, {})
            return
        try:
            if template is None:
                await self._remove(local_id, entry)
            else:
                await self._put(local_id, template, entry)
        except WeComApiError as exc:
            await self._failed(local_id, entry, exc)

    async def _put(self, local_id: str, template: WelcomeTemplate,
                   entry: dict[str, Any]) -> None:
        """Edit the template, or add it (first time, gone from WeCom, or a link removed)."""
        content = content_of(template)
        stale = [str(t) for t in entry.get("stale") or []]
        current = str(entry.get("template_id") or "")
        if current and entry.get("link") and content.link is None:
            stale.append(current)  # edit keeps a link it is not given: replace the template
            current = ""
        if current and entry.get("digest") != digest(content):
            try:
                await self._wecom.edit_welcome_template(current, content)
                self.tally.edited += 1
                log.info("welcome template %s edited", local_id)
            except WeComApiError as exc:
                if exc.errcode != INVALID_TEMPLATE_ID:
                    raise
                log.warning("welcome template %s is gone from WeCom; adding it again",
                            local_id)
                current = ""
        if not current:
            # what must still be deleted is on record before the add (a crash keeps it)
            await self._write(local_id, {"stale": stale, "template_id": None}, keep=True)
            try:
                current = await self._wecom.add_welcome_template(content,
                                                                 notify=template.notify)
            except WeComApiError as exc:
                if exc.maybe_applied:
                    entry["orphans"] = int(entry.get("orphans") or 0) + 1
                    log.warning("welcome template %s: WeCom's answer was lost; a stray copy "
                                "may be in the library", local_id)
                raise
            self.tally.added += 1
            log.info("welcome template %s added", local_id)
        stale = await self._delete(stale)
        await self._write(local_id, {
            "template_id": current, "digest": digest(content),
            "link": content.link is not None, "stale": stale or None, "fails": None,
            "retry_at": None, "error": None, "synced_at": int(self._clock.now()),
            "orphans": entry.get("orphans")})

    async def _remove(self, local_id: str, entry: dict[str, Any]) -> None:
        """Delete what qunzhu created for an id the file no longer has, then forget it."""
        ids = [str(t) for t in entry.get("stale") or []]
        if entry.get("template_id"):
            ids.append(str(entry["template_id"]))
        left = await self._delete(ids)
        if left:
            await self._write(local_id, {"template_id": None, "stale": left}, keep=True)
            raise WeComApiError("group_welcome_template/del", -2)
        await self._finish(keys=[self._key], args=[script_arg(
            {"id": local_id, "owner": self.owner, "set": {}, "forget": True, "keep": False})])
        log.info("welcome template %s deleted", local_id)

    async def _delete(self, template_ids: list[str]) -> list[str]:
        """Delete templates qunzhu created; those that could not be deleted yet."""
        left = []
        for template_id in template_ids:
            try:
                await self._wecom.del_welcome_template(template_id)
                self.tally.deleted += 1
            except WeComApiError as exc:
                if exc.errcode == INVALID_TEMPLATE_ID:
                    continue  # already gone
                log.warning("welcome template %s not deleted yet (errcode %s)", template_id,
                            exc.errcode)
                left.append(template_id)
        return left

    async def _failed(self, local_id: str, entry: dict[str, Any], exc: WeComApiError) -> None:
        fails = int(entry.get("fails") or 0) + 1
        pause = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (fails - 1))
        self.tally.failed += 1
        self.tally.errors[str(exc.errcode)] = self.tally.errors.get(str(exc.errcode), 0) + 1
        log.warning("welcome template %s: WeCom said errcode %s; trying again in %s s",
                    local_id, exc.errcode, pause)
        await self._write(local_id, {"fails": fails, "error": exc.errcode,
                                     "retry_at": self._now_ms() + pause * 1000,
                                     "orphans": entry.get("orphans")})

    async def _write(self, local_id: str, fields: dict[str, Any], *, keep: bool = False) -> None:
        """Write fields of our claimed entry; the claim ends unless `keep`."""
        await self._finish(keys=[self._key], args=[script_arg(
            {"id": local_id, "owner": self.owner, "set": fields, "forget": False,
             "keep": keep})])


def _needs_work(template: WelcomeTemplate | None, entry: dict[str, Any] | None) -> bool:
    """Whether WeCom's copy differs from the file (or an old copy awaits deletion)."""
    if template is None:
        return entry is not None
    if entry is None or not entry.get("template_id") or entry.get("stale"):
        return True
    return str(entry.get("digest")) != digest(content_of(template))


async def synced_templates(client: AsyncRedis, brand: str,
                           customer: CustomerGroupsFile) -> list[dict[str, Any]]:
    """Each template in the file or still in WeCom: its WeCom id and whether it is in step."""
    stored = {text_of(k): json.loads(text_of(v))
              for k, v in (await client.hgetall(templates_key(brand))).items()}
    wanted = {t.id: t for t in customer.welcome_templates}
    out = []
    for local_id in sorted(set(wanted) | set(stored)):
        entry = stored.get(local_id) or {}
        template = wanted.get(local_id)
        out.append({
            "id": local_id, "in_file": template is not None,
            "template_id": entry.get("template_id") or None,
            "synced": not _needs_work(template, stored.get(local_id)),
            "synced_at": entry.get("synced_at"), "error": entry.get("error"),
            "fails": int(entry.get("fails") or 0), "orphans": int(entry.get("orphans") or 0),
            "pending_deletes": len(entry.get("stale") or [])})
    return out


__all__ = ["SyncTally", "WelcomeSync", "content_of", "digest", "synced_templates",
           "templates_key"]
