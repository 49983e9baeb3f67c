"""The ``stackcheck`` command: what is not a check run.

``stackcheck init`` writes a stack file from a compose file; ``stackcheck
rules`` writes Prometheus alerting rules for the suite's metrics. The checks
themselves run with ``pytest checks/``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from stackcheck.runbook import ESCALATE_AFTER_MIN

USAGE_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stackcheck",
        description="Helpers around the health checks (the checks run with `pytest checks/`).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init = commands.add_parser(
        "init",
        help="write a stack file from a compose file",
        description="Write a stack file from a compose file (resolved with `docker compose "
        "config` where a compose client can), with a comment on every guessed value.",
    )
    init.add_argument(
        "-f",
        "--file",
        type=Path,
        help="the compose file (default: compose.yaml, compose.yml, docker-compose.yaml or "
        "docker-compose.yml in the current directory)",
    )
    init.add_argument("-p", "--project-name", help="the compose project (default: compose's)")
    init.add_argument(
        "-o",
        "--output",
        default="stack.toml",
        help="where to write the stack file; '-' for standard output (default: stack.toml)",
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing stack file")
    rules = commands.add_parser(
        "rules",
        help="write Prometheus alerting rules for the suite's metrics",
        description="Write Prometheus alerting rules over the textfile metrics, each alert "
        "with a runbook_url annotation pointing at the runbook step.",
    )
    rules.add_argument(
        "--runbook-url",
        required=True,
        help="where your copy of docs/runbook.md is served, e.g. "
        "https://git.example.org/ops/stackcheck/-/blob/main/docs/runbook.md",
    )
    rules.add_argument(
        "--escalate-after-min",
        type=float,
        default=ESCALATE_AFTER_MIN,
        help=f"page when an incident is open this long (default: the runbook's "
        f"{ESCALATE_AFTER_MIN})",
    )
    rules.add_argument(
        "--run-every-s",
        type=float,
        default=300,
        help="how often the scheduled job runs; 3 missed runs alert (default: 300)",
    )
    rules.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "init":
            return _init(args)
        return _rules(args)
    except _Failed as exc:
        sys.stderr.write(f"stackcheck {args.command}: {exc}\n")
        return USAGE_ERROR


class _Failed(Exception):
    pass


def _init(args: argparse.Namespace) -> int:
    from stackcheck import stackfile

    try:
        compose = args.file or stackfile.find_compose_file(Path.cwd())
        text = stackfile.generate(compose, args.project_name)
        if args.output == "-":
            stackfile.validate(text)
            sys.stdout.write(text)
        else:
            stackfile.write(text, Path(args.output), args.force)
            sys.stderr.write(f"stackcheck init: wrote {args.output} from {compose}\n")
    except stackfile.InitError as exc:
        raise _Failed(str(exc)) from None
    return 0


def _rules(args: argparse.Namespace) -> int:
    from stackcheck import alert_rules

    url = args.runbook_url
    if not url.startswith(("https://", "http://")) or any(c.isspace() for c in url):
        raise _Failed(f"--runbook-url must be an http(s) URL without spaces, got {url[:80]!r}")
    if not 0 < args.escalate_after_min <= 24 * 60 or not 0 < args.run_every_s <= 86400:
        raise _Failed("--escalate-after-min must be 0 to 1440 and --run-every-s 0 to 86400")
    text = alert_rules.render(url, args.escalate_after_min, args.run_every_s)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _Failed(f"cannot write {args.output}: {exc.strerror or exc}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
