"""Which model answers members, and the publish jobs that change it (blue-green, in Redis).

Two Rasa slots ("a" on QZ_RASA_PORT, "b" on QZ_RASA_STANDBY_PORT) each run whatever model the
registry assigns them (qunzhu.tools.rasaslot); the bridge sends turns to the URL in `route`,
read once a second. A publish trains a model, checks it, has the idle slot load it, then moves
`live` and `route` to that slot in one Lua script, so every bridge process switches at once;
the old slot is unassigned (and stops) after the drain. The previous release stays on disk and
on record, so rolling back is the same swap the other way. One job at a time: a second click
while one runs is told so. Everything lives in one slot per brand (`qz:{<brand>:models}`).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from qunzhu.redisconn import AsyncRedis, script_arg, text_of

SLOTS = ("a", "b")
JOBS_KEPT = 50
RELEASES_KEPT = 50
JOB_TTL_S = 400 * 86400
Kind = Literal["publish", "rollback"]
FINISHED = frozenset({"live", "refused", "failed"})
STAGES = {  # stage → what the operator reads
    "queued": "排队中",
    "validate": "检查训练数据",
    "train": "训练新模型",
    "test": "测试新模型",
    "start": "启动新模型",
    "switch": "切换到新模型",
    "done": "完成",
}


class Busy(Exception):
    """Another publish or rollback is still running."""

    def __init__(self, job: str) -> None:
        super().__init__(job)
        self.job = job


@dataclass(frozen=True)
class Release:
    """A model that was (or is) live: where it is, what it was trained from, how it scored."""

    id: str
    model: str  # path of the model archive
    commit: str  # the project's git commit it was trained from ("" if unknown)
    by: str
    at: float
    intent_accuracy: float | None = None
    faq_accuracy: float | None = None
    summary: str = ""  # what changed, in the operator's words (commit subjects)

    @property
    def scores(self) -> dict[str, float]:
        """Its held-out scores as the gate reads them (empty when never measured)."""
        if self.intent_accuracy is None:
            return {}
        found = {"intent_accuracy": self.intent_accuracy}
        if self.faq_accuracy is not None:
            found["faq_accuracy"] = self.faq_accuracy
        return found

    def scored(self, scores: dict[str, float]) -> Release:
        """The same release with its measured held-out scores."""
        return replace(self, intent_accuracy=scores.get("intent_accuracy"),
                       faq_accuracy=scores.get("faq_accuracy"))

    @classmethod
    def from_json(cls, raw: Any) -> Release | None:
        if raw is None:
            return None
        try:
            data = json.loads(text_of(raw))
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError, KeyError):
            return None


@dataclass
class Job:
    """One publish or rollback, as the console shows its progress."""

    id: str
    kind: Kind
    by: str
    state: str = "queued"  # queued, running, live, refused, failed
    stage: str = "queued"
    percent: int = 0
    message: str = ""
    details: list[str] = field(default_factory=list)
    created: float = 0.0
    finished: float = 0.0
    target: str = ""  # rollback: the release to bring back
    release: str = ""  # the release that went live

    @property
    def finished_yet(self) -> bool:
        """Whether the job is over (live, refused or failed)."""
        return self.state in FINISHED

    @property
    def stage_label(self) -> str:
        """The stage in the operator's words."""
        return STAGES.get(self.stage, self.stage)

    def fields(self) -> dict[str, str]:
        """The job as a Redis hash."""
        out = {k: str(v) for k, v in asdict(self).items() if k != "details"}
        out["details"] = json.dumps(self.details, ensure_ascii=False)
        return out

    @classmethod
    def from_fields(cls, raw: dict[Any, Any]) -> Job | None:
        f = {text_of(k): text_of(v) for k, v in raw.items()}
        if "id" not in f:
            return None
        try:
            details = json.loads(f.get("details") or "[]")
        except ValueError:
            details = []
        return cls(id=f["id"], kind="rollback" if f.get("kind") == "rollback" else "publish",
                   by=f.get("by", ""), state=f.get("state", "queued"),
                   stage=f.get("stage", "queued"), percent=int(float(f.get("percent") or 0)),
                   message=f.get("message", ""),
                   details=[str(d) for d in details] if isinstance(details, list) else [],
                   created=float(f.get("created") or 0), finished=float(f.get("finished") or 0),
                   target=f.get("target", ""), release=f.get("release", ""))


@dataclass(frozen=True)
class Keys:
    """The registry's keys: one hash tag per brand."""

    brand: str

    @property
    def registry(self) -> str:
        return f"qz:{{{self.brand}:models}}"

    @property
    def queue(self) -> str:
        return f"{self.registry}:queue"

    @property
    def jobs(self) -> str:
        return f"{self.registry}:jobs"

    @property
    def releases(self) -> str:
        return f"{self.registry}:releases"

    def job(self, job_id: str) -> str:
        return f"{self.registry}:job:{job_id}"


# KEYS[1] registry  KEYS[2] queue  KEYS[3] jobs list  KEYS[4] job hash
# ARGV[1] {id, fields {…}, keep, ttl}  → "" (queued) or the running job's id
SUBMIT = """
local a = cjson.decode(ARGV[1])
local running = redis.call('HGET', KEYS[1], 'job')
if running then return running end
redis.call('HSET', KEYS[1], 'job', a.id)
local f = {}
for k, v in pairs(a.fields) do f[#f + 1] = k; f[#f + 1] = v end
redis.call('HSET', KEYS[4], unpack(f))
redis.call('EXPIRE', KEYS[4], a.ttl)
redis.call('RPUSH', KEYS[2], a.id)
redis.call('LPUSH', KEYS[3], a.id)
redis.call('LTRIM', KEYS[3], 0, a.keep - 1)
return ''
"""

# KEYS[1] registry  KEYS[2] job hash   ARGV[1] {id, fields {…}}: the job ends, the lock goes
FINISH = """
local a = cjson.decode(ARGV[1])
local f = {}
for k, v in pairs(a.fields) do f[#f + 1] = k; f[#f + 1] = v end
redis.call('HSET', KEYS[2], unpack(f))
if redis.call('HGET', KEYS[1], 'job') == a.id then redis.call('HDEL', KEYS[1], 'job') end
return 1
"""

# KEYS[1] registry  KEYS[2] releases list
# ARGV[1] {slot, url, release (json), keep}: the new slot is live; the old live one is previous
SWITCH = """
local a = cjson.decode(ARGV[1])
local old = redis.call('HGET', KEYS[1], 'release:live')
if old then redis.call('HSET', KEYS[1], 'release:previous', old) end
redis.call('HSET', KEYS[1], 'live', a.slot, 'route', a.url, 'release:live', a.release)
redis.call('LPUSH', KEYS[2], a.release)
redis.call('LTRIM', KEYS[2], 0, a.keep - 1)
return 1
"""

# KEYS[1] registry   ARGV[1] {slot, url, assignment, release}: first start, nothing live yet
ADOPT = """
local a = cjson.decode(ARGV[1])
if redis.call('HEXISTS', KEYS[1], 'live') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'live', a.slot, 'route', a.url, 'slot:' .. a.slot, a.assignment,
           'release:live', a.release)
return 1
"""


# KEYS[1] registry   ARGV[1] slot: stop a slot's Rasa unless it is the live one
FREE = """
if redis.call('HGET', KEYS[1], 'live') == ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'slot:' .. ARGV[1], 'running:' .. ARGV[1])
return 1
"""


def new_id() -> str:
    """A sortable id: the time, then a little randomness."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


class ModelRegistry:
    """Read and change which model answers, and the publish jobs, in one brand's slot."""

    def __init__(self, r: AsyncRedis, brand: str) -> None:
        self.r = r
        self.keys = Keys(brand)

    # -------------------------------------------------------------- routing
    async def route(self) -> str:
        """The Rasa URL turns go to ("" until a model was adopted or published)."""
        raw = await self.r.hget(self.keys.registry, "route")
        return text_of(raw) if raw is not None else ""

    async def live_slot(self) -> str:
        """The slot that answers members ("" before the first start)."""
        raw = await self.r.hget(self.keys.registry, "live")
        return text_of(raw) if raw is not None else ""

    async def adopt(self, slot: str, url: str, release: Release) -> bool:
        """On a first start, make this slot and model live; False if something already is."""
        arg = {"slot": slot, "url": url, "release": release_json(release),
               "assignment": json.dumps({"model": release.model, "release": release.id})}
        return bool(await self.r.eval(ADOPT, 1, self.keys.registry, script_arg(arg)))

    async def reset(self) -> None:
        """Forget what is live (the next start adopts the freshly trained model)."""
        await self.r.hdel(self.keys.registry, "live", "route", "release:live",
                          "release:previous", *(f"slot:{s}" for s in SLOTS),
                          *(f"running:{s}" for s in SLOTS))

    async def switch(self, slot: str, url: str, release: Release) -> None:
        """Send every turn to this slot from now on; the old live release becomes previous."""
        arg = {"slot": slot, "url": url, "release": release_json(release),
               "keep": RELEASES_KEPT}
        await self.r.eval(SWITCH, 2, self.keys.registry, self.keys.releases, script_arg(arg))

    async def record_live(self, release: Release) -> None:
        """Rewrite the live release's record (its measured scores), if it is still live."""
        live = await self.live()
        if live is not None and live.id == release.id:
            await self.r.hset(self.keys.registry, "release:live", release_json(release))

    async def live(self) -> Release | None:
        """The release answering members now."""
        return Release.from_json(await self.r.hget(self.keys.registry, "release:live"))

    async def previous(self) -> Release | None:
        """The release that answered before the live one (what a rollback brings back)."""
        return Release.from_json(await self.r.hget(self.keys.registry, "release:previous"))

    async def releases(self, limit: int = 20) -> list[Release]:
        """Releases that went live, newest first (a rollback appears again as it went live)."""
        raw = await self.r.lrange(self.keys.releases, 0, limit - 1)
        return [r for r in (Release.from_json(x) for x in raw) if r is not None]

    async def release(self, release_id: str) -> Release | None:
        """One release on record by id."""
        for rel in await self.releases(RELEASES_KEPT):
            if rel.id == release_id:
                return rel
        for known in (await self.live(), await self.previous()):  # an adopted one is unlisted
            if known is not None and known.id == release_id:
                return known
        return None

    # -------------------------------------------------------------- slots
    async def assign(self, slot: str, model: str | None, release: str = "") -> None:
        """Have a slot run this model (None: stop its Rasa)."""
        field_ = f"slot:{slot}"
        if model is None:
            await self.r.hdel(self.keys.registry, field_, f"running:{slot}")
        else:
            await self.r.hset(self.keys.registry, field_,
                              json.dumps({"model": model, "release": release}))

    async def free(self, slot: str) -> bool:
        """Stop a slot's Rasa, unless turns go to it (False then: the live slot is kept)."""
        return bool(await self.r.eval(FREE, 1, self.keys.registry, slot))

    async def assignment(self, slot: str) -> str | None:
        """The model this slot should run, or None."""
        raw = await self.r.hget(self.keys.registry, f"slot:{slot}")
        if raw is None:
            return None
        try:
            model = json.loads(text_of(raw)).get("model")
        except (ValueError, AttributeError):
            return None
        return str(model) if model else None

    async def mark_running(self, slot: str, model: str | None) -> None:
        """The slot's Rasa answers with this model (None: it runs nothing)."""
        if model is None:
            await self.r.hdel(self.keys.registry, f"running:{slot}")
        else:
            await self.r.hset(self.keys.registry, f"running:{slot}", model)

    async def running(self, slot: str) -> str | None:
        """The model this slot's Rasa has loaded and serves, or None."""
        raw = await self.r.hget(self.keys.registry, f"running:{slot}")
        return text_of(raw) if raw is not None else None

    # -------------------------------------------------------------- jobs
    async def submit(self, kind: Kind, by: str, target: str = "") -> Job:
        """Queue a publish or rollback; Busy when one is already under way."""
        job = Job(id=new_id(), kind=kind, by=by, created=time.time(), target=target)
        arg = {"id": job.id, "fields": job.fields(), "keep": JOBS_KEPT, "ttl": JOB_TTL_S}
        running = text_of(await self.r.eval(
            SUBMIT, 4, self.keys.registry, self.keys.queue, self.keys.jobs,
            self.keys.job(job.id), script_arg(arg)))
        if running:
            raise Busy(running)
        return job

    async def current_job(self) -> str:
        """The id of the job under way ("" when none)."""
        raw = await self.r.hget(self.keys.registry, "job")
        return text_of(raw) if raw is not None else ""

    async def next_job(self, wait_s: int = 1) -> Job | None:
        """The next queued job (waits a little for one)."""
        popped = await self.r.blpop([self.keys.queue], timeout=wait_s)
        if not popped:
            return None
        return await self.job(text_of(popped[1]))

    async def job(self, job_id: str) -> Job | None:
        """One job by id."""
        return Job.from_fields(await self.r.hgetall(self.keys.job(job_id)))

    async def jobs(self, limit: int = 20) -> list[Job]:
        """Recent jobs, newest first."""
        ids = [text_of(x) for x in await self.r.lrange(self.keys.jobs, 0, limit - 1)]
        found = [await self.job(i) for i in ids]
        return [j for j in found if j is not None]

    async def progress(self, job_id: str, **changes: Any) -> None:
        """Record a running job's stage, percent, message or details."""
        fields = {k: (json.dumps(v, ensure_ascii=False) if k == "details" else str(v))
                  for k, v in changes.items()}
        if fields:
            await self.r.hset(self.keys.job(job_id), mapping=fields)

    async def finish(self, job_id: str, state: str, message: str, *,
                     details: list[str] | None = None, release: str = "") -> None:
        """End a job (live, refused or failed) and let the next one start."""
        fields = {"state": state, "message": message, "finished": str(time.time())}
        if state == "live":
            fields.update(stage="done", percent="100")
        if details is not None:
            fields["details"] = json.dumps(details, ensure_ascii=False)
        if release:
            fields["release"] = release
        await self.r.eval(FINISH, 2, self.keys.registry, self.keys.job(job_id),
                          script_arg({"id": job_id, "fields": fields}))


def release_json(release: Release) -> str:
    """A release as stored in the registry."""
    return json.dumps(asdict(release), ensure_ascii=False)
