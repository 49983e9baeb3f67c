"""Make anything the reporter writes safe to show: passwords masked, controls removed.

Evidence, log lines, health bodies and server errors may carry a password the
collector missed, or terminal escape sequences that would retitle or clear the
engineer's terminal; every string the reporter prints or writes passes here.
"""

from __future__ import annotations

from stackcheck.redact import redact_text, strip_controls
from stackcheck.report import registry


def redact(text: str) -> str:
    """``text`` with passwords masked and terminal controls removed."""
    # Longest first, so a password that contains another is hidden whole.
    return strip_controls(redact_text(text, sorted(registry.secrets(), key=len, reverse=True)))
