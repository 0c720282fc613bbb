"""The publisher: trains what operators taught, checks it, and swaps it in blue-green.

`python -m qunzhu.tools.publisher` (started by `make run`) takes publish and rollback jobs the
console queued (qunzhu.models), one at a time:

1. copy the project's training inputs (QZ_CONSOLE_PROJECT_DIR) into a scratch folder, so edits
   saved meanwhile wait for the next publish;
2. `rasa data validate` and training at once (Rasa's cache skips components whose inputs did
   not change; its own, holding only this deterministic training's results, not `make train`'s;
   a failed validation stops the training);
3. the idle Rasa slot loads the candidate and is warmed; the held-out questions and the test
   stories are asked of it through Rasa's API (token-protected), so no second process loads
   the model. The gate: the same thresholds as `make test`, never below the live model's score,
   every test story right;
4. the bridge's route moves to the candidate's slot in one Redis write; after the drain the
   old slot stops.

A model that fails a check never serves a member: the job is refused with the reason, in
Chinese, and the live model keeps answering. A rollback brings the previous release back
through the same swap, without training.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from qunzhu import settings
from qunzhu.config import load_brand
from qunzhu.models import SLOTS, Job, ModelRegistry, Release
from qunzhu.redisconn import REDIS_DOWN, async_client, cluster_mode
from qunzhu.tools import trainingcache
from qunzhu.tools.gates import HOLDOUT, MEMBER_SETS, STORIES
from qunzhu.tools.rasaslot import loaded, slot_port, slot_url

log = logging.getLogger("qunzhu.publisher")

ROOT = settings.PROJECT_ROOT
TRAINING_DATA = ("data/nlu", "data/rules", "data/stories")
INPUTS = ("config.yml", "domain.yml", "endpoints.yml", "credentials.yml", "data",
          "tests/nlu_holdout.yml", "tests/nlu_members.yml", "tests/nlu_members_b.yml",
          "tests/test_stories.yml")
TEST_TIMEOUT_S = 300
PUBLISH_CACHE = ROOT / ".rasa" / "publish-cache"
TRAIN_CACHE = ROOT / ".rasa" / "cache"  # `make train`'s (Rasa's default)
MIN_INTENT_ACCURACY = HOLDOUT.min_intent  # the same gates as `make test` (qunzhu.tools.gates)
MIN_FAQ_ACCURACY = HOLDOUT.min_faq
KEEP_MODELS = 5  # published models kept on disk besides the live and previous ones
SLOT_READY_S = 300.0
WARM_TEXTS = ("你好", "签到", "我的积分", "优惠券怎么用", "转人工")
# TensorFlow on one thread with deterministic kernels: the same data trains the same model by
# construction, whatever else the machine is doing, so a refusal can be reproduced and a cached
# component is what a fresh training would give; and one thread leaves the other core to the
# members' turns while a publish trains (even so, on 2 cores their reply p99 goes from 0.06 s
# to about 1.7 s during a publish: bench/publish.py).
DETERMINISTIC = {"TF_INTER_OP_PARALLELISM_THREADS": "1", "TF_INTRA_OP_PARALLELISM_THREADS": "1",
                 "TF_DETERMINISTIC_OPS": "1"}
_EPOCHS = re.compile(r"Epochs:\s+(\d+)%")
# A component trained (or restored from the cache), and the model saved, in Rasa's log
_TRAINING_LINE = re.compile(r"(?P<done>(?:Finished training|Restored) component ')"
                            r"|(?P<saved>Your Rasa model is trained and saved)")


class Refused(Exception):
    """A check failed: the new model must not serve members."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


@dataclass(frozen=True)
class Run:
    """The output of one command, and how it ended."""

    code: int
    output: str


async def run_command(argv: list[str], cwd: Path, *, on_output: Callable[[str], None] | None = None,
                      env: dict[str, str] | None = None) -> Run:
    """Run a command to its end, collecting stdout and stderr (and showing them as they come)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "RASA_CACHE_DIRECTORY": str(PUBLISH_CACHE), **(env or {})}
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    chunks: list[str] = []
    assert proc.stdout is not None
    try:
        while True:
            data = await proc.stdout.read(4096)
            if not data:
                break
            text = data.decode("utf-8", "replace")
            chunks.append(text)
            if on_output is not None:
                on_output(text)
        code = await proc.wait()
    except asyncio.CancelledError:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    return Run(code, "".join(chunks))


def rasa(*args: str) -> list[str]:
    """Rasa's command line as `make` runs it."""
    return [sys.executable, "-m", "qunzhu.tools.rasacli", *args]


def copy_inputs(project: Path, work: Path) -> None:
    """The training inputs as they are now, in a folder of their own."""
    for name in INPUTS:
        src, dst = project / name, work / name
        if src.is_dir():
            shutil.copytree(src, dst)
        elif src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def git(project: Path, *args: str) -> str:
    """A git query in the project ("" when it is not a git checkout)."""
    try:
        done = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True,
                              timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def changes_since(project: Path, live: Release | None, limit: int = 5) -> list[str]:
    """Subjects of the commits to training inputs since the live model was trained."""
    if live is not None and live.commit:
        span = [f"{live.commit}..HEAD"]
    elif live is not None:
        span = [f"--since=@{int(live.at)}"]
    else:
        span = []
    out = git(project, "log", f"-{limit}", "--format=%s", *span, "--", "data/nlu",
              "data/rules", "data/stories", "domain.yml", "config.yml")
    return [line[:80] for line in out.splitlines()]


def problems(output: str, limit: int = 8) -> list[str]:
    """The lines of Rasa's output that say what is wrong."""
    lines = [ln.strip() for ln in output.splitlines()
             if re.search(r"ERROR|WARNING|UserWarning|\w*Error:|\berror:", ln)]
    return [ln[:300] for ln in lines[:limit]]


def components_in(config: Path) -> int:
    """How many pipeline components and policies config.yml names (at least one)."""
    try:
        loaded = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return 1
    return max(1, sum(len(loaded.get(part) or []) for part in ("pipeline", "policies")
                      if isinstance(loaded, dict)))


class TrainingProgress:
    """Turns Rasa's training log into one percentage for the operator.

    Each component Rasa reports trained (or restored from its cache) is one share of the
    components config.yml names (those that train nothing, such as the FallbackClassifier,
    are done when the model is saved); a component that prints a tqdm bar (DIET, TED) moves
    through its share as the bar does. Only complete log lines are counted, however the
    pipe cuts them.
    """

    def __init__(self, components: int) -> None:
        self.components = max(1, components)
        self.done = 0
        self.bar = 0
        self.reported = -1
        self._partial = ""

    def feed(self, text: str) -> int | None:
        """The training's percentage so far, or None when the text said nothing new."""
        joined = self._partial + text
        cut = joined.rfind("\n") + 1
        self._partial = joined[cut:]
        offset = len(joined) - len(text)
        # the partial line held back has no newline, so every complete line here is new
        events = [(m.start(), str(m.lastgroup), 0)
                  for m in _TRAINING_LINE.finditer(joined, 0, cut)]
        events += [(offset + m.start(), "bar", int(m.group(1))) for m in _EPOCHS.finditer(text)]
        if not events:
            return None
        for _, kind, bar in sorted(events):
            if kind == "done":
                self.done, self.bar = self.done + 1, 0
            elif kind == "saved":  # components that train nothing are done too
                self.done, self.bar = self.components, 0
            else:
                self.bar = bar
        percent = min(99, (self.done * 100 + self.bar) // self.components)
        self.reported = max(self.reported, percent)
        return self.reported


class Publisher:
    """Runs publish and rollback jobs, one at a time, for one brand."""

    def __init__(self, registry: ModelRegistry, project: Path, models_dir: Path, *,
                 drain_s: float, api_token: str, http: aiohttp.ClientSession) -> None:
        self.registry = registry
        self.project = project
        self.models_dir = models_dir
        self.drain_s = drain_s
        self.api_token = api_token
        self.http = http
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop waiting for jobs (a job under way is abandoned and recovered next start)."""
        self._stopping.set()

    async def run(self) -> None:
        """Recover from an interrupted job, then take jobs until stopped."""
        if await asyncio.to_thread(trainingcache.seed, PUBLISH_CACHE, TRAIN_CACHE):
            log.info("publish cache started from make train's (%s)", TRAIN_CACHE)
        await self.recover()
        while not self._stopping.is_set():
            try:
                job = await self.registry.next_job(1)
            except REDIS_DOWN as exc:
                log.warning("publish queue unreachable (%s)", type(exc).__name__)
                await asyncio.sleep(2)
                continue
            if job is not None:
                await self.handle(job)

    async def recover(self) -> None:
        """A job cut short by a restart is settled; a half-started slot is stopped.

        A job that got as far as the switch is live (members have the new model); one that
        did not left the old model live. A job still queued is simply run.
        """
        job_id = await self.registry.current_job()
        job = await self.registry.job(job_id) if job_id else None
        if job is not None and job.state == "running":
            live = await self.registry.live()
            switched = live is not None and (live.id == job.id or job.stage == "switch")
            if switched and live is not None:
                await self.registry.finish(job.id, "live", "已上线（发布服务重启前已切换）。",
                                           release=live.id)
            else:
                await self.registry.finish(
                    job.id, "failed", "发布被中断了（发布服务重启），线上模型没有变，请再点一次。")
        elif job is None and job_id:
            await self.registry.finish(job_id, "failed", "发布记录丢失了，请再点一次。")
        live_slot = await self.registry.live_slot()
        for slot in SLOTS:
            if live_slot and slot != live_slot:
                await self.registry.free(slot)

    async def handle(self, job: Job) -> None:
        """Run one job to its end; nothing it does can leave members without a model."""
        await self.registry.progress(job.id, state="running", stage="validate" if
                                     job.kind == "publish" else "start", percent=1)
        try:
            release = await (self.publish(job) if job.kind == "publish" else self.rollback(job))
        except Refused as exc:
            log.info("job %s refused: %s", job.id, exc.message)
            await self.registry.finish(job.id, "refused", exc.message, details=exc.details)
        except REDIS_DOWN:
            raise
        except Exception as exc:  # a bug or a crash of Rasa: the live model stays
            log.exception("job %s failed", job.id)
            await self.registry.finish(job.id, "failed",
                                       f"发布没有完成（{type(exc).__name__}），线上模型没有变。")
        else:
            said = ("回滚完成，之前的版本正在回答群友。" if job.kind == "rollback"
                    else "发布完成，新模型正在回答群友。")
            await self.registry.finish(job.id, "live", said, release=release.id)

    # ------------------------------------------------------------------ publish
    async def publish(self, job: Job) -> Release:
        """Validate and train (at once), start the candidate, test it there, switch to it."""
        if not self.api_token:  # said before two minutes of training, not after
            raise Refused("没法测试新模型：Rasa 的 API 没有打开（请设置 QZ_RASA_API_TOKEN），"
                          "线上模型不变。")
        live = await self.registry.live()
        with tempfile.TemporaryDirectory(prefix="qz-publish-") as tmp:
            work = Path(tmp)
            copy_inputs(self.project, work)
            commit = git(self.project, "rev-parse", "HEAD")
            model = self.models_dir / f"{job.id}.tar.gz"
            await self._step(job, "validate", 2, "检查训练数据…")
            validate = asyncio.create_task(run_command(
                rasa("data", "validate", "--fail-on-warnings", "--data", *TRAINING_DATA), work))
            train = asyncio.create_task(self._train(job, work, model))
            try:
                checked = await validate
                if checked.code != 0:
                    raise Refused("训练数据没通过检查，模型没有发布。", problems(checked.output))
                await train
            except BaseException:
                train.cancel()
                await asyncio.gather(train, return_exceptions=True)
                model.unlink(missing_ok=True)
                raise
            holdout = (work / HOLDOUT.path).read_text("utf-8")
            stories = (work / STORIES).read_text("utf-8")
            members = [(g.label, (work / g.path).read_text("utf-8"), g.min_intent, g.min_faq)
                       for g in MEMBER_SETS if (work / g.path).exists()]
        release = Release(id=job.id, model=str(model), commit=commit, by=job.by, at=time.time(),
                          summary="；".join(changes_since(self.project, live)))
        try:
            slot = await self._start(job, release)  # frees the slot itself when it fails
        except BaseException:
            model.unlink(missing_ok=True)
            raise
        try:
            scores = await self._test(job, slot, holdout, stories, live, members)
        except BaseException:
            await self.registry.free(slot)
            model.unlink(missing_ok=True)
            raise
        release = release.scored(scores)
        await self._switch(job, slot, release)
        await self._prune()
        return release

    async def _step(self, job: Job, stage: str, percent: int, message: str) -> None:
        await self.registry.progress(job.id, stage=stage, percent=percent, message=message)

    async def _train(self, job: Job, work: Path, model: Path) -> None:
        bars = TrainingProgress(components_in(work / "config.yml"))
        pending: list[asyncio.Task[None]] = []
        last = [0.0]

        def on_output(text: str) -> None:
            pct = bars.feed(text)
            now = time.monotonic()
            if pct is not None and now - last[0] > 1.0:  # at most one write a second
                last[0] = now
                pending.append(asyncio.create_task(self.registry.progress(
                    job.id, stage="train", percent=5 + pct * 70 // 100,
                    message=f"训练新模型… {pct}%")))

        trained = await run_command(rasa(
            "train", "--data", *TRAINING_DATA, "--out", str(model.parent),
            "--fixed-model-name", model.name.removesuffix(".tar.gz")), work, on_output=on_output,
            env=DETERMINISTIC)
        await asyncio.gather(*pending, return_exceptions=True)
        if trained.code != 0 or not model.exists():
            raise Refused("新模型没能训练出来，模型没有发布。", problems(trained.output))

    async def _test(self, job: Job, slot: str, holdout: str, stories: str,
                    live: Release | None,
                    members: list[tuple[str, str, float, float]]) -> dict[str, float]:
        """The held-out questions and the test stories, asked of the candidate in its slot."""
        await self._step(job, "test", 88, "用留出的问题和对话测试新模型…")
        scores, misses = await self._nlu_scores(slot, holdout)
        baseline = live.scores if live is not None else {}
        if live is not None and not baseline:  # the first model: measured once, then kept
            live_slot = await self.registry.live_slot()
            if live_slot:
                baseline, _ = await self._nlu_scores(live_slot, holdout)
                await self.registry.record_live(live.scored(baseline))
        failures = gate(scores, baseline)
        for label, text, min_intent, min_faq in members:
            found, missed = await self._nlu_scores(slot, text)
            wrong = gate(found, {}, min_intent=min_intent, min_faq=min_faq, label=label)
            failures += wrong + (missed if wrong else [])
        if failures:
            failures += misses
        failures += await self._story_failures(slot, stories)
        if failures:
            raise Refused("新模型没通过测试，线上模型不变。", failures)
        return scores

    async def _api(self, slot: str, path: str, body: str) -> dict[str, Any]:
        """POST a YAML document to a slot's Rasa API; its JSON answer."""
        async with self.http.post(
                f"{slot_url(slot)}{path}", params={"token": self.api_token},
                data=body.encode("utf-8"), headers={"Content-Type": "application/x-yaml"},
                timeout=aiohttp.ClientTimeout(total=TEST_TIMEOUT_S)) as resp:
            doc = await resp.json(content_type=None)
            if resp.status != 200 or not isinstance(doc, dict):
                raise RuntimeError(f"Rasa answered {resp.status} to {path}")
            return doc

    async def _nlu_scores(self, slot: str, holdout: str) -> tuple[dict[str, float], list[str]]:
        """Intent and FAQ accuracy on the held-out questions; the questions it got wrong."""
        doc = await self._api(slot, "/model/test/intents", holdout)
        intents = doc.get("intent_evaluation") or {}
        scores = {"intent_accuracy": float(intents.get("accuracy") or 0.0)}
        faq = doc.get("response_selection_evaluation") or {}
        if faq.get("accuracy") is not None:
            scores["faq_accuracy"] = float(faq["accuracy"])
        misses = [f"答错了：“{e.get('text')}” 应是 {e.get('intent')}，新模型认成 "
                  f"{(e.get('intent_prediction') or {}).get('name')}"
                  for e in (intents.get("errors") or [])[:5] if isinstance(e, dict)]
        return scores, misses

    async def _story_failures(self, slot: str, stories: str) -> list[str]:
        """The test stories' steps the candidate would do differently."""
        doc = await self._api(slot, "/model/test/stories", stories)
        wrong = [a for a in doc.get("actions") or []
                 if isinstance(a, dict) and a.get("action") != a.get("predicted")]
        return [f"对话测试没通过：该做 {a.get('action')}，新模型会做 {a.get('predicted')}"
                for a in wrong[:5]]

    # ------------------------------------------------------------------ rollback
    async def rollback(self, job: Job) -> Release:
        """Bring back an earlier release (the previous one unless the job names one)."""
        target = (await self.registry.release(job.target) if job.target
                  else await self.registry.previous())
        if target is None:
            raise Refused("没有可以回滚到的上一个模型。")
        if not Path(target.model).exists():
            raise Refused("上一个模型的文件已经不在了，没法回滚。")
        live = await self.registry.live()
        if live is not None and live.model == target.model:
            raise Refused("这个模型已经在线上了。")
        back = replace(target, at=time.time(), by=job.by,
                       summary=f"回滚到 {target.id}" + (f"（{target.summary}）"
                                                        if target.summary else ""))
        await self.swap(job, back)
        return back

    # ------------------------------------------------------------------ the swap
    async def swap(self, job: Job, release: Release) -> None:
        """Start the release in the idle slot, then move every turn to it."""
        slot = await self._start(job, release)
        await self._switch(job, slot, release)

    async def _start(self, job: Job, release: Release) -> str:
        """Have the idle slot load the release; the slot, once it answers and is warm."""
        live_slot = await self.registry.live_slot() or "a"
        idle = next(s for s in SLOTS if s != live_slot)
        await self._step(job, "start", 78, "启动要回滚到的版本…" if job.kind == "rollback"
                         else "启动新模型…")
        await self.registry.assign(idle, release.model, release.id)
        try:
            await self._wait_serving(idle, release.model)
            await self._warm(idle)
        except BaseException:
            await self.registry.free(idle)
            raise
        return idle

    async def _switch(self, job: Job, slot: str, release: Release) -> None:
        """Every turn to the new slot in one write; the old one stops after the drain."""
        old = await self.registry.live_slot()
        await self.registry.switch(slot, slot_url(slot), release)
        log.info("turns now go to slot %s (%s)", slot, release.id)
        await self._step(job, "switch", 96, "已切换：群友的消息都交给它了，原来的模型处理完手上的"
                         "消息就停。")
        await asyncio.sleep(self.drain_s)
        if old and old != slot:
            await self.registry.free(old)

    async def _wait_serving(self, slot: str, model: str) -> None:
        deadline = time.monotonic() + SLOT_READY_S
        while time.monotonic() < deadline:
            if (await self.registry.running(slot) == model
                    and await loaded(self.http, slot_port(slot), model)):
                return
            await asyncio.sleep(0.5)
        raise Refused("新模型没能启动（5 分钟内没有加载好），线上模型不变。")

    async def _warm(self, slot: str) -> None:
        """A few parses, so the first member after the switch does not wait for TensorFlow;
        a model that cannot parse is refused here, before any member reaches it."""
        for text in WARM_TEXTS:
            try:
                async with self.http.post(f"{slot_url(slot)}/model/parse",
                                          params={"token": self.api_token}, json={"text": text},
                                          timeout=aiohttp.ClientTimeout(total=30)) as resp:
                    await resp.read()
                    ok = resp.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                ok = False
            if not ok:
                raise Refused("新模型启动了却答不上话，线上模型不变。")

    async def _prune(self) -> None:
        """Keep the newest published models, and always the live and previous ones."""
        keep = {rel.model for rel in (await self.registry.live(), await self.registry.previous())
                if rel is not None}
        models = sorted(self.models_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime,
                        reverse=True)
        for old in models[KEEP_MODELS:]:
            if str(old) not in keep:
                old.unlink(missing_ok=True)


def gate(scores: dict[str, float], baseline: dict[str, float], *,
         min_intent: float = MIN_INTENT_ACCURACY, min_faq: float = MIN_FAQ_ACCURACY,
         label: str = "") -> list[str]:
    """Why a model's held-out scores keep it from going live (empty: it may)."""
    failures = []
    on = f"{label}：" if label else ""
    intent, faq = scores.get("intent_accuracy", 0.0), scores.get("faq_accuracy")
    if intent < min_intent:
        failures.append(f"{on}意图识别准确率 {intent:.1%}，低于要求的 {min_intent:.0%}")
    if faq is not None and faq < min_faq:
        failures.append(f"{on}常见问题匹配准确率 {faq:.1%}，低于要求的 {min_faq:.0%}")
    live_intent, live_faq = baseline.get("intent_accuracy"), baseline.get("faq_accuracy")
    if live_intent is not None and intent < live_intent:
        failures.append(f"{on}意图识别准确率 {intent:.1%}，比线上模型的 {live_intent:.1%} 低")
    if live_faq is not None and faq is not None and faq < live_faq:
        failures.append(f"{on}常见问题匹配准确率 {faq:.1%}，比线上模型的 {live_faq:.1%} 低")
    return failures


async def serve() -> None:
    """Take jobs until SIGTERM (a job under way is cut short and recovered at the next start)."""
    r = async_client(settings.redis_url(), cluster=cluster_mode(), timeout_s=10)
    registry = ModelRegistry(r, load_brand().id)
    # Beside the registry's data: a test's or a bench's stack (its own QZ_DATA_DIR) never
    # prunes the models a developer's `make run` has live.
    models_dir = settings.project_path("QZ_DATA_DIR") / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    async with aiohttp.ClientSession() as http:
        publisher = Publisher(registry, settings.project_path("QZ_CONSOLE_PROJECT_DIR").resolve(),
                              models_dir, drain_s=float(settings.get("QZ_PUBLISH_DRAIN_S")),
                              api_token=settings.get("QZ_RASA_API_TOKEN"), http=http)
        task = asyncio.create_task(publisher.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass
        finally:
            await r.close()


def main() -> int:
    """Run the publisher."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    started = time.monotonic()
    asyncio.run(serve())
    log.info("publisher stopped after %.0f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
