"""What every NLU benchmark run shares: labelled examples, training, scoring and timing.

Parse latency is measured with every thread of the process pinned to one CPU core (the
target is per core), after training has used both.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "bench" / "nlu_configs"
FALLBACK = "nlu_fallback"
# Rasa 3.6's default pipeline with JiebaTokenizer: the baseline of every NLU benchmark.
BASELINE_CONFIG = (CONFIGS / "rasa-default.yml").read_text(encoding="utf-8")


@dataclass
class Example:
    """One labelled message: intent, and the FAQ key for retrieval intents."""

    text: str
    intent: str
    faq_key: str | None = None


@dataclass
class Scores:
    """What one model scored on one set, with its raw predictions for later analysis."""

    n: int
    accuracy: float
    accuracy_after_fallback: float
    macro_f1: float
    faq_key_accuracy: float
    # (best intent, intent after fallback, its confidence, the runner-up's confidence)
    predictions: list[tuple[str, str, float, float]] = field(default_factory=list)


@dataclass
class Result:
    """What one pipeline scored on each set, and how fast it trained and parsed."""

    name: str
    train_s: float
    scores: dict[str, Scores]
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")


def load_rasa_examples(paths: list[Path]) -> list[Example]:
    """Read Rasa YAML NLU files into labelled examples."""
    from rasa.shared.nlu.training_data.loading import load_data

    examples = []
    for path in paths:
        data = load_data(str(path))
        for message in data.intent_examples:
            full = message.get("intent_response_key") or message.get("intent")
            intent, _, key = str(full).partition("/")
            examples.append(Example(message.get("text"), intent, full if key else None))
    return examples


def load_smp(split_name: str) -> list[Example]:
    """SMP2017-ECDT task 1: one `<split>_<label>.txt` per class, one utterance a line."""
    folder = ROOT.parent / "shared" / "nlu-bench" / "smp2017" / split_name
    examples = []
    for path in sorted(folder.glob(f"{split_name}_*.txt")):
        label = path.stem.split("_", 1)[1]
        for line in path.read_text(encoding="utf-8-sig").splitlines():
            if line.strip():
                examples.append(Example(line.strip(), label))
    if not examples:
        raise SystemExit(f"no SMP2017 data under {folder}")
    return examples


def split(examples: list[Example], test_share: float, seed: int
          ) -> tuple[list[Example], list[Example]]:
    """Stratified by intent (and FAQ key): every class is in both parts, but for a class of
    one example, which is only trained on."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        groups[example.faq_key or example.intent].append(example)
    rng = random.Random(seed)
    train, test = [], []
    for members in groups.values():
        members = members[:]
        rng.shuffle(members)
        cut = max(1, round(len(members) * test_share)) if len(members) > 1 else 0
        test += members[:cut]
        train += members[cut:]
    return train, test


def sample_per_class(examples: list[Example], per_class: int, seed: int) -> list[Example]:
    """`per_class` random examples of each class (all of a smaller class)."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        groups[example.intent].append(example)
    rng = random.Random(seed)
    chosen: list[Example] = []
    for label in sorted(groups):
        chosen += rng.sample(groups[label], min(per_class, len(groups[label])))
    return chosen


def write_nlu(examples: list[Example], path: Path) -> Path:
    """Write examples as a Rasa NLU YAML file."""
    groups: dict[str, list[str]] = defaultdict(list)
    for example in examples:
        groups[example.faq_key or example.intent].append(example.text)
    lines = ['version: "3.1"', "nlu:"]
    for intent, texts in groups.items():
        lines += [f"  - intent: {intent}", "    examples: |"]
        lines += [f"      - {text}" for text in texts]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def train(config_path: Path, nlu_path: Path, out: Path, name: str) -> tuple[Path, float]:
    """Train an NLU-only model; return its path and the wall time."""
    from rasa.model_training import train_nlu

    started = time.perf_counter()
    with redirect_stdout(io.StringIO()):  # Rasa's coloured "model is trained" lines
        model = train_nlu(config=str(config_path), nlu_data=str(nlu_path), output=str(out),
                          fixed_model_name=name, domain=str(ROOT / "domain.yml"))
    if model is None:
        raise RuntimeError(f"training {name} failed")
    return Path(model), time.perf_counter() - started


def top_intent(parsed: dict[str, Any]) -> tuple[str, float, float]:
    """The best intent before the FallbackClassifier's decision, its confidence and the
    runner-up's."""
    ranked = [r for r in parsed.get("intent_ranking") or [] if r.get("name") != FALLBACK]
    if not ranked:
        return (str(parsed["intent"]["name"]), float(parsed["intent"].get("confidence") or 0),
                0.0)
    second = float(ranked[1].get("confidence") or 0.0) if len(ranked) > 1 else 0.0
    return str(ranked[0]["name"]), float(ranked[0].get("confidence") or 0.0), second


def faq_key(parsed: dict[str, Any]) -> str | None:
    """The FAQ key chosen by whichever ResponseSelector answered."""
    for selector in (parsed.get("response_selector") or {}).values():
        if isinstance(selector, dict) and selector.get("response"):
            key = selector["response"].get("intent_response_key")
            return str(key) if key else None
    return None


def accuracy(gold: list[str], predicted: list[str]) -> float:
    """Share of exact matches."""
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)


def macro_f1(gold: list[str], predicted: list[str]) -> float:
    """Unweighted mean F1 over the gold classes."""
    from sklearn.metrics import f1_score

    labels = sorted(set(gold))
    return float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0))


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


@contextmanager
def one_core() -> Iterator[None]:
    """Pin every thread of this process (TensorFlow's pools included) to one CPU core."""
    cores = os.sched_getaffinity(0)
    core = min(cores)

    def pin_all(mask: set[int]) -> None:
        for tid in (int(t) for t in os.listdir("/proc/self/task")):
            with suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(tid, mask)

    pin_all({core})
    try:
        yield
    finally:
        pin_all(set(cores))


async def _evaluate(model: Path, sets: dict[str, list[Example]], latency_rounds: int
                    ) -> tuple[dict[str, Scores], list[float]]:
    """Score each set, then time parse_message over every message of the first set."""
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))
    await agent.parse_message("预热")  # the first call builds TF graphs
    scores: dict[str, Scores] = {}
    for set_name, examples in sets.items():
        gold, answered, top1, predictions, faq_hits, faq_total = [], [], [], [], 0, 0
        for example in examples:
            parsed = await agent.parse_message(example.text)
            top, confidence, second = top_intent(parsed)
            gold.append(example.intent)
            answered.append(str(parsed["intent"]["name"]))
            top1.append(top)
            predictions.append((top, answered[-1], confidence, second))
            if example.faq_key:
                faq_total += 1
                faq_hits += int(top == "faq" and faq_key(parsed) == example.faq_key)
        scores[set_name] = Scores(len(examples), accuracy(gold, top1),
                                  accuracy(gold, answered), macro_f1(gold, top1),
                                  faq_hits / faq_total if faq_total else float("nan"),
                                  predictions)
    timings: list[float] = []
    texts = [e.text for e in next(iter(sets.values()))]
    with one_core():
        for _ in range(latency_rounds):
            for text in texts:
                started = time.perf_counter()
                await agent.parse_message(text)
                timings.append((time.perf_counter() - started) * 1000)
    return scores, timings


def run_one(name: str, config_path: Path, train_examples: list[Example],
            sets: dict[str, list[Example]], workdir: Path, latency_rounds: int = 0) -> Result:
    """Train one pipeline on the examples and score it on each set."""
    nlu_file = write_nlu(train_examples, workdir / f"{name}-train.yml")
    model, train_s = train(config_path, nlu_file, workdir, name)
    scores, timings = asyncio.run(_evaluate(model, sets, latency_rounds))
    model.unlink(missing_ok=True)
    if not timings:
        return Result(name, train_s, scores)
    return Result(name, train_s, scores, statistics.median(timings), percentile(timings, 0.99))
