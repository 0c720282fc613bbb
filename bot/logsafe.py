"""Defence in depth: a logging filter that blanks secret values wherever they might appear."""

from __future__ import annotations

import logging
from collections.abc import Iterable

MASK = "***"


class RedactSecrets(logging.Filter):
    """Replace any configured secret (token, AES key, webhook keys…) in a record's text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

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


def install(secrets: Iterable[str]) -> None:
    """Attach the filter to every handler of the root logger."""
    redact = RedactSecrets(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)
