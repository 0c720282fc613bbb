"""The quality bars a model must clear, in one place: `make test` and the publisher read them.

Each held-out set has an intent-accuracy and an FAQ-accuracy bar. The first is the project's
holdout; the second, members' own wordings; the third, a blind set nobody tuned on, gated
below today's figures only to catch regressions. Every test story step must be right too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NluGate:
    """One held-out set and the accuracy a model needs on it."""

    path: str  # relative to the project root
    label: str  # what an operator reads on the 发布 page
    min_intent: float
    min_faq: float
    results: str  # where `make test` writes Rasa's reports for it


HOLDOUT = NluGate("tests/nlu_holdout.yml", "留出测试集", 0.98, 0.97, "results/nlu")
MEMBER_SETS = (
    NluGate("tests/nlu_members.yml", "群友问法测试集", 0.97, 0.95, "results/nlu-members"),
    NluGate("tests/nlu_members_b.yml", "第二组群友问法测试集", 0.9, 0.92,
            "results/nlu-members-b"),
)
NLU_GATES = (HOLDOUT, *MEMBER_SETS)
STORIES = "tests/test_stories.yml"
