"""Keep passwords out of every output: terminal, JUnit, JSON, Markdown, metrics.

The stacks' own secrets are replaced literally; the patterns below are a
backstop for the ones we were never told about (another service's password in
a log line, a token in a health body). They over-mask rather than leak.

Every pattern runs in linear time on any input, because the text it scans is
hostile (a health body, a log line) and a redaction that hangs hangs the whole
report. Each one is anchored where a match can only start (a literal "://",
the first character of a name, the first letter of an auth scheme) so that
re.sub, which tries every position, never restarts a long scan from inside
the previous one; and the runs each start scans are delimited by characters
that also end the next start's run, so no character is scanned more than a
few times.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "******"

# scheme://user:password@host, for DSNs that reach us through error messages.
# Anchored on the literal "://" rather than on the scheme: "[a-z][a-z0-9+.-]*://"
# restarted at every letter of a long word, quadratic. The user may be empty
# (redis://:pw@host); the password runs to the *last* "@" before the host, since
# people paste unencoded passwords (admin:p@ssW0rd@host). Neither may contain
# "/", so one start's scan ends before the next "://" begins; nor whitespace or
# quotes, so compact JSON ("url":"http://u:p@h","mail":"a@b") does not swallow
# the next field.
_URL_PASSWORD = re.compile(
    r"""(?P<head>://[^\s/?#@:"'`<>]*:)[^\s/"'`<>]+(?=@)""",
)

# Authorization: Bearer abc.def / Basic dXNlcjpwdw==. The scheme is matched
# case-insensitively, as HTTP does, but only as a whole word ("nonbasic x" is
# prose). The credential runs to whitespace, a quote or a list separator.
_AUTH_SCHEME = re.compile(
    r"""(?<![A-Za-z0-9_-])(?P<head>(?:bearer|basic)[ \t]+)[^\s"'`<>,;]+""",
    re.IGNORECASE,
)

# NAME=value, NAME: value, "name": "value", 'name': 'value', ?token=value&...
# where NAME contains one of these words (POSTGRES_PASSWORD, db_password,
# AWS_SECRET_ACCESS_KEY, PGPASSWORD, token, ...).
_SECRET_WORD = r"(?:passw(?:or)?d|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)"
_NAME_CHAR = r"[A-Za-z0-9_.-]"
_KEY_VALUE = re.compile(
    rf"""
    (?P<head>
        (?P<quote>["'])?
        # Only at the first character of a name: a start inside a long name is
        # refused at once instead of rescanning the rest of it (quadratic).
        (?<![A-Za-z0-9_.-])
        # The lookahead cannot leave the name, and is atomic: one scan per name.
        (?={_NAME_CHAR}*?{_SECRET_WORD})
        {_NAME_CHAR}+
        (?(quote)
            (?P=quote)[ \t]*[=:][ \t]*
        |
            # A bare "name:" needs YAML's space (or a quote) after it, so that
            # labels like token-svc:http_health stay readable.
            [ \t]*(?:=[ \t]*|:[ \t]+|:(?=["']))
        )
    )
    (?P<value>
        # Quoted values end at their closing quote, never past the line.
        "(?:[^"\\\n]|\\.)*"
    |   '(?:[^'\\\n]|\\.)*'
        # Unquoted ones at whitespace, "&" (query strings) or a quote (the end of
        # an enclosing string). An unclosed quote is masked with what follows.
    |   [^\s&][^\s"'`<>&]*
    )
    """,
    re.IGNORECASE | re.VERBOSE,
)


def _mask_value(match: re.Match[str]) -> str:
    value = match.group("value")
    if len(value) >= 2 and value[0] in "\"'" and value[-1] == value[0]:
        return f"{match.group('head')}{value[0]}{MASK}{value[0]}"
    return match.group("head") + MASK


def _mask_after_head(match: re.Match[str]) -> str:
    return match.group("head") + MASK


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` and anything that looks like a password masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(_mask_after_head, text)
    # Before the key=value pass: in "token: Bearer abc" that pass would mask only
    # the word "Bearer" and leave the token itself.
    text = _AUTH_SCHEME.sub(_mask_after_head, text)
    return _KEY_VALUE.sub(_mask_value, text)


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """The same structure of builtins, with every string redacted."""
    secrets = list(secrets)
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    return value


# Terminal escape sequences, removed whole so that no "]0;title" or "[2J" is
# left behind. String commands (OSC, DCS, SOS, PM, APC) run to BEL or ST but
# never past a line or the next escape; CSI to its final byte; the rest are two
# characters. Every body stops at ESC and at every C1 character, which is where
# the next sequence can start, so a scan never crosses another start (linear).
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b[]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x80-\x9f\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|\x1b[ -/]*[0-~]"
)
# C0 but tab and newline (NUL and CR included), DEL, C1.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_controls(text: str) -> str:
    """``text`` without terminal escape sequences and control characters.

    Keeps tab and newline; removes the other C0 characters (NUL, CR, ...), DEL
    and the C1 characters, and ESC sequences whole (``\\x1b]0;title\\x07``,
    ``\\x1b[2J``), so that neither a terminal showing the note nor a Markdown
    renderer sees them.
    """
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", text))
