"""Hide passwords in anything the reporter writes, whatever the collector missed."""

from __future__ import annotations

from collections.abc import Iterable

from stackcheck.redact import redact_text
from stackcheck.report import registry


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with the stacks' secrets, ``extra`` and URL/key=value passwords masked."""
    # Longest first, so a password that contains another is hidden whole.
    secrets = sorted({*registry.secrets(), *extra}, key=len, reverse=True)
    return redact_text(text, secrets)
