"""Keep library deprecation notices out of the console a newcomer reads.

Rasa 3.6's dependencies (SQLAlchemy, setuptools' pkg_resources, jax, pyparsing, sanic-cors)
print deprecation notices at every start. They concern library versions we pin, not the
operator, yet they read like errors. Libraries re-add their own warning filters on import,
so the notices are dropped where they are shown instead. Set QZ_SHOW_DEPRECATIONS=1 to see
them again.
"""

from __future__ import annotations

import warnings
from typing import Any, TextIO

from qunzhu import settings


def quiet_library_deprecations() -> None:
    """Drop DeprecationWarning (and subclasses) when they would be shown."""
    if settings.get("QZ_SHOW_DEPRECATIONS"):
        return
    shown = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> Any:
        if issubclass(category, DeprecationWarning):
            return None
        return shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
