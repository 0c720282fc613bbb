"""Member-facing sentences the bridge says itself, read from domain.yml like every other one."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from qunzhu.settings import PROJECT_ROOT

NEEDED = (
    "utter_busy",
    "utter_bridge_text_only",
    "utter_bridge_hello",
    "utter_bridge_config_error",
    "utter_fmt_direct_chat",
    "utter_bridge_welcome",
    "utter_bridge_handoff_staff",
    "utter_bridge_digest_title",
)


class _Keep(dict[str, Any]):
    """Leave unknown {placeholders} as they are instead of failing."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Texts:
    """Responses by name, with a random variation per use so the bot does not repeat itself."""

    def __init__(self, responses: dict[str, list[str]], rng: random.Random | None = None) -> None:
        missing = [name for name in NEEDED if not responses.get(name)]
        if missing:
            raise ValueError(f"domain.yml lacks responses the bridge needs: {', '.join(missing)}")
        self._responses = responses
        self._rng = rng or random.Random()

    @classmethod
    def from_domain(cls, path: Path | None = None) -> Texts:
        """Load the text variations of every response in domain.yml."""
        doc = yaml.safe_load((path or PROJECT_ROOT / "domain.yml").read_text("utf-8"))
        responses = {
            name: [str(v["text"]) for v in variations if isinstance(v, dict) and "text" in v]
            for name, variations in (doc.get("responses") or {}).items()
        }
        return cls(responses)

    def say(self, name: str, **slots: Any) -> str:
        """One variation of a response with its slots filled."""
        return self._rng.choice(self._responses[name]).format_map(_Keep(slots))

    def wording(self, name: str) -> Callable[..., str]:
        """One variation chosen now and filled later: a text measured, then built, with
        different slot values (a digest's title) must keep the wording it was measured with."""
        template = self._rng.choice(self._responses[name])
        return lambda **slots: template.format_map(_Keep(slots))

    def variations(self, name: str) -> list[str]:
        """All wordings of a response (tests and the simulator's display use this)."""
        return list(self._responses[name])
