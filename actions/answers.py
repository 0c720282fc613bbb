"""FAQ answer wordings as operators last saved them: domain.yml on disk, not the model's copy.

Rasa renders a response from the domain packed into the trained model, so a reworded answer
would wait for the next training. The console's 常见问题 page writes the wordings into
domain.yml; this module reads that file live (qunzhu.liveconfig: reloaded when it changes, the
last good version kept when an edit breaks it), and action_answer_faq sends the text from here.
Only the `utter_faq/<key>` responses are taken: everything else still comes from the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from actions.replies import render
from qunzhu import settings
from qunzhu.liveconfig import LiveFile
from qunzhu.yamlconfig import ConfigError, load_yaml

PREFIX = "utter_faq/"
Wordings = dict[str, tuple[str, ...]]  # `utter_faq/<key>` → its variations' texts

_live: LiveFile[Wordings] | None = None
_path: Path | None = None  # tests read a copy instead of the project's domain.yml
_check_every_s = 1.0


def domain_file() -> Path:
    """The domain.yml the console edits (QZ_DOMAIN_FILE, unless a test points elsewhere)."""
    return _path or settings.project_path("QZ_DOMAIN_FILE")


def use_domain_file(path: Path | None, *, check_every_s: float = 1.0) -> None:
    """Read wordings from `path` from now on (tests); None goes back to the project's file."""
    global _live, _path, _check_every_s
    _live, _path, _check_every_s = None, path, check_every_s


def parse(path: Path, text: str) -> Wordings:
    """The FAQ responses' texts; a file the bot could not answer from is a ConfigError."""
    doc: Any = load_yaml(path, text)
    responses = doc.get("responses") if isinstance(doc, Mapping) else None
    if not isinstance(responses, Mapping):
        raise ConfigError(f"{path}: expected a 'responses:' mapping")
    out: Wordings = {}
    for name, variations in responses.items():
        if not str(name).startswith(PREFIX):
            continue
        if not isinstance(variations, list):
            raise ConfigError(f"{path}: responses.{name}: expected a list of variations")
        texts = []
        for i, variation in enumerate(variations):
            said = variation.get("text") if isinstance(variation, Mapping) else None
            if not isinstance(said, str):
                raise ConfigError(f"{path}: responses.{name}[{i}].text: expected text")
            texts.append(said)
        out[str(name)] = tuple(texts)
    return out


def live_file() -> LiveFile[Wordings]:
    """The live domain file, opened on first use (ConfigError if it never was valid)."""
    global _live
    if _live is None:
        _live = LiveFile("domain", domain_file(), parse, check_every_s=_check_every_s)
    return _live


def wordings(response: str) -> tuple[str, ...]:
    """The saved variations of one FAQ response; () when the file has none to give."""
    try:
        return live_file().value.get(response, ())
    except ConfigError:
        return ()  # never a good file: the model's own wording still answers


def answer(response: str, values: Mapping[str, Any]) -> str | None:
    """One saved variation at random with its {placeholders} filled; None = use the model's.

    Filled by actions.replies.render, so a saved answer reads as the model's would.
    """
    texts = wordings(response)
    if not texts:
        return None
    return render({"responses": {response: [{"text": t} for t in texts]}}, response, **values)
