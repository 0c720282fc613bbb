"""Rasa's command line, minus warnings about responses that the code sends, not the dialogue.

Rasa warns "The utterance 'utter_x' is not used in any story or rule" for every response
an action or the bridge sends by name (check-in results, coupon lists, welcomes, the busy
reply): about 60 lines that a newcomer's first `make run` would read as errors. Those are
silenced here, and only those; a response that nothing sends still gets Rasa's warning
(and fails tests/test_domain.py).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from qunzhu.quiet import quiet_library_deprecations
from qunzhu.settings import PROJECT_ROOT

CODE_DIRS = ("actions", "bot")
_NAMED = re.compile(r"\"(utter_[a-z_]+)\"")


def responses_sent_by_code(root: Path = PROJECT_ROOT) -> set[str]:
    """Response names the actions and the bridge send themselves."""
    names: set[str] = set()
    for folder in CODE_DIRS:
        for path in (root / folder).rglob("*.py"):
            names |= set(_NAMED.findall(path.read_text("utf-8")))
    # FAQ answers are chosen by the ResponseSelector, formatted lines by the actions.
    return names - {"utter_action"} | {"utter_faq"}


def quiet_sent_by_code() -> None:
    """Add Rasa's not-used warning for each response the code sends to its expected warnings.

    Rasa installs its own warning filters when its CLI starts (UserWarnings "once"), ahead
    of any set before; its list of expected warnings is the hook it applies after them.
    """
    from rasa.utils import common

    expected = [(UserWarning, rf"The utterance '{re.escape(name)}' is not used")
                for name in sorted(responses_sent_by_code())]
    # utter_fmt_* are list-line formats rendered inside actions, never sent alone.
    expected.append((UserWarning, r"The utterance 'utter_fmt_\w+' is not used"))
    # The retrieval intent is declared in domain.yml (as Rasa's docs ask) and Rasa adds it
    # again from data/nlu/faq.yml, then warns about its own duplicate.
    expected.append((UserWarning, r"duplicated intents have been found across multiple "
                                  r"domain files: faq$"))
    # NgramResponseSelector (qunzhu.plugins) selects FAQ answers; Rasa looks for its own.
    expected.append((UserWarning, r"your NLU configuration does not include a response "
                                  r"selector component"))
    common.EXPECTED_WARNINGS.extend(expected)


def main() -> None:
    """Run `rasa <args>` with the filter and qunzhu's Rasa speed-ups installed."""
    # Rasa reports usage to its servers unless told not to: no network at run time but WeCom.
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    quiet_library_deprecations()
    quiet_sent_by_code()
    from qunzhu.plugins import speedups

    speedups.install()  # explicitly, here: importing a plug-in changes nothing in Rasa
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *sys.argv[1:]]
    rasa_main()


if __name__ == "__main__":
    main()
