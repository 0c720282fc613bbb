"""The publisher's pure parts: the training percentage, the gate, the reasons, the inputs copy.

These decide what the operator reads while a model trains and whether a model may answer
members at all; they need no Rasa, so they are checked here on realistic output and edge
values rather than only through a full publish.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from qunzhu.tools.publisher import (
    INPUTS,
    MIN_FAQ_ACCURACY,
    MIN_INTENT_ACCURACY,
    TrainingProgress,
    components_in,
    copy_inputs,
    gate,
    problems,
)

EPOCHS = 80


def tqdm_bar(epochs: int = EPOCHS) -> str:
    """One tqdm bar as Rasa's training prints it on a pipe: carriage returns, then a newline."""
    out = []
    for n in range(epochs + 1):
        pct = 100 * n / epochs
        filled = "█" * (n * 10 // epochs)
        out.append(f"\rEpochs: {pct:3.0f}%|{filled:<10}| {n}/{epochs} [00:{n // 10:02d}<00:0"
                   f"{(epochs - n) // 10}, 11.2it/s, t_loss=1.{n:03d}, i_acc=0.{n:03d}]")
    return "".join(out) + "\n"


COMPONENTS = 7  # config.yml: 5 pipeline components and 2 policies


def rasa_training_output() -> str:
    """What `rasa train` prints: one component from the cache, two trained (one with a tqdm
    bar), the policies; the normaliser and the FallbackClassifier train nothing."""
    hooks = "2026-11-23 14:00:0{} INFO     rasa.engine.training.hooks  - "
    return (
        hooks.format(1) + "Restored component 'JiebaTokenizer' from cache.\n"
        + hooks.format(1) + "Starting to train component 'DIETClassifier'.\n"
        + tqdm_bar()
        + hooks.format(8) + "Finished training component 'DIETClassifier'.\n"
        + hooks.format(8) + "Starting to train component 'NgramResponseSelector'.\n"
        + hooks.format(9) + "Finished training component 'NgramResponseSelector'.\n"
        + hooks.format(9) + "Finished training component 'MemoizationPolicy'.\n"
        + hooks.format(9) + "Finished training component 'RulePolicy'.\n"
        "Your Rasa model is trained and saved at 'models/published/x.tar.gz'.\n"
    )


def chunks(text: str, rng: random.Random, most: int) -> list[str]:
    """The text cut where a pipe read might cut it (mid-line, mid-number)."""
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, most)
        out.append(text[i:i + n])
        i += n
    return out


def fed(progress: TrainingProgress, pieces: list[str]) -> list[int]:
    return [p for p in (progress.feed(piece) for piece in pieces) if p is not None]


# ------------------------------------------------------------------ the training percentage
def done(name: str) -> str:
    return ("2026-11-23 14:00:01 INFO     rasa.engine.training.hooks  - "
            f"Finished training component '{name}'.\n")


def test_each_component_trained_is_its_share_and_a_bar_moves_through_its_share() -> None:
    progress = TrainingProgress(4)
    assert progress.feed(done("JiebaTokenizer")) == 25
    assert progress.feed("\rEpochs:   0%|          | 0/80 [00:00<?, ?it/s]") == 25
    assert progress.feed("\rEpochs:  50%|█████     | 40/80 [00:04<00:04]") == 37
    assert progress.feed("\rEpochs: 100%|██████████| 80/80 [00:08<00:00]\n") == 50
    assert progress.feed(done("DIETClassifier")) == 50
    assert progress.feed(done("RulePolicy") + done("MemoizationPolicy")) == 99


def test_text_without_a_component_or_a_bar_says_nothing_new() -> None:
    progress = TrainingProgress(2)
    assert progress.feed("2026-11-23 14:00:01 INFO rasa.engine - Starting to train.\n") is None
    assert progress.feed("") is None
    assert progress.feed("Epochs") is None
    assert progress.feed("\rEpochs:  10%|█") == 5
    assert progress.feed("Your Rasa model is trained.\n") is None


def test_a_component_line_cut_in_two_counts_once_when_it_is_whole() -> None:
    progress = TrainingProgress(2)
    line = done("NgramIntentClassifier")
    assert progress.feed(line[:40]) is None
    assert progress.feed(line[40:70]) is None
    assert progress.feed(line[70:]) == 50


def test_restored_from_cache_counts_like_trained() -> None:
    progress = TrainingProgress(2)
    assert progress.feed("... - Restored component 'RulePolicy' from cache.\n") == 50


def test_several_percentages_in_one_chunk_count_as_the_last_one() -> None:
    progress = TrainingProgress(2)
    assert progress.feed("\rEpochs:  10%|█ | 8/80\rEpochs:  20%|██ | 16/80"
                         "\rEpochs:  30%|███ | 24/80") == 15


def test_components_are_counted_from_config_yml(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("pipeline:\n  - name: A\n  - name: B\npolicies:\n  - name: C\n")
    assert components_in(config) == 3
    assert components_in(Path(__file__).resolve().parent.parent / "config.yml") == COMPONENTS
    config.write_text("pipeline: [\n")
    assert components_in(config) == 1
    assert components_in(tmp_path / "missing.yml") == 1


def test_the_whole_of_a_training_fed_in_one_piece_ends_at_99() -> None:
    assert TrainingProgress(COMPONENTS).feed(rasa_training_output()) == 99


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("most", [40, 300, 4096])
def test_rasa_output_cut_anywhere_only_ever_climbs_and_never_says_100(seed: int,
                                                                      most: int) -> None:
    pieces = chunks(rasa_training_output(), random.Random(seed), most)
    seen = fed(TrainingProgress(COMPONENTS), pieces)
    assert seen, "some progress is reported"
    assert all(a <= b for a, b in itertools.pairwise(seen)), seen
    assert all(0 <= p <= 99 for p in seen), seen
    assert seen[-1] == 99, "the last line is whole when it reaches the publisher"


def test_a_bar_moves_smoothly_within_its_share() -> None:
    seen = fed(TrainingProgress(1), tqdm_bar().split("\r"))
    assert seen[-1] == 99 and len(set(seen)) > 30, "the operator sees it move, not jump"


# ------------------------------------------------------------------ the gate
def test_a_model_exactly_at_the_thresholds_passes() -> None:
    assert MIN_INTENT_ACCURACY == 0.98 and MIN_FAQ_ACCURACY == 0.97
    assert gate({"intent_accuracy": 0.98, "faq_accuracy": 0.97}, {}) == []
    assert gate({"intent_accuracy": 98 / 100, "faq_accuracy": 97 / 100}, {}) == []


def test_a_model_as_good_as_the_live_one_passes() -> None:
    scores = {"intent_accuracy": 0.99, "faq_accuracy": 0.975}
    assert gate(scores, dict(scores)) == []
    assert gate({"intent_accuracy": 1.0, "faq_accuracy": 1.0}, scores) == []


def test_an_intent_accuracy_below_the_threshold_fails() -> None:
    failures = gate({"intent_accuracy": 0.979, "faq_accuracy": 0.99}, {})
    assert failures == ["意图识别准确率 97.9%，低于要求的 98%"]


def test_a_faq_accuracy_below_the_threshold_fails() -> None:
    failures = gate({"intent_accuracy": 0.99, "faq_accuracy": 0.969}, {})
    assert failures == ["常见问题匹配准确率 96.9%，低于要求的 97%"]


def test_a_model_worse_than_the_live_one_fails_even_above_the_thresholds() -> None:
    failures = gate({"intent_accuracy": 0.985, "faq_accuracy": 0.975},
                    {"intent_accuracy": 0.99, "faq_accuracy": 0.98})
    assert failures == ["意图识别准确率 98.5%，比线上模型的 99.0% 低",
                        "常见问题匹配准确率 97.5%，比线上模型的 98.0% 低"]


def test_below_the_threshold_and_below_live_gives_both_reasons() -> None:
    failures = gate({"intent_accuracy": 0.9}, {"intent_accuracy": 0.985})
    assert len(failures) == 2
    assert "低于要求的 98%" in failures[0] and "比线上模型的 98.5% 低" in failures[1]


def test_a_faq_score_missing_from_the_scores_is_not_a_failure() -> None:
    assert gate({"intent_accuracy": 0.99}, {}) == []
    assert gate({"intent_accuracy": 0.99},
                {"intent_accuracy": 0.98, "faq_accuracy": 0.99}) == []


def test_a_missing_intent_score_counts_as_zero() -> None:
    assert gate({}, {}) == ["意图识别准确率 0.0%，低于要求的 98%"]


def test_only_the_live_models_intent_score_known_compares_intents_only() -> None:
    assert gate({"intent_accuracy": 0.985, "faq_accuracy": 0.975},
                {"intent_accuracy": 0.98}) == []


# ------------------------------------------------------------------ what went wrong
VALIDATE_OUTPUT = """\
2026-11-23 14:00:01 INFO     rasa.validator  - Validating intents...
/work/.venv/lib/python3.10/site-packages/rasa/shared/utils/io.py:99: UserWarning: The intent 'coupon' is listed in the domain file, but is not found in the NLU training data.
  More info at https://rasa.com/docs/rasa/nlu-training-data
2026-11-23 14:00:01 WARNING  rasa.validator  - Story structure conflict after intent 'faq'
2026-11-23 14:00:02 INFO     rasa.validator  - Validating utterances...
2026-11-23 14:00:02 ERROR    rasa.validator  - Project validation completed with errors.
Error: data/nlu/faq.yml is not valid YAML
"""  # noqa: E501


def test_problems_picks_the_error_and_warning_lines() -> None:
    found = problems(VALIDATE_OUTPUT)
    assert found == [
        "/work/.venv/lib/python3.10/site-packages/rasa/shared/utils/io.py:99: UserWarning: The "
        "intent 'coupon' is listed in the domain file, but is not found in the NLU training "
        "data.",
        "2026-11-23 14:00:01 WARNING  rasa.validator  - Story structure conflict after intent "
        "'faq'",
        "2026-11-23 14:00:02 ERROR    rasa.validator  - Project validation completed with "
        "errors.",
        "Error: data/nlu/faq.yml is not valid YAML",
    ]


def test_problems_says_nothing_about_clean_output() -> None:
    assert problems("2026-11-23 14:00:01 INFO rasa - Training finished.\n" + tqdm_bar()) == []
    assert problems("") == []


def test_problems_caps_how_many_lines_and_how_long_each() -> None:
    output = "".join(f"2026-11-23 14:00:{i:02d} WARNING  rasa - issue {i}\n" for i in range(30))
    found = problems(output)
    assert len(found) == 8 and found[0].endswith("issue 0") and found[-1].endswith("issue 7")
    assert len(problems(output, limit=3)) == 3
    assert problems("ERROR " + "很长" * 400) == [("ERROR " + "很长" * 400)[:300]]


def test_problems_picks_a_command_line_error() -> None:
    assert problems("usage: rasa train [-h]\n"
                    "rasa: error: unrecognized arguments: --bogus\n") == [
        "rasa: error: unrecognized arguments: --bogus"]


# ------------------------------------------------------------------ the inputs copy
def test_copy_inputs_copies_the_files_and_folders_that_exist(tmp_path: Path) -> None:
    project, work = tmp_path / "project", tmp_path / "work"
    (project / "data" / "nlu").mkdir(parents=True)
    (project / "data" / "nlu" / "faq.yml").write_text("nlu:\n- intent: faq/优惠券\n", "utf-8")
    (project / "data" / "rules.yml").write_text("rules: []\n", "utf-8")
    (project / "tests").mkdir()
    (project / "tests" / "nlu_holdout.yml").write_text("nlu: []\n", "utf-8")
    (project / "tests" / "other.yml").write_text("not an input\n", "utf-8")
    (project / "config.yml").write_text("language: zh\n", "utf-8")
    (project / "domain.yml").write_text("version: '3.1'\n", "utf-8")
    (project / "README.md").write_text("not an input\n", "utf-8")
    work.mkdir()
    copy_inputs(project, work)
    assert (work / "data" / "nlu" / "faq.yml").read_text("utf-8") == "nlu:\n- intent: faq/优惠券\n"
    assert (work / "data" / "rules.yml").read_text("utf-8") == "rules: []\n"
    assert (work / "tests" / "nlu_holdout.yml").read_text("utf-8") == "nlu: []\n"
    assert (work / "config.yml").read_text("utf-8") == "language: zh\n"
    assert (work / "domain.yml").exists()
    for missing in ("endpoints.yml", "credentials.yml", "tests/test_stories.yml", "README.md",
                    "tests/other.yml"):
        assert not (work / missing).exists(), missing


def test_copy_inputs_of_an_empty_project_copies_nothing(tmp_path: Path) -> None:
    project, work = tmp_path / "project", tmp_path / "work"
    project.mkdir()
    work.mkdir()
    copy_inputs(project, work)
    assert list(work.iterdir()) == []


def test_the_copy_does_not_follow_later_edits(tmp_path: Path) -> None:
    """An operator saving while a publish trains changes the next publish, not this one."""
    project, work = tmp_path / "project", tmp_path / "work"
    (project / "data").mkdir(parents=True)
    (project / "data" / "nlu.yml").write_text("v1\n", "utf-8")
    work.mkdir()
    copy_inputs(project, work)
    (project / "data" / "nlu.yml").write_text("v2\n", "utf-8")
    (project / "data" / "new.yml").write_text("new\n", "utf-8")
    assert (work / "data" / "nlu.yml").read_text("utf-8") == "v1\n"
    assert not (work / "data" / "new.yml").exists()


def test_the_inputs_are_what_training_and_testing_read() -> None:
    assert {"config.yml", "domain.yml", "data", "tests/nlu_holdout.yml",
            "tests/test_stories.yml"} <= set(INPUTS)
