"""Defence in depth: a logging filter that blanks secret values wherever they might appear."""

from __future__ import annotations

import logging
from collections.abc import Iterable

MASK = "***"


class RedactSecrets(logging.Filter):
    """Replace any configured secret (token, AES key, webhook keys…) in a record's text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Redact these too (webhook keys of groups added by a reload)."""
        known = {*self._secrets, *(s for s in secrets if len(s) >= 6)}
        self._secrets = sorted(known, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        """Format once, redact, and freeze the result into the record."""
        if not self._secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in self._secrets:
            message = message.replace(secret, MASK)
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, MASK)
        record.msg, record.args = message, None
        return True


_installed: list[RedactSecrets] = []


def install(secrets: Iterable[str]) -> None:
    """Attach the filter to every handler of the root logger."""
    redact = RedactSecrets(secrets)
    _installed.append(redact)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)


def remember(secrets: Iterable[str]) -> None:
    """Add secrets learnt after start-up to every installed filter."""
    values = list(secrets)
    for redact in _installed:
        redact.add(values)
