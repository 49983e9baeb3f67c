"""Hide passwords in anything the reporter writes, whatever the collector missed."""

from __future__ import annotations

from stackcheck.redact import redact_text
from stackcheck.report import registry


def redact(text: str) -> str:
    """``text`` with the stacks' secrets and URL/key=value passwords masked."""
    # Longest first, so a password that contains another is hidden whole.
    return redact_text(text, sorted(registry.secrets(), key=len, reverse=True))
