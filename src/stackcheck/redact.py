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

import html
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

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


@lru_cache(maxsize=64)
def _spellings(secret: str) -> frozenset[str]:
    """``secret`` as the texts we quote may spell it.

    A health body is JSON (quotes, backslashes and non-ASCII escaped), a DSN in
    an error is percent-encoded or libpq-quoted, an HTML page escapes "&<>", a
    repr() doubles backslashes: the password is as readable in each.
    """
    return frozenset(
        {
            secret,
            json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1],
            quote(secret, safe=""),
            quote(secret),
            quote_plus(secret),
            secret.replace("\\", "\\\\"),
            secret.replace("\\", "\\\\").replace("'", "\\'"),
            html.escape(secret),
            html.escape(secret, quote=False),
        }
    )


# Excerpts are cut before they are redacted (a health body's first 200
# characters, a long log line around its bad word, marked "… [truncated N
# chars]"), so a cut may fall inside a password: neither the whole of it nor
# the "@" after a URL's userinfo is left to recognise. At a cut (the end of the
# text, either side of "…") at least this many characters that begin a secret
# (before the cut) or end it (after) are masked. Fewer reveal next to nothing,
# and would mask the last letters of too many ordinary texts.
_CUT_MIN = 4
_ELLIPSIS = "…"


def _begins_secret(text: str, end: int, form: str, floor: int) -> int:
    """The most characters (> ``floor``) before ``end`` that begin ``form``, or 0."""
    if end <= 0:
        return 0
    last = text[end - 1]
    size = min(len(form) - 1, end) + 1  # a whole spelling was replaced already
    while True:
        # Only where the secret has the character before the cut can it be cut.
        size = form.rfind(last, 0, size - 1) + 1
        if size <= floor:
            return 0
        if text.startswith(form[:size], end - size):
            return size


def _ends_secret(text: str, start: int, form: str, floor: int) -> int:
    """The most characters (> ``floor``) from ``start`` that end ``form``, or 0."""
    if start >= len(text):
        return 0
    first = text[start]
    at = 0  # a whole spelling was replaced already: the cut is after its start
    while True:
        at = form.find(first, at + 1)
        if at < 0 or len(form) - at <= floor:
            return 0
        if text.startswith(form[at:], start):
            return len(form) - at


@lru_cache(maxsize=16)
def _holding(spellings: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """For each character, the spellings that contain it: a cut is looked for only
    in those, so text full of "…" costs a lookup per cut."""
    found: dict[str, list[str]] = {}
    for form in spellings:
        for char in set(form):
            found.setdefault(char, []).append(form)
    return {char: tuple(forms) for char, forms in found.items()}


def _mask_cut_secrets(text: str, spellings: tuple[str, ...]) -> str:
    """``text`` with the piece of a secret left at each cut masked."""
    holding = _holding(spellings)
    ends = [len(text)]
    starts = []
    for found in re.finditer(_ELLIPSIS, text):
        at = found.start()
        ends.append(at - 1 if text[at - 1 : at] == " " else at)
        starts.append(at + 2 if text[at + 1 : at + 2] == " " else at + 1)
    pieces: list[tuple[int, int]] = []
    for end in ends:
        longest = 0
        for form in holding.get(text[end - 1], ()) if end > 0 else ():
            longest = max(longest, _begins_secret(text, end, form, max(longest, _CUT_MIN - 1)))
        if longest:
            pieces.append((end - longest, end))
    for start in starts:
        longest = 0
        for form in holding.get(text[start], ()) if start < len(text) else ():
            longest = max(longest, _ends_secret(text, start, form, max(longest, _CUT_MIN - 1)))
        if longest:
            pieces.append((start, start + longest))
    if not pieces:
        return text
    shown, done = [], 0
    for begin, end in sorted(pieces):
        if end <= done:  # within a piece masked already
            continue
        shown.append(text[done:begin] if begin > done else "")
        shown.append(MASK)
        done = end
    return "".join(shown) + text[done:]


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` and anything that looks like a password masked."""
    return _redacted(text, _ordered_spellings(tuple(secrets)))


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """The same structure of builtins, with every string redacted."""
    return _redact(value, _ordered_spellings(tuple(secrets)))


def _redact(value: Any, spellings: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return _redacted(value, spellings)
    if isinstance(value, dict):
        return {k: _redact(v, spellings) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, spellings) for v in value]
    return value


@lru_cache(maxsize=16)
def _ordered_spellings(secrets: tuple[str, ...]) -> tuple[str, ...]:
    # Longest first, so that a spelling that contains another is hidden whole.
    return tuple(
        sorted(
            {form for secret in secrets if secret for form in _spellings(secret)},
            key=lambda form: (-len(form), form),
        )
    )


# A run redacts the same texts again and again: every check's definition,
# runbook step and fixes, once per stack, service and replica (some 110
# strings a check, 20,000 in a run of 8 stacks). Short ones are kept; a long
# text (a health body, a log excerpt) is seldom seen twice.
_CACHED_TEXT = 512


def _redacted(text: str, spellings: tuple[str, ...]) -> str:
    if len(text) <= _CACHED_TEXT:
        return _redacted_short(text, spellings)
    return _redact_now(text, spellings)


@lru_cache(maxsize=8192)
def _redacted_short(text: str, spellings: tuple[str, ...]) -> str:
    return _redact_now(text, spellings)


def _redact_now(text: str, spellings: tuple[str, ...]) -> str:
    for form in spellings:
        text = text.replace(form, MASK)
    if spellings:
        text = _mask_cut_secrets(text, spellings)
    text = _URL_PASSWORD.sub(_mask_after_head, text)
    # Before the key=value pass: in "token: Bearer abc" that pass would mask only
    # the word "Bearer" and leave the token itself.
    text = _AUTH_SCHEME.sub(_mask_after_head, text)
    return _KEY_VALUE.sub(_mask_value, text)


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
