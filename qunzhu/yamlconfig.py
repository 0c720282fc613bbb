"""Operator YAML loading shared by actions and bridge: errors name file, line and field.

A typo in an operator file must stop the process at start-up with a message like
`data/games.yml:12: coupons[0].stock: ensure this value is greater than 0`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Extra, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError


class ConfigError(Exception):
    """A config file is invalid; the message names file, line and field."""


class Strict(BaseModel):
    """Base of every operator model: an unknown key is a typo, so it is an error."""

    class Config:
        extra = Extra.forbid
        anystr_strip_whitespace = True


def line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    """Follow a pydantic error location through ruamel's nodes to a 1-based line number."""
    line: int | None = None
    for key in loc:
        lc = getattr(node, "lc", None)
        if lc is None:
            break
        try:
            if isinstance(node, list) and isinstance(key, int):
                line = lc.item(key)[0] + 1
            elif isinstance(node, dict) and key in node:
                line = lc.key(key)[0] + 1
            else:
                break
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
    if line is None and getattr(node, "lc", None) is not None:
        line = int(node.lc.line) + 1
    return line


def read_text(path: Path) -> str:
    """The file's text, or a ConfigError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text (save it as UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None


def load_yaml(path: Path, text: str | None = None) -> Any:
    """Round-trip load (of `text` if given, named `path`), keeping lines for error messages."""
    if text is None:
        text = read_text(path)
    try:
        return YAML(typ="rt").load(text)
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be configuration") from None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}{where}: {problem}") from None


def validate(path: Path, raw: Any, model: type[BaseModel], root: str | None) -> Any:
    """Validate `raw[root]` against a pydantic model; all problems in one ConfigError."""
    data = raw.get(root) if root and isinstance(raw, dict) else raw
    if data is None:
        raise ConfigError(f"{path}: expected a top-level '{root}:' mapping")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {root or '(top level)'}: expected a mapping of names to "
                          "values")
    odd = next((k for k in data if not isinstance(k, str)), None)
    if odd is not None:
        line = line_of(data, (odd,))
        raise ConfigError(f"{path}{f':{line}' if line else ''}: {root or '(top level)'}: "
                          f"{odd!s} is not a field name (write names, not numbers or dates)")
    try:
        return model.parse_obj(data)
    except (TypeError, RecursionError) as exc:  # non-string keys deeper down, absurd nesting
        raise ConfigError(f"{path}: {root or '(top level)'}: not valid configuration "
                          f"({type(exc).__name__})") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            loc = tuple(part for part in loc if part != "__root__")
            line = line_of(data, loc)
            field = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc)
            field = field.replace(".[", "[") or (root or "(top level)")
            where = f"{path}:{line}" if line else str(path)
            problems.append(f"{where}: {field}: {err['msg']}")
        raise ConfigError("\n".join(problems)) from None
