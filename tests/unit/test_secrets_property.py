"""Passwords of every printable character: no output of a run shows one, in any encoding.

Seeded random passwords (8-40 characters; across the cases every printable
ASCII character, and some beyond ASCII, in each of the three places a password
comes from) are put where a stack keeps them: a URL DSN (percent-encoded), a
key=value DSN (libpq quoting) and PGPASSWORD. The fabricated probes then hand
them back the way a careless server would (a PostgreSQL error quoting the DSN,
a health body, log lines, a HEALTHCHECK output), and excerpts cut them (a long
log line around its bad word, as the log probe shows it; a body's first 200
characters, as the HTTP check quotes it). The bench's facts redact nothing, so
everything here is caught by the plugin's and the reporter's own redaction. Every output is read back (terminal, JUnit, the summary JSON, the
metrics, the incident clock and note), as written and with its format's
escapes undone, and searched for each password whole (as is, percent-encoded,
JSON-, HTML- or backslash-escaped) and in part: any 8 consecutive characters of
it, in any of those spellings (an excerpt cut inside it).

Most cases run in-process; a few run pytest in a subprocess, one with xdist.
"""

from __future__ import annotations

import html
import json
import random
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from reportbench import CheckRun

from stackcheck.probes.docker_probe import LOG_EXCERPT_LEAD, LOG_LINE_CAP, _excerpt
from stackcheck.redact import redact_text

pytest_plugins = ("pytester",)

CASES = 50
SUBPROCESS = {7: (), 31: ("-n", "2")}  # case -> extra arguments; the rest run in-process
PRINTABLE = [chr(c) for c in range(0x20, 0x7F)]  # space to "~"
BEYOND_ASCII = list("éßü€пдм中文ąžŁ😀🔑")
WINDOW = 8  # this many consecutive characters of a password count as a leak
ROLES = ("url", "keyvalue", "env")


def _draw() -> dict[str, list[str]]:
    """For each role, CASES passwords that together hold every printable character."""
    rng = random.Random(20261128)
    drawn: dict[str, list[str]] = {}
    for role in ROLES:
        pool = PRINTABLE + BEYOND_ASCII
        rng.shuffle(pool)
        passwords = []
        for _ in range(CASES):
            size = rng.randint(8, 40)
            # The not yet used characters first, then any.
            take, pool = pool[:size], pool[size:]
            chars = take + [rng.choice(PRINTABLE + BEYOND_ASCII) for _ in range(size - len(take))]
            rng.shuffle(chars)
            passwords.append("".join(chars))
        drawn[role] = passwords
    return drawn


PASSWORDS = _draw()


def libpq_quoted(value: str) -> str:
    """A key=value DSN's quoted value: backslash before backslash and quote."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class Case:
    url: str  # the password of the URL DSN
    keyvalue: str  # of the key=value DSN
    env: str  # PGPASSWORD
    end_cut: int  # characters of ``url`` a long log line's excerpt keeps before its cut
    start_cut: int  # characters of ``keyvalue`` one keeps after its cut

    @property
    def passwords(self) -> dict[str, str]:
        return {"url": self.url, "keyvalue": self.keyvalue, "env": self.env}

    @property
    def dsn_url(self) -> str:
        return f"postgresql://scheduler:{quote(self.url, safe='')}@127.0.0.1:15432/scheduler"

    @property
    def dsn_keyvalue(self) -> str:
        return (
            f"host=127.0.0.1 port=15433 user=replica password={libpq_quoted(self.keyvalue)} "
            "dbname=scheduler"
        )

    def stack(self) -> dict[str, Any]:
        return {
            "name": "testbed",
            "compose_project": "tb",
            "services": {
                "db": {"postgres_dsn": self.dsn_url, "port": 5432},
                "replica": {"postgres_dsn": self.dsn_keyvalue, "port": 5432},
                "backend": {
                    "depends_on": ["db"],
                    "health_url": "http://127.0.0.1:18000/health",
                    "port": 8000,
                },
            },
        }

    def scenario(self) -> dict[str, dict[str, Any]]:
        """What careless probes hand back: each password, in each of its forms."""
        p, k, q = self.url, self.keyvalue, self.env
        auth = 'FATAL:  password authentication failed for user "scheduler"'
        return {
            "pg:db": {
                "ping": "no response",
                "error": f"connection to {self.dsn_url} failed: {auth} (password {p}; env {q})",
            },
            "pg:replica": {
                "error": f"connection with {self.dsn_keyvalue} failed: {auth} (tried {k})",
            },
            "container:db": {
                "health_status": "unhealthy",
                "health_output": f"pg_isready -d {self.dsn_url}: PGPASSWORD={q} {p}",
            },
            "http:backend": {
                "status": 503,
                # JSON escapes quotes, backslashes and anything beyond ASCII.
                "body": json.dumps({"status": "down", "pw": p, "db": self.dsn_url}),
            },
            "logs:backend": {
                "match_count": 4,
                "matches": [
                    f"ERROR: could not connect to {self.dsn_url}",
                    f"ERROR: conninfo {self.dsn_keyvalue} rejected",
                    f"FATAL: password was {p} then {k}",
                    f"ERROR env PGPASSWORD={q}",
                ],
            },
            "logs:replica": {"match_count": 1, "matches": [f"FATAL: {k} / {q} / {p}"]},
            # Long lines as the log probe shows them: cut around the bad word, the
            # cut inside a password.
            "logs:db": {"match_count": 2, "matches": [self.cut_at_end(), self.cut_at_start()]},
        }

    def cut_at_end(self) -> str:
        head = "ERROR: login with "
        pad = "-" * (LOG_LINE_CAP - self.end_cut - len(head))
        line = head + pad + self.url + " " + "z" * 300
        excerpt = _excerpt(line, 0)
        assert excerpt.startswith(head) and self.url[: self.end_cut] + " … [" in excerpt
        return excerpt

    def cut_at_start(self) -> str:
        # The excerpt starts LOG_EXCERPT_LEAD characters before the bad word.
        gap = LOG_EXCERPT_LEAD - self.start_cut
        line = "y" * 300 + " " + self.keyvalue + "-" * gap + "ERROR: refused " + "w" * 300
        excerpt = _excerpt(line, line.index("ERROR"))
        assert "] … " + self.keyvalue[-self.start_cut :] + "-" * gap + "ERROR" in excerpt
        return excerpt


def case(number: int) -> Case:
    rng = random.Random(number)
    url, keyvalue, env = (PASSWORDS[role][number] for role in ROLES)
    return Case(
        url,
        keyvalue,
        env,
        end_cut=rng.randint(1, len(url) - 1),
        start_cut=rng.randint(1, len(keyvalue) - 1),
    )


def test_the_passwords_hold_every_printable_character() -> None:
    for role in ROLES:
        used = set("".join(PASSWORDS[role]))
        assert set(PRINTABLE) <= used, role
        assert used & set(BEYOND_ASCII), role
        assert all(8 <= len(p) <= 40 for p in PASSWORDS[role]), role


def spellings(text: str) -> set[str]:
    """``text`` as an output may spell it: each spelling encodes character by character."""
    return {
        text,
        quote(text, safe=""),
        quote(text),
        quote_plus(text),
        json.dumps(text)[1:-1],
        json.dumps(text, ensure_ascii=False)[1:-1],
        libpq_quoted(text)[1:-1],
        html.escape(text),
        html.escape(text, quote=False),
    }


def forms(password: str) -> set[str]:
    """The ways a password can be written out whole."""
    return spellings(password) | {" ".join(password.split())}  # as an excerpt collapses it


def views(name: str, text: str) -> list[str]:
    """An output as written, and with the escapes of its format undone."""
    found = [text]
    if name.endswith(".json"):
        strings: list[str] = []

        def collect(value: Any) -> None:
            if isinstance(value, str):
                strings.append(value)
            elif isinstance(value, dict):
                for k, v in value.items():
                    collect(k)
                    collect(v)
            elif isinstance(value, list):
                for v in value:
                    collect(v)

        collect(json.loads(text))
        found.append("\n".join(strings))
    if name.endswith((".xml", ".md")):
        found.append(html.unescape(text))
    if name.endswith((".prom", ".md")) or name in ("stdout", "stderr"):
        found.append(re.sub(r"\\(.)", r"\1", text))  # Prometheus labels, Markdown, repr()
    return found


def pieces(password: str) -> set[str]:
    """Any WINDOW consecutive characters of a password, in any spelling: a part that
    an excerpt cut out of it would reveal."""
    return {
        form
        for at in range(len(password) - WINDOW + 1)
        for form in spellings(password[at : at + WINDOW])
    }


def leaks(outputs: dict[str, str], passwords: dict[str, str]) -> list[str]:
    found = []
    looked_for = {role: (forms(p), pieces(p)) for role, p in passwords.items()}
    for name, text in outputs.items():
        for seen in views(name, text):
            for role, (whole, parts) in looked_for.items():
                for form in whole:
                    if form in seen:
                        found.append(f"{name}: the {role} password as {form!r}")
                for part in parts:
                    if part in seen:
                        at = seen.index(part)
                        around = seen[max(0, at - 60) : at + 60]
                        found.append(f"{name}: {part!r} of the {role} password in {around!r}")
    return found


def run_case(checkrun: CheckRun, monkeypatch: pytest.MonkeyPatch, number: int) -> dict[str, str]:
    """Run the checks on case ``number``; every output by name."""
    this = case(number)
    monkeypatch.setenv("PGPASSWORD", this.env)
    checkrun.scenario(this.scenario(), stacks=[this.stack()])
    # The bench writes TOML through json.dumps, which cannot spell characters
    # beyond the BMP for TOML; write the stack file with them as they are.
    checkrun.path.joinpath("testbed.toml").write_text(stack_toml(this.stack()), encoding="utf-8")
    extra = SUBPROCESS.get(number)
    result = checkrun.run(
        "-rA",
        "-l",  # locals in tracebacks
        "--junitxml=junit.xml",
        "-o",
        "junit_logging=all",
        "--summary-json=all.json",
        *(extra or ()),
        subprocess=extra is not None,
    )
    outputs = {
        "stdout": result.stdout.str(),
        "stderr": result.stderr.str(),
        "junit.xml": (checkrun.path / "junit.xml").read_text(encoding="utf-8"),
        "all.json": (checkrun.path / "all.json").read_text(encoding="utf-8"),
    }
    outputs.update({p.name: p.read_text(encoding="utf-8") for p in checkrun.reports.iterdir()})
    return outputs


def stack_toml(spec: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string

    lines = ["[stack]", f"name = {value(spec['name'])}"]
    lines.append(f"compose_project = {value(spec['compose_project'])}")
    for name, service in spec["services"].items():
        lines.append(f"[services.{name}]")
        lines += [f"{k} = {value(v)}" for k, v in service.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("number", range(CASES))
def test_no_output_shows_a_password(
    checkrun: CheckRun, monkeypatch: pytest.MonkeyPatch, number: int
) -> None:
    outputs = run_case(checkrun, monkeypatch, number)
    # Every output was written: the run failed, so an incident was opened.
    assert {
        "summary-testbed.json",
        "stackcheck-testbed.prom",
        "incident-testbed.json",
    } <= set(outputs)
    assert any(re.fullmatch(r"incident-testbed-.*\.md", name) for name in outputs)
    found = leaks(outputs, case(number).passwords)
    assert not found, "\n".join(found)
    # The leaks were there to hide: the text around them reached the outputs.
    summary = json.loads(outputs["summary-testbed.json"])
    evidence = {c["key"]: c.get("evidence") or "" for c in summary["checks"]}
    assert "password authentication failed" in evidence["replica:pg_connections"]
    assert "FATAL: password was" in evidence["backend:logs_clean"]
    assert "pg_isready -d postgresql://scheduler:" in evidence["db:container_healthy"]
    assert '"status": "down"' in evidence["backend:http_health"]
    assert "password authentication failed" in outputs["stdout"]
    assert "password authentication failed" in outputs["junit.xml"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A health body's JSON escapes the quote, the backslash and the "é".
        ('{"pw": "a\\"b\\\\c\\u00e9d-123"}', '{"pw": "******"}'),
        ('{"pw": "a\\"b\\\\céd-123"}', '{"pw": "******"}'),
        # Percent-encoded in a URL, libpq-quoted in a conninfo, HTML-escaped.
        ("u:a%22b%5Cc%C3%A9d-123@h", "u:******@h"),
        ("password='a\"b\\\\céd-123'", "password='******'"),
        ("<td>a&quot;b\\céd-123</td>", "<td>******</td>"),
        # An excerpt cut inside it, whatever the spelling.
        ('body: {"pw": "a\\"b\\\\c', 'body: {"pw": "******'),
        ("GET x: postgresql://u:a%22b%5Cc", "GET x: postgresql://u:******"),
        # Cut by the log probe around a bad word: before and after its markers.
        ('ERROR a"b\\cé … [truncated 9 chars]', "ERROR ****** … [truncated 9 chars]"),
        ("[truncated 5 chars] … éd-123 ERROR", "[truncated 5 chars] … ****** ERROR"),
        # Three characters tell next to nothing; a text is not masked for them.
        ('ends with a"b', 'ends with a"b'),
    ],
)
def test_a_known_password_is_masked_in_every_spelling_and_cut_short(
    text: str, expected: str
) -> None:
    assert redact_text(text, ['a"b\\céd-123']) == expected
