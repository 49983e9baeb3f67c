"""The redaction backstop: passwords nobody told us about, masked by their look.

Each case names the pattern it depends on; removing that pattern from
stackcheck/redact.py turns at least one of them red (see the ids).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from stackcheck import redact as redact_module
from stackcheck.redact import MASK, redact, redact_text

M = MASK

MASKED = {
    # _KEY_VALUE: an env-style NAME holding one of the secret words, = or :
    "env-postgres": ("POSTGRES_PASSWORD=hunter2", f"POSTGRES_PASSWORD={M}"),
    "env-db": ("DB_PASSWORD=x", f"DB_PASSWORD={M}"),
    "env-yaml-colon": ("MYSQL_ROOT_PASSWORD: x", f"MYSQL_ROOT_PASSWORD: {M}"),
    "env-api-token": ("API_TOKEN=abc.def-1", f"API_TOKEN={M}"),
    "env-secret-key": ("SECRET_KEY=django-insecure-x", f"SECRET_KEY={M}"),
    "env-aws": (
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
        f"AWS_SECRET_ACCESS_KEY={M}",
    ),
    "env-passwd": ("MY_PASSWD=x", f"MY_PASSWD={M}"),
    "env-pwd": ("REDIS_PWD=x", f"REDIS_PWD={M}"),
    "env-apikey": ("STRIPE_APIKEY=sk_live_x", f"STRIPE_APIKEY={M}"),
    "env-api-key": ("api-key = x", f"api-key = {M}"),
    "env-access-key": ("S3_ACCESS_KEY=AKIA1", f"S3_ACCESS_KEY={M}"),
    "env-private-key": ("JWT_PRIVATE_KEY=abc", f"JWT_PRIVATE_KEY={M}"),
    "env-lowercase": ("pgpassword=x", f"pgpassword={M}"),
    "env-quoted-value": ('DB_PASSWORD="a b"', f'DB_PASSWORD="{M}"'),
    "env-in-compose-list": (
        'environment: ["POSTGRES_PASSWORD=x", "B=1"]',
        f'environment: ["POSTGRES_PASSWORD={M}", "B=1"]',
    ),
    "env-unclosed-quote": ('DB_PASSWORD="abc', f"DB_PASSWORD={M}"),
    # _KEY_VALUE: JSON, YAML and Python-repr keys
    "json": ('{"password": "x", "user": "u"}', f'{{"password": "{M}", "user": "u"}}'),
    "json-compact": ('{"db_password":"x","host":"h"}', f'{{"db_password":"{M}","host":"h"}}'),
    "json-escaped-quote": ('{"password": "a\\"b", "n": 1}', f'{{"password": "{M}", "n": 1}}'),
    "python-repr": ("{'password': 'x', 'user': 'u'}", f"{{'password': '{M}', 'user': 'u'}}"),
    "yaml": ("password: x", f"password: {M}"),
    "yaml-indented": ("  db_password: x  # old", f"  db_password: {M}  # old"),
    # _KEY_VALUE: query strings and libpq conninfo
    "query-token": ("GET /x?token=abc&x=1", f"GET /x?token={M}&x=1"),
    "libpq": ("host=h password=x dbname=d", f"host=h password={M} dbname=d"),
    "libpq-quoted": ("host=h password='a b' dbname=d", f"host=h password='{M}' dbname=d"),
    "libpq-spaces": ("password = x", f"password = {M}"),
    # _AUTH_SCHEME
    "auth-bearer-header": ("Authorization: Bearer abc.def", f"Authorization: Bearer {M}"),
    "auth-bearer": ("Bearer abc", f"Bearer {M}"),
    "auth-basic": ("Basic dXNlcjpwdw==", f"Basic {M}"),
    "auth-lowercase": ("authorization: bearer abc", f"authorization: bearer {M}"),
    # _AUTH_SCHEME runs before _KEY_VALUE, or only the word "Bearer" would go.
    "auth-under-key": ("token: Bearer abc", f"token: {M} {M}"),
    # _URL_PASSWORD
    "url-redis-no-user": ("redis://:pw@host", f"redis://:{M}@host"),
    "url-empty-user": ("http://:TOKEN@host/x", f"http://:{M}@host/x"),
    "url-at-in-password": ("http://admin:p@ssW0rd@host/x", f"http://admin:{M}@host/x"),
    "url-postgresql": ("postgresql://u:pw@h/db", f"postgresql://u:{M}@h/db"),
    "url-port": ("postgresql://u:pw@h:5432", f"postgresql://u:{M}@h:5432"),
    "url-in-env": (
        "DATABASE_URL=postgresql://u:pw@db/app?sslmode=off",
        f"DATABASE_URL=postgresql://u:{M}@db/app?sslmode=off",
    ),
    "url-compact-json": (
        '{"url":"http://u:p@h","mail":"a@b"}',
        f'{{"url":"http://u:{M}@h","mail":"a@b"}}',
    ),
    "url-secret-word-user": ("redis://token:abc@host:6379", f"redis://token:{M}@host:6379"),
}

UNTOUCHED = [
    "password authentication failed for user scheduler",
    'FATAL:  password authentication failed for user "scheduler"',
    "no password supplied",
    "fe_sendauth: no password supplied",
    "connection to server at 127.0.0.1 failed",
    "http://localhost:8000/health",
    "GET http://127.0.0.1:18000/health answered 503",
    "max_connections=30",
    "backend->token-svc:net_resolve",  # a label: "name:" without a space is no key
    "user@example.com wrote: hi",
    "2026-11-28T02:34:45Z ERROR: x",
    "nonbasic settings apply",  # a word ending in basic or bearer is no auth scheme
]


@pytest.mark.parametrize(("text", "expected"), MASKED.values(), ids=MASKED.keys())
def test_masks_the_value_and_keeps_the_key(text: str, expected: str) -> None:
    assert redact_text(text, []) == expected


@pytest.mark.parametrize("text", UNTOUCHED)
def test_leaves_ordinary_text_alone(text: str) -> None:
    assert redact_text(text, []) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DB_PASSWORD=x other words", f"DB_PASSWORD={M} other words"),
        ("password: x\nnext line", f"password: {M}\nnext line"),
        # A quote left open does not run on into the next line's value.
        ('DB_PASSWORD="abc\nHOST="h"', f'DB_PASSWORD={M}\nHOST="h"'),
        ("Bearer abc, then more", f"Bearer {M}, then more"),
        ("see redis://:pw@host and more", f"see redis://:{M}@host and more"),
    ],
)
def test_does_not_eat_the_text_after_the_value(text: str, expected: str) -> None:
    assert redact_text(text, []) == expected


def test_known_secrets_go_literally_and_structures_are_walked() -> None:
    assert redact_text("token s3cr3t leaked", ["s3cr3t", ""]) == f"token {M} leaked"
    assert redact({"a": ["x s3cr3t", ("password=y",)], "n": 1}, ["s3cr3t"]) == {
        "a": [f"x {M}", [f"password={M}"]],
        "n": 1,
    }


# Hostile shapes, 200,000 characters each. The regex the backstop used before
# ("[a-z][a-z0-9+.-]*://") took over a minute on "letters", "bearer-run" and
# "scheme-run"; every pattern now finishes them in about 0.05 s.
SIZE = 200_000
HOSTILE = {
    "letters": "a",
    "a-colon": "a:",
    "a-at": "a@",
    "password-eq": "password=",
    "password-colon-space": "password: ",
    "scheme-sep": "://",
    "scheme-run": "a://",
    "url-no-host": "x://a:b",
    "spaces": " ",
    "tabs-after-bearer": "\t",
    "bearer-run": "Bearer",
    "bearer-words": "Bearer ",
    "secret-name-run": "PASSWORD_",
    "quotes": '"',
    "quoted-keys": '"a',
    "escapes": '\\"',
}

# A timing ratio (n against 4n) is the textbook check, but on a loaded 2-core
# machine two 10 ms measurements vary by 10x on their own, so it would flake.
# The absolute gap is what is robust: linear is ~0.05 s here, the quadratic
# patterns this guards against take over a minute, so a hard limit of 10 s in a
# subprocess (which the timeout kills, so a regression cannot hang the suite)
# fails on a regression only. The subprocess loads redact.py by path: it needs
# nothing but the standard library.
LIMIT_S = 10
RUNNER = textwrap.dedent(
    """
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("redact_under_test", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    size, unit, prefix = int(sys.argv[2]), sys.argv[3], sys.argv[4]
    text = prefix + unit * (size // len(unit))
    module.redact_text(text, ["canary"])
    """
)


@pytest.mark.parametrize("unit", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_is_redacted_in_linear_time(unit: str) -> None:
    prefix = "Bearer " if unit == "\t" else ""
    path = redact_module.__file__
    assert path is not None
    try:
        done = subprocess.run(
            [sys.executable, "-c", RUNNER, path, str(SIZE), unit, prefix],
            capture_output=True,
            text=True,
            timeout=LIMIT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"redacting {SIZE} characters of {unit!r} took over {LIMIT_S} s")
    assert done.returncode == 0, done.stderr
