"""Paging per the runbook: incoming-webhook messages when an incident opens, escalates, resolves.

``--notify URL`` (repeatable) and the stack file's ``[notify] urls`` name
Slack-compatible incoming webhooks. The incident clock (``escalation.advance``)
decides, under its lock, which of the three pages a run sends and marks them
before they go, so each goes out once per incident, across runs and rounds.

A page never stands in the way of the diagnosis: it is posted from a daemon
thread with a timeout, its outcome is one line (HTTP status or the error's
kind), a failed page never changes the exit status, and the process waits for
pages still in flight only after the report is printed, at most
``WAIT_S`` seconds. The URL is a secret (whoever has it can post to the
channel): it is never printed nor written to a report; a page is named
``webhook #N (scheme://host)``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from stackcheck.config import Stack, webhook_problem
from stackcheck.redact import strip_controls
from stackcheck.report.escalation import ESCALATE, OPEN, RESOLVE, Incident
from stackcheck.runbook import ESCALATION, POST_INCIDENT_STEP

# requests' (connect, read) timeouts of one post; a receiver that trickles its
# answer can take longer, which WAIT_S bounds.
CONNECT_S, READ_S = 3.0, 5.0
# How long the process waits, after its report, for pages still in flight.
WAIT_S = 8.0
# What a message carries at most: root causes listed, characters of evidence
# and of a command, characters in all (Slack's own limit is 40,000).
MAX_ROOTS = 5
MAX_EVIDENCE = 300
MAX_COMMAND = 500
MAX_TEXT = 3000

_HEAD = {
    OPEN: ":red_circle: *Incident opened*",
    ESCALATE: ":rotating_light: *ESCALATE*",
    RESOLVE: ":large_green_circle: *Incident resolved*",
}


def add_options(group: Any) -> None:
    group.addoption(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        help="incoming-webhook URL (Slack-compatible) paged when an incident opens, "
        "escalates and resolves, each once per incident; repeatable; adds to the stack "
        "file's [notify] urls. A secret: never printed",
    )
    group.addoption(
        "--escalate-after",
        type=float,
        default=None,
        metavar="MINUTES",
        help="minutes an incident may stay open before it escalates (default: the stack "
        "file's [notify] escalate_after_min, else 15, the runbook's)",
    )


def apply_options(config: pytest.Config, stack: Stack) -> Stack:
    """``stack`` with the command line's webhooks added and escalation time set."""
    urls: list[str] = list(config.getoption("notify", None) or [])
    after = config.getoption("escalate_after", None)
    for number, url in enumerate(urls, 1):
        problem = webhook_problem(url)
        if problem:  # never the URL itself: it is a secret
            raise pytest.UsageError(f"--notify URL number {number} {problem}")
    if after is not None and not (0 < after <= 1440):
        raise pytest.UsageError("--escalate-after must be more than 0 and at most 1440 minutes")
    if not urls and after is None:
        return stack
    merged = tuple(dict.fromkeys([*stack.notify.urls, *urls]))
    notify = dataclasses.replace(
        stack.notify,
        urls=merged,
        escalate_after_min=stack.notify.escalate_after_min if after is None else after,
    )
    return dataclasses.replace(stack, notify=notify)


def masked(url: str, number: int) -> str:
    """How a webhook is named in every output: its number, scheme and host, nothing secret."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return f"webhook #{number}"
    if ":" in host:
        host = f"[{host}]"
    return f"webhook #{number} ({parts.scheme}://{host}{port})"


def _escape(text: str) -> str:
    """Text for Slack's mrkdwn: its three control characters escaped, no terminal controls."""
    text = strip_controls(text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_fix(commands: Sequence[Sequence[str]]) -> str | None:
    """The first command that fixes (changes) something; else the first command."""
    for safety, command in commands:
        if safety != "read-only":
            return command
    return commands[0][1] if commands else None


def _duration(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def _latest_roots(incident: Incident) -> list[dict[str, Any]]:
    """The root causes of the incident's latest run that had any."""
    for entry in reversed(incident.runs):
        if entry.get("root_causes"):
            return list(entry["root_causes"])
    return []


def message(event: str, stack: Stack, incident: Incident, now: datetime) -> dict[str, Any]:
    """The incoming-webhook JSON of one page: Slack's ``text``, in its mrkdwn."""
    roots = _latest_roots(incident)
    where = f"stack `{_escape(stack.name)}` (compose project `{stack.compose_project}`)"
    age = _duration(incident.open_for(now))
    lines = [f"{_HEAD[event]} on {where}"]
    if event == OPEN:
        lines.append(f"First failing run {incident.opened_at:%Y-%m-%d %H:%M:%S %Z}.")
    elif event == ESCALATE:
        after = incident.escalate_after.total_seconds() / 60
        lines.append(f"Open for {age}, unresolved past {after:g} min: {ESCALATION}.")
    else:
        lines.append(
            f"Resolved after {age} ({incident.run_count} runs); complete the incident note "
            f"`{_escape(incident.note.rsplit('/', 1)[-1])}` "
            f"({POST_INCIDENT_STEP.link})."
        )
    if roots:
        was = "Root causes were" if event == RESOLVE else "Root causes"
        lines.append(f"{was} ({len(roots)}):")
    for root in roots[:MAX_ROOTS]:
        evidence = (root.get("evidence") or "").splitlines()
        head = f"• *{_escape(root['label'])}*"
        if evidence:
            head += f": {_escape(_cut(evidence[0], MAX_EVIDENCE))}"
        consequences = len(root.get("consequences") or [])
        if consequences:
            head += f" ({consequences} consequence{'' if consequences == 1 else 's'})"
        lines.append(head)
        fix = first_fix(root.get("commands") or [])
        if fix and event != RESOLVE:
            shown = _escape(_cut(fix, MAX_COMMAND)).replace("`", "'")
            lines.append(f"    fix: `{shown}`")
        if root.get("fix_link"):
            title = _escape(root.get("fix_title") or root["fix"] or "")
            lines.append(f"    runbook: {title}: {_escape(root['fix_link'])}")
    if len(roots) > MAX_ROOTS:
        lines.append(f"… and {len(roots) - MAX_ROOTS} more root causes (see the report)")
    text = _cut("\n".join(lines), MAX_TEXT)
    return {"text": text}


@dataclasses.dataclass
class Delivery:
    event: str
    stack: str
    to: str  # masked
    outcome: str | None = None  # None while in flight
    ok: bool = False
    shown: bool = False  # printed already


def _post(url: str, body: dict[str, Any]) -> tuple[bool, str]:
    import requests  # here: only a run that pages pays for it

    try:
        answer = requests.post(url, json=body, timeout=(CONNECT_S, READ_S), allow_redirects=False)
    except requests.Timeout:
        return False, f"no answer within {READ_S:g} s"
    except requests.RequestException as exc:
        # The exception's text quotes the URL: only its kind is said.
        return False, f"not delivered ({type(exc).__name__})"
    answer.close()
    if 200 <= answer.status_code < 300:
        return True, f"delivered (HTTP {answer.status_code})"
    return False, f"refused (HTTP {answer.status_code})"


class Notifier:
    """Posts pages in the background; remembers each one's outcome, never its URL."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def send(self, stack: Stack, incident: Incident, now: datetime) -> list[Delivery]:
        """Post ``incident.due``'s pages to every webhook of ``stack``; returns at once."""
        sent: list[Delivery] = []
        messages = [(event, message(event, stack, incident, now)) for event in incident.due]
        for number, url in enumerate(stack.notify.urls, 1):
            mine = [Delivery(event, stack.name, masked(url, number)) for event, _ in messages]
            sent += mine

            def work(url: str = url, mine: list[Delivery] = mine) -> None:
                # One thread per webhook: its pages go in order (open before escalate).
                for delivery, (_, body) in zip(mine, messages, strict=True):
                    try:
                        ok, outcome = _post(url, body)
                    except Exception as exc:  # a page must never crash the run
                        ok, outcome = False, f"not delivered ({type(exc).__name__})"
                    with self._lock:
                        delivery.ok, delivery.outcome = ok, outcome

            thread = threading.Thread(target=work, name="stackcheck-notify", daemon=True)
            thread.start()
            self._threads.append(thread)
        with self._lock:
            self.deliveries += sent
        self._threads = [t for t in self._threads if t.is_alive()]
        return sent

    def wait(self, seconds: float = WAIT_S) -> None:
        """Wait for the pages in flight, at most ``seconds`` in all."""
        deadline = time.monotonic() + seconds
        for thread in list(self._threads):
            thread.join(max(deadline - time.monotonic(), 0))

    def lines(self, only_new: bool = False) -> list[tuple[str, bool]]:
        """One (line, ok) per page: what was sent, to which webhook, and how it went."""
        found = []
        with self._lock:
            for d in self.deliveries:
                if only_new and (d.shown or d.outcome is None):
                    continue
                outcome = d.outcome or "still in flight"
                found.append((f"page '{d.event}' for {d.stack} to {d.to}: {outcome}", d.ok))
                if d.outcome is not None:
                    d.shown = True
        return found
