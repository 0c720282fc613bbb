"""NLU benchmark: qunzhu's pipeline against Rasa's default pipeline, in one run.

Both are trained on the same stratified split of data/nlu (80 %) and scored on the rest
and on tests/nlu_holdout.yml (written separately, with @-mentions, 繁体 and typos).
Prints intent accuracy, macro-F1, FAQ key accuracy, parse latency p50/p99 and training
time for each, and the ratios. Numbers, not asserts: run `make bench-nlu`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")

ROOT = Path(__file__).resolve().parent.parent

# Rasa 3.6's default pipeline (what `rasa init` suggests), with JiebaTokenizer for Chinese.
BASELINE_CONFIG = """
recipe: default.v1
language: zh
pipeline:
  - name: JiebaTokenizer
  - name: RegexFeaturizer
  - name: LexicalSyntacticFeaturizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: DIETClassifier
    epochs: 100
    constrain_similarities: true
    random_seed: 42
  - name: EntitySynonymMapper
  - name: ResponseSelector
    epochs: 100
    constrain_similarities: true
    random_seed: 42
  - name: FallbackClassifier
    threshold: 0.3
    ambiguity_threshold: 0.1
policies: []
"""


@dataclass
class Example:
    """One labelled message: intent, and the FAQ key for retrieval intents."""

    text: str
    intent: str
    faq_key: str | None


@dataclass
class Result:
    """What one pipeline scored."""

    name: str
    train_s: float
    scores: dict[str, dict[str, float]]
    p50_ms: float
    p99_ms: float


def load_examples(paths: list[Path]) -> list[Example]:
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


def split(examples: list[Example], test_share: float, seed: int) -> tuple[list[Example],
                                                                           list[Example]]:
    """Stratified by intent (and FAQ key), so every class is in both parts."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        groups[example.faq_key or example.intent].append(example)
    rng = random.Random(seed)
    train, test = [], []
    for members in groups.values():
        members = members[:]
        rng.shuffle(members)
        cut = max(1, round(len(members) * test_share))
        test += members[:cut]
        train += members[cut:]
    return train, test


def write_nlu(examples: list[Example], path: Path) -> None:
    """Write examples back as a Rasa NLU YAML file."""
    groups: dict[str, list[str]] = defaultdict(list)
    for example in examples:
        groups[example.faq_key or example.intent].append(example.text)
    lines = ['version: "3.1"', "nlu:"]
    for intent, texts in groups.items():
        lines += [f"  - intent: {intent}", "    examples: |"]
        lines += [f"      - {text}" for text in texts]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def train(config_path: Path, nlu_path: Path, out: Path, name: str) -> tuple[Path, float]:
    """Train an NLU-only model; return its path and the wall time."""
    from rasa.model_training import train_nlu

    started = time.perf_counter()
    model = train_nlu(config=str(config_path), nlu_data=str(nlu_path), output=str(out),
                      fixed_model_name=name, domain=str(ROOT / "domain.yml"))
    if model is None:
        raise RuntimeError(f"training {name} failed")
    return Path(model), time.perf_counter() - started


def _top_intent(parsed: dict[str, Any]) -> str:
    """The best intent before the FallbackClassifier's decision."""
    for ranked in parsed.get("intent_ranking") or []:
        if ranked.get("name") != "nlu_fallback":
            return str(ranked["name"])
    return str(parsed["intent"]["name"])


def _faq_key(parsed: dict[str, Any]) -> str | None:
    """The FAQ key chosen by whichever ResponseSelector answered (ours is named 'faq')."""
    for selector in (parsed.get("response_selector") or {}).values():
        if isinstance(selector, dict) and selector.get("response"):
            key = selector["response"].get("intent_response_key")
            return str(key) if key else None
    return None


def _accuracy(gold: list[str], predicted: list[str]) -> float:
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)


def macro_f1(gold: list[str], predicted: list[str]) -> float:
    """Unweighted mean F1 over the gold classes."""
    from sklearn.metrics import f1_score

    labels = sorted(set(gold))
    return float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0))


async def evaluate(model: Path, sets: dict[str, list[Example]],
                   latency_rounds: int) -> tuple[dict[str, dict[str, float]], list[float]]:
    """Score each set, and time parse_message over every message several times."""
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))
    await agent.parse_message("预热")  # the first call builds TF graphs
    scores: dict[str, dict[str, float]] = {}
    timings: list[float] = []
    for set_name, examples in sets.items():
        gold, answered, top1, faq_hits, faq_total = [], [], [], 0, 0
        for example in examples:
            parsed = await agent.parse_message(example.text)
            gold.append(example.intent)
            answered.append(parsed["intent"]["name"])
            top1.append(_top_intent(parsed))
            if example.faq_key:
                faq_total += 1
                faq_hits += int(top1[-1] == "faq" and _faq_key(parsed) == example.faq_key)
        scores[set_name] = {
            "n": len(examples),
            "intent_accuracy_top1": _accuracy(gold, top1),
            "intent_accuracy_after_fallback": _accuracy(gold, answered),
            "macro_f1_top1": macro_f1(gold, top1),
            "faq_key_accuracy": faq_hits / faq_total if faq_total else float("nan"),
        }
    texts = [e.text for examples in sets.values() for e in examples]
    for _ in range(latency_rounds):
        for text in texts:
            started = time.perf_counter()
            await agent.parse_message(text)
            timings.append((time.perf_counter() - started) * 1000)
    return scores, timings


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def run_one(name: str, config_path: Path, train_file: Path, sets: dict[str, list[Example]],
            workdir: Path, rounds: int) -> Result:
    """Train and score one pipeline."""
    model, train_s = train(config_path, train_file, workdir, name)
    scores, timings = asyncio.run(evaluate(model, sets, rounds))
    return Result(name, train_s, scores, statistics.median(timings),
                  percentile(timings, 0.99))


def report(results: list[Result]) -> None:
    """Print one table and the ratio of qunzhu to the baseline."""
    ours, base = results
    print("\n== NLU benchmark (same split, same process) ==")
    sets = list(ours.scores)
    header = f"{'metric':<48}" + "".join(f"{r.name:>14}" for r in results) + f"{'ratio':>10}"
    print(header)
    print("-" * len(header))

    def row(label: str, a: float, b: float, fmt: str = "{:.3f}") -> None:
        ratio = a / b if b else float("nan")
        print(f"{label:<48}{fmt.format(a):>14}{fmt.format(b):>14}{ratio:>10.2f}")

    for set_name in sets:
        n = int(ours.scores[set_name]["n"])
        for metric in ("intent_accuracy_top1", "intent_accuracy_after_fallback",
                       "macro_f1_top1", "faq_key_accuracy"):
            row(f"{set_name} (n={n}) {metric}", ours.scores[set_name][metric],
                base.scores[set_name][metric])
    row("parse p50 (ms)", ours.p50_ms, base.p50_ms, "{:.2f}")
    row("parse p99 (ms)", ours.p99_ms, base.p99_ms, "{:.2f}")
    row("training time (s)", ours.train_s, base.train_s, "{:.1f}")


def main(argv: list[str] | None = None) -> int:
    """Split, train both pipelines, score, print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--test-share", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-rounds", type=int, default=5)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)

    examples = load_examples(sorted((ROOT / "data" / "nlu").glob("*.yml")))
    train_part, test_part = split(examples, args.test_share, args.seed)
    holdout = load_examples([ROOT / "tests" / "nlu_holdout.yml"])
    print(f"training examples: {len(train_part)}, split test: {len(test_part)}, "
          f"holdout: {len(holdout)}")
    with tempfile.TemporaryDirectory(prefix="qz-bench-") as tmp:
        workdir = Path(tmp)
        train_file = workdir / "train.yml"
        write_nlu(train_part, train_file)
        baseline_config = workdir / "baseline.yml"
        baseline_config.write_text(BASELINE_CONFIG, encoding="utf-8")
        sets = {"split": test_part, "holdout": holdout}
        results = [
            run_one("qunzhu", ROOT / "config.yml", train_file, sets, workdir,
                    args.latency_rounds),
            run_one("rasa-default", baseline_config, train_file, sets, workdir,
                    args.latency_rounds),
        ]
    report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
