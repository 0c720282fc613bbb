"""Read `rasa test nlu` results, print the headline numbers, and gate on minimum quality."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _load(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def summarise(results: Path) -> dict[str, float]:
    """Intent accuracy and macro-F1, and FAQ (response selection) accuracy."""
    intents = _load(results / "intent_report.json")
    if intents is None:
        raise SystemExit(f"no intent_report.json in {results}: did `rasa test nlu` run?")
    summary = {
        "intent_accuracy": float(intents["accuracy"]),
        "intent_macro_f1": float(intents["macro avg"]["f1-score"]),
    }
    faq = _load(results / "response_selection_report.json")
    if faq is not None:
        summary["faq_accuracy"] = float(faq["accuracy"])
    return summary


def report(results: Path, min_intent: float, min_faq: float) -> list[str]:
    """Print the headline numbers and the misses; the gates this result fails (empty: none)."""
    summary = summarise(results)
    for name, value in summary.items():
        print(f"{name:>18}: {value:.3f}")
    errors: Any = _load(results / "intent_errors.json") or []
    for error in errors if isinstance(errors, list) else []:
        predicted = error.get("intent_prediction", {})
        print(f"  miss: {error.get('text')!r} → {predicted.get('name')} "
              f"({predicted.get('confidence', 0):.2f}), expected {error.get('intent')}")
    failed = []
    if summary["intent_accuracy"] < min_intent:
        failed.append(f"intent accuracy below {min_intent}")
    if summary.get("faq_accuracy", 1.0) < min_faq:
        failed.append(f"FAQ accuracy below {min_faq}")
    return failed


def main(argv: list[str] | None = None) -> int:
    """Exit 1 when the held-out accuracy falls below the thresholds."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--min-intent-accuracy", type=float, default=0.0)
    parser.add_argument("--min-faq-accuracy", type=float, default=0.0)
    args = parser.parse_args(argv)
    failed = report(args.results, args.min_intent_accuracy, args.min_faq_accuracy)
    if failed:
        print("NLU quality gate failed: " + "; ".join(failed), file=sys.stderr)
        return 1
    print("NLU quality gate passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
