"""Every class named by path in config.yml and endpoints.yml imports (a rename breaks Rasa
only when it loads, so say it here)."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def named_paths() -> list[str]:
    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    endpoints = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8"))
    names = [c["name"] for c in config.get("pipeline", []) + config.get("policies", [])]
    names += [section.get("type", "") for section in endpoints.values()
              if isinstance(section, dict)]
    return [n for n in names if "." in n]  # Rasa's own components go by bare names


def test_every_named_class_imports() -> None:
    paths = named_paths()
    assert "qunzhu.plugins.nlu.ChineseTextNormalizer" in paths
    for path in paths:
        module, name = path.rsplit(".", 1)
        assert hasattr(importlib.import_module(module), name), path
