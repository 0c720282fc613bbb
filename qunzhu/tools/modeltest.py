"""`make test`'s model checks in one process: the test stories and every NLU gate.

The same as `rasa test core --fail-on-prediction-errors` plus one `rasa test nlu` per held-out
set, with the same reports in results/, but the model is loaded once instead of four times
(about 25 s each on a 2-core machine). The bars are qunzhu.tools.gates, which the publisher
applies too.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from qunzhu.quiet import quiet_library_deprecations
from qunzhu.settings import PROJECT_ROOT
from qunzhu.tools.gates import NLU_GATES, STORIES
from qunzhu.tools.nlu_report import report
from qunzhu.tools.rasacli import quiet_sent_by_code


async def _run(model: Path, root: Path) -> list[str]:
    from rasa.core.agent import Agent
    from rasa.core.test import WrongPredictionException
    from rasa.core.test import test as test_stories
    from rasa.nlu.test import run_evaluation

    agent = Agent.load(model_path=str(model))
    failed: list[str] = []
    print(f"== test stories ({STORIES})", flush=True)
    (root / "results/core").mkdir(parents=True, exist_ok=True)  # Rasa writes into, not makes, it
    try:
        stories = await test_stories(str(root / STORIES), agent,
                                     out_directory=str(root / "results/core"),
                                     fail_on_prediction_errors=True, disable_plotting=True)
    except WrongPredictionException as exc:
        failed.append(f"{STORIES}: a wrong prediction ({exc})")
    else:
        conversations = stories["report"].get("conversation_accuracy", {})
        print(f"conversations right: {conversations.get('correct')} of "
              f"{conversations.get('total')}", flush=True)
        if conversations.get("accuracy") != 1.0:
            failed.append(f"{STORIES}: {conversations}")
    for gate in NLU_GATES:
        print(f"== {gate.path} (intent ≥ {gate.min_intent}, FAQ ≥ {gate.min_faq})", flush=True)
        await run_evaluation(str(root / gate.path), agent.processor,
                             output_directory=str(root / gate.results), errors=True,
                             disable_plotting=True)
        failed += [f"{gate.path}: {why}" for why in
                   report(root / gate.results, gate.min_intent, gate.min_faq)]
    return failed


def main(argv: list[str] | None = None) -> int:
    """Exit 1 when a story step is wrong or a held-out set falls below its gate."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=PROJECT_ROOT / "models/qunzhu.tar.gz")
    args = parser.parse_args(argv)
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_library_deprecations()
    quiet_sent_by_code()
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)  # Rasa's per-message debug lines otherwise
    from qunzhu.plugins import speedups

    speedups.install()  # the model was trained with them; `rasa test` runs with them too
    failed = asyncio.run(_run(args.model, PROJECT_ROOT))
    if failed:
        print("model checks failed:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    print("model checks passed: every test story, every NLU gate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
