"""Publish under load: edit → live wall time, and the turns that failed while models swapped.

`make run`'s stack on private ports (qunzhu.tools.stack, as the fault suite starts it), members
talking through the simulator at a steady rate. First a baseline at that rate with no publish;
then the same traffic while an operator's edit (a new FAQ with two wordings, written by the
console's own 教机器人 code into a git copy of the project) is published: validated, trained,
tested in the standby slot, switched, drained.

A turn failed if it got no answer, or the polite busy reply instead of a real one. Target: 0.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.chaos import busy_texts
from bench.chaos_report import Sent, Slot, is_busy
from bench.chaos_stack import children_write_to, configure
from bench.chaos_traffic import SimClient, paced
from console import trainingdata
from qunzhu import settings
from qunzhu.config import load_brand
from qunzhu.models import ModelRegistry
from qunzhu.redisconn import async_client
from qunzhu.tools.stack import ROOT, Stack, start_all

OUT = ROOT / "bench" / "out"
TEXTS = ("几点开门", "能送外卖吗", "怎么开发票", "我的积分", "积分怎么算", "你好", "签到",
         "优惠券怎么用")
NEW_QUESTIONS = ("团购怎么买", "团购在哪里买")
NEW_ANSWER = "团购请联系门店店长，满 20 杯打九折～"
ANSWER_WAIT_S = 60.0


@dataclass
class Tally:
    """How one burst of turns went."""

    sent: int = 0
    answered: int = 0
    busy: int = 0
    unanswered: int = 0
    slowest_s: float = 0.0
    waits: list[float] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Turns a member saw fail: no answer, or the busy reply."""
        return self.busy + self.unanswered


def edited_project(tmp: Path) -> Path:
    """A git copy of the project's training inputs with one operator edit committed."""
    root = tmp / "project"
    shutil.copytree(ROOT / "data", root / "data")
    (root / "tests").mkdir()
    for name in ("config.yml", "domain.yml", "tests/nlu_holdout.yml", "tests/nlu_members.yml",
                 "tests/nlu_members_b.yml", "tests/test_stories.yml"):
        shutil.copy(ROOT / name, root / name)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@qunzhu.console"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "项目初始"], cwd=root, check=True)
    # What 教机器人 writes for a new FAQ (the browser test's, which passes the gate).
    change = trainingdata.add_faq(root, "group_buy", list(NEW_QUESTIONS), [NEW_ANSWER],
                                  {"hotline"})
    for rel, text in change.files.items():
        (root / rel).write_text(text, "utf-8")
    subprocess.run([*git, "commit", "-qam", change.summary], cwd=root, check=True)
    return root


async def burst(sim: SimClient, prefix: str, rate: float, until: asyncio.Event,
                min_s: float) -> list[Sent]:
    """Fresh members saying TEXTS at `rate` per second, for at least min_s and until `until`."""
    sent: list[Sent] = []
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < min_s or not until.is_set():
        count = int(rate)
        users = [f"{prefix}{n + i}" for i in range(count)]
        await sim.add_members(users)

        async def one(i: int, users: list[str] = users, first: int = n) -> None:
            sent.append(await sim.say(users[i], "turn", TEXTS[(first + i) % len(TEXTS)]))

        await paced(count, 1.0, one)
        n += count
    return sent


async def tally(sim: SimClient, prefix: str, sent: list[Sent]) -> Tally:
    """Wait (bounded) for every answer, then count."""
    busy = busy_texts()
    deadline = time.monotonic() + ANSWER_WAIT_S
    slots: list[Slot] = []
    while time.monotonic() < deadline:
        slots = await sim.slots(prefix)
        if sum(1 for s in slots if s.replied_at is not None) >= len(sent):
            break
        await asyncio.sleep(1)
    by_user = {s.userid: s for s in slots}
    out = Tally(sent=len(sent))
    for said in sent:
        slot = by_user.get(said.userid)
        if slot is None or slot.replied_at is None:
            out.unanswered += 1
        elif is_busy(slot.reply, busy):
            out.busy += 1
        else:
            out.answered += 1
            out.waits.append(slot.replied_at - said.at)
    out.slowest_s = max(out.waits, default=0.0)
    return out


async def publish_once(registry: ModelRegistry, stages: dict[str, float]) -> str:
    """Queue a publish as the console does; note when each stage began; the final state."""
    job = await registry.submit("publish", "bench")
    started = time.monotonic()
    while True:
        found = await registry.job(job.id)
        if found is not None:
            stages.setdefault(found.stage, time.monotonic() - started)
            if found.finished_yet:
                stages.setdefault("end", time.monotonic() - started)
                return f"{found.state}: {found.message} {' / '.join(found.details)}".strip()
        await asyncio.sleep(0.25)


async def measure(rate: float, baseline_s: float, terminal: object) -> None:
    """The baseline burst, then the burst around a publish; print both."""
    def say(text: str) -> None:
        print(text, file=terminal, flush=True)  # type: ignore[call-overload]

    brand = load_brand()
    r = async_client(settings.redis_url(), cluster=False)
    registry = ModelRegistry(r, brand.id)
    async with aiohttp.ClientSession() as session:
        sim = SimClient(session, f"http://127.0.0.1:{settings.get('QZ_SIM_PORT')}",
                        brand.bot_name)
        done = asyncio.Event()
        done.set()
        say(f"publish: baseline, {rate:.0f} turns/s for {baseline_s:.0f} s, no publish")
        base = await tally(sim, "pb_base_", await burst(sim, "pb_base_", rate, done, baseline_s))
        say(f"publish: the same traffic while a new FAQ is published ({'、'.join(NEW_QUESTIONS)})")
        stages: dict[str, float] = {}
        done = asyncio.Event()

        async def publish_then_tail() -> str:
            await asyncio.sleep(5)
            outcome = await publish_once(registry, stages)
            await asyncio.sleep(10)  # turns after the old slot stopped
            done.set()
            return outcome

        outcome_task = asyncio.create_task(publish_then_tail())
        during_sent = await burst(sim, "pb_pub_", rate, done, 0)
        outcome = await outcome_task
        during = await tally(sim, "pb_pub_", during_sent)
        live = await registry.live()
    await r.close()
    waits = sorted(base.waits), sorted(during.waits)
    p99 = [w[int(0.99 * (len(w) - 1))] if w else 0.0 for w in waits]
    say("")
    say("| run | turns | answered | busy | unanswered | failed | reply p99 | slowest |")
    say("|---|---|---|---|---|---|---|---|")
    for name, t, q in (("baseline (no publish)", base, p99[0]),
                       ("during a publish", during, p99[1])):
        say(f"| {name} | {t.sent} | {t.answered} | {t.busy} | {t.unanswered} | {t.failed} "
            f"| {q:.2f} s | {t.slowest_s:.2f} s |")
    say("")
    order = ("validate", "train", "start", "test", "switch", "end")
    say("publish stages (s from the click): " + ", ".join(
        f"{s} {stages[s]:.1f}" for s in order if s in stages))
    say(f"publish outcome: {outcome}; live now: {live.id if live else '?'}")
    if "switch" in stages:
        say(f"edit → live (members get the new model): {stages['switch']:.1f} s; "
            f"job over (old slot drained and stopped): {stages.get('end', 0):.1f} s")
    say(f"turns failed during the publish: {during.failed} (target 0); "
        f"in the baseline: {base.failed}")


def main(rate: float = 20.0, baseline_s: float = 30.0) -> None:
    """Start the stack on private ports with an edited project, measure, stop everything."""
    OUT.mkdir(parents=True, exist_ok=True)
    log_path = OUT / "publish.log"
    log_path.unlink(missing_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="qz-publish-bench-"))
    configure(tmp / "data")
    os.environ["QZ_CONSOLE_PROJECT_DIR"] = str(edited_project(tmp))
    os.environ.pop("QZ_RASA_API_TOKEN", None)
    stack = Stack()
    print(f"publish: starting the stack on private ports; its output goes to {log_path}",
          flush=True)
    with children_write_to(log_path) as terminal:
        try:
            start_all(stack)
            asyncio.run(measure(rate, baseline_s, terminal))
        finally:
            stack.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
