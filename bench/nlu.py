"""NLU benchmark: qunzhu's pipeline against Rasa's default pipeline, trained in the same run.

Four suites (`--suites`, all by default):
- project: trained on 80 % of data/nlu, scored on the other 20 % and tests/nlu_holdout.yml;
- smp: SMP2017-ECDT task 1 (../shared/nlu-bench), trained on `train`, scored on `develop`;
- curve: the same with 5, 10 and 20 training examples per class, three random draws each;
- fallback: SMP `train` without some classes, scored on `develop` — those classes' messages
  are out of scope, and should go to fallback rather than be answered.
Each prints accuracy, macro-F1, parse p50/p99 (every thread on one core) and training time
for qunzhu (config.yml), its pipeline before issue 13 (DIET) and Rasa's default. Numbers,
not asserts: run `make bench-nlu`.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("RASA_MAX_CACHE_SIZE", "0")  # every pipeline trains from scratch

from bench.nlu_run import (
    CONFIGS,
    FALLBACK,
    ROOT,
    Example,
    Result,
    load_rasa_examples,
    load_smp,
    run_one,
    sample_per_class,
    split,
)

PIPELINES = {
    "qunzhu": ROOT / "config.yml",
    "encoder-voice": CONFIGS / "encoder-voice.yml",
    "diet-2026-11": CONFIGS / "diet-2026-11.yml",
    "rasa-default": CONFIGS / "rasa-default.yml",
}
BASELINE = "rasa-default"
CURVE_SIZES = (5, 10, 20)
CURVE_DRAWS = 3
OUT_OF_SCOPE_CLASSES = 6  # SMP classes held out of training for the fallback suite


def _table(title: str, results: list[Result], rows: list[tuple[str, list[float], str]]) -> None:
    """One table: a column per pipeline and the ratio of qunzhu to the baseline."""
    names = [r.name for r in results]
    print(f"\n== {title} ==")
    header = f"{'':<44}" + "".join(f"{n:>14}" for n in names) + f"{'qunzhu/base':>13}"
    print(header)
    print("-" * len(header))
    ours, base = names.index("qunzhu"), names.index(BASELINE)
    for label, values, fmt in rows:
        ratio = values[ours] / values[base] if values[base] else float("nan")
        print(f"{label:<44}" + "".join(f"{fmt.format(v):>14}" for v in values)
              + f"{ratio:>13.2f}")


def _score_rows(results: list[Result]) -> list[tuple[str, list[float], str]]:
    """Accuracy, macro-F1, FAQ key accuracy per set; latency and training time."""
    rows: list[tuple[str, list[float], str]] = []
    for set_name, first in results[0].scores.items():
        rows.append((f"{set_name} (n={first.n}) accuracy",
                     [r.scores[set_name].accuracy for r in results], "{:.3f}"))
        rows.append((f"{set_name} accuracy after fallback",
                     [r.scores[set_name].accuracy_after_fallback for r in results], "{:.3f}"))
        rows.append((f"{set_name} macro-F1",
                     [r.scores[set_name].macro_f1 for r in results], "{:.3f}"))
        if first.faq_key_accuracy == first.faq_key_accuracy:  # not NaN: the set has FAQs
            rows.append((f"{set_name} FAQ key accuracy",
                         [r.scores[set_name].faq_key_accuracy for r in results], "{:.3f}"))
    rows.append(("parse p50 (ms, one core)", [r.p50_ms for r in results], "{:.2f}"))
    rows.append(("parse p99 (ms, one core)", [r.p99_ms for r in results], "{:.2f}"))
    rows.append(("training time (s, two cores)", [r.train_s for r in results], "{:.1f}"))
    return rows


def project_suite(workdir: Path, rounds: int, seed: int) -> None:
    """The project's own data: a stratified 80/20 split and the hand-written holdout."""
    examples = load_rasa_examples(sorted((ROOT / "data" / "nlu").glob("*.yml")))
    train_part, test_part = split(examples, 0.2, seed)
    holdout = load_rasa_examples([ROOT / "tests" / "nlu_holdout.yml"])
    print(f"project: training {len(train_part)}, split test {len(test_part)}, "
          f"holdout {len(holdout)}", flush=True)
    sets = {"split": test_part, "holdout": holdout}
    results = [run_one(name, config, train_part, sets, workdir, rounds)
               for name, config in PIPELINES.items()]
    _table("project data (train 80 % → split 20 % and holdout)", results, _score_rows(results))


def smp_suite(workdir: Path, rounds: int) -> None:
    """SMP2017-ECDT task 1, train → develop."""
    train_set, develop = load_smp("train"), load_smp("develop")
    print(f"smp2017: train {len(train_set)}, develop {len(develop)}", flush=True)
    results = [run_one(name, config, train_set, {"develop": develop}, workdir, rounds)
               for name, config in PIPELINES.items()]
    _table("SMP2017-ECDT task 1 (train → develop)", results, _score_rows(results))


def curve_suite(workdir: Path) -> None:
    """Few examples: 5, 10 and 20 per class, three draws each, scored on all of develop."""
    train_set, develop = load_smp("train"), load_smp("develop")
    rows: list[tuple[str, list[float], str]] = []
    results: list[Result] = []
    for size in CURVE_SIZES:
        by_pipeline: dict[str, list[Result]] = {name: [] for name in PIPELINES}
        for draw in range(CURVE_DRAWS):
            sample = sample_per_class(train_set, size, seed=1000 * size + draw)
            print(f"curve: {size}/class draw {draw + 1}: {len(sample)} examples", flush=True)
            for name, config in PIPELINES.items():
                by_pipeline[name].append(
                    run_one(name, config, sample, {"develop": develop}, workdir))
        results = [Result(name, statistics.mean(r.train_s for r in runs), {})
                   for name, runs in by_pipeline.items()]
        for metric in ("accuracy", "macro_f1"):
            means = [statistics.mean(getattr(r.scores["develop"], metric) for r in runs)
                     for runs in by_pipeline.values()]
            spread = [max(getattr(r.scores["develop"], metric) for r in runs)
                      - min(getattr(r.scores["develop"], metric) for r in runs)
                      for runs in by_pipeline.values()]
            label = metric.replace("_", "-")
            rows.append((f"{size}/class {label} (mean of {CURVE_DRAWS})", means, "{:.3f}"))
            rows.append((f"{size}/class {label} (max − min)", spread, "{:.3f}"))
        rows.append((f"{size}/class training time (s)", [r.train_s for r in results],
                     "{:.1f}"))
    _table("learning curve on SMP2017 develop", results, rows)


def _thresholds_of(config: Path) -> tuple[float, float]:
    """The FallbackClassifier's threshold and ambiguity threshold in a pipeline."""
    import yaml

    pipeline = yaml.safe_load(config.read_text(encoding="utf-8"))["pipeline"]
    for component in pipeline:
        if component.get("name") == "FallbackClassifier":
            return (float(component.get("threshold", 0.3)),
                    float(component.get("ambiguity_threshold", 0.1)))
    return 0.0, 0.0


def _answered_stats(gold: list[str], predictions: list[tuple[str, str, float, float]],
                    threshold: float, ambiguity: float) -> tuple[float, float, float, float]:
    """Precision of answered messages; share to fallback overall, in scope, out of scope."""
    answered = correct = in_scope = in_fallback = oos = oos_fallback = 0
    for label, (top, _, confidence, second) in zip(gold, predictions, strict=True):
        to_fallback = confidence < threshold or confidence - second < ambiguity
        is_oos = label == FALLBACK
        oos += is_oos
        in_scope += not is_oos
        oos_fallback += is_oos and to_fallback
        in_fallback += (not is_oos) and to_fallback
        if not to_fallback:
            answered += 1
            correct += top == label
    total = in_scope + oos
    return (correct / answered if answered else float("nan"),
            (in_fallback + oos_fallback) / total, in_fallback / max(in_scope, 1),
            oos_fallback / max(oos, 1))


def fallback_suite(workdir: Path, seed: int) -> None:
    """Does the threshold keep wrong answers out? Some classes are never trained on."""
    train_set, develop = load_smp("train"), load_smp("develop")
    labels = sorted({e.intent for e in train_set})
    held_out = set(random.Random(seed).sample(labels, OUT_OF_SCOPE_CLASSES))
    kept = [e for e in train_set if e.intent not in held_out]
    scored = [Example(e.text, FALLBACK if e.intent in held_out else e.intent) for e in develop]
    gold = [e.intent for e in scored]
    print(f"fallback: out of scope {sorted(held_out)} "
          f"({sum(g == FALLBACK for g in gold)} develop messages)", flush=True)
    print(f"\n== confidence on SMP2017 develop + out-of-scope classes ==\n"
          f"{'pipeline':<14}{'threshold':>10}{'precision':>11}{'fallback':>10}"
          f"{'in-scope fb':>13}{'oos fb':>9}")
    for name, config in PIPELINES.items():
        result = run_one(name, config, kept, {"develop": scored}, workdir)
        predictions = result.scores["develop"].predictions
        configured, ambiguity = _thresholds_of(config)
        thresholds = sorted({configured, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8})
        for threshold in thresholds if name == "qunzhu" else [configured]:
            precision, share, in_fb, oos_fb = _answered_stats(gold, predictions, threshold,
                                                              ambiguity)
            mark = " ← configured" if threshold == configured else ""
            print(f"{name:<14}{threshold:>10.2f}{precision:>11.3f}{share:>10.3f}"
                  f"{in_fb:>13.3f}{oos_fb:>9.3f}{mark}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen suites and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", default="project,smp,curve,fallback",
                        help="comma-separated: project, smp, curve, fallback")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-rounds", type=int, default=3)
    parser.add_argument("--pipelines", default=",".join(PIPELINES),
                        help="comma-separated, of: " + ", ".join(PIPELINES)
                        + " (qunzhu and the baseline are always run)")
    args = parser.parse_args(argv)
    chosen = {"qunzhu", BASELINE, *(p.strip() for p in args.pipelines.split(","))}
    for name in [n for n in PIPELINES if n not in chosen]:
        del PIPELINES[name]
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)
    logging.disable(logging.WARNING)
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="qz-bench-") as tmp:
        workdir = Path(tmp)
        for suite in suites:
            if suite == "project":
                project_suite(workdir, args.latency_rounds, args.seed)
            elif suite == "smp":
                smp_suite(workdir, args.latency_rounds)
            elif suite == "curve":
                curve_suite(workdir)
            elif suite == "fallback":
                fallback_suite(workdir, args.seed)
            else:
                parser.error(f"unknown suite {suite!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
