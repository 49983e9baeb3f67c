"""python -m testbed [--no-db-port] up|down|reset|status|inject FAULT|stack-file PATH|remote up|down|status
|fleet up|down N [DIR]

With --remote NAME every command acts on the testbed inside that remote test
host (python -m testbed remote up makes one; see testbed/remote.py). With
--no-db-port PostgreSQL's port is published nowhere, and stack-file writes the
stack file that checks it from inside its container."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import NoReturn

from testbed import fleet
from testbed.remote import (
    DEFAULT_NAME,
    DEFAULT_SSH_PORT,
    RemoteHost,
    RemoteTestbed,
    remote_down,
    remote_up,
)
from testbed.stack import ALL_FAULTS, CHANGES, DEFAULT_PROJECT, Testbed, TestbedError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage block
        self.exit(2, f"testbed: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m testbed", description=__doc__)
    parser.add_argument("--project", default=DEFAULT_PROJECT, help="compose project name")
    parser.add_argument("--backend-port", type=int, default=18000, help="backend port on 127.0.0.1")
    parser.add_argument("--db-port", type=int, default=15432, help="PostgreSQL port on 127.0.0.1")
    parser.add_argument(
        "--remote",
        metavar="NAME",
        help=f"act on the testbed inside remote test host NAME (remote: default {DEFAULT_NAME})",
    )
    parser.add_argument(
        "--ssh-port",
        type=int,
        default=DEFAULT_SSH_PORT,
        help="the remote test host's SSH port on 127.0.0.1",
    )
    parser.add_argument(
        "--no-db-port",
        action="store_true",
        help="publish PostgreSQL's port nowhere (its stack file then checks from inside)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("up", help="build/reuse images, start, wait until healthy")
    commands.add_parser("down", help="remove the project's containers, network, volumes")
    commands.add_parser("reset", help="undo every fault, wait until healthy")
    commands.add_parser("status", help="per service: status, restarts, signs of faults")
    inject = commands.add_parser("inject", help="switch on one fault (or change)")
    inject.add_argument(
        "fault",
        metavar="FAULT",
        help=f"faults: {', '.join(ALL_FAULTS)}; changes (the stack stays healthy): "
        f"{', '.join(CHANGES)}",
    )
    stack_file = commands.add_parser("stack-file", help="write a stack file for the checks")
    stack_file.add_argument("path", metavar="PATH")
    remote = commands.add_parser(
        "remote",
        help="a remote test host (Docker in Docker, reached by SSH) with the testbed inside",
    )
    remote.add_argument(
        "action",
        choices=("up", "down", "status"),
        help="up: host + stack + stack file; down: remove both; status",
    )
    remote.add_argument("--volumes", action="store_true", help="down: also drop its images")
    many = commands.add_parser(
        "fleet",
        help=f"N testbed copies: projects {fleet.PREFIX}01.., backend on "
        f"{fleet.BACKEND_BASE}+i, db on {fleet.DB_BASE}+i",
    )
    many.add_argument("action", choices=("up", "down"))
    many.add_argument("count", type=int, metavar="N")
    many.add_argument("dir", nargs="?", metavar="DIR", help="up: write a stack file per copy here")
    many.add_argument("--prefix", default=fleet.PREFIX, help="project name prefix")
    many.add_argument("--backend-base", type=int, default=fleet.BACKEND_BASE)
    many.add_argument("--db-base", type=int, default=fleet.DB_BASE)
    for sub in commands.choices.values():
        sub.error = parser.error  # type: ignore[method-assign]
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.monotonic()
    try:
        if args.command == "fleet":
            beds = fleet.beds(args.count, args.prefix, args.backend_base, args.db_base)
            if args.action == "up":
                for path in fleet.up(beds, Path(args.dir) if args.dir else None):
                    print(path)
            else:
                fleet.down(beds)
            print(
                f"testbed: fleet {args.action} done in {time.monotonic() - started:.1f}s",
                file=sys.stderr,
            )
            return 0
        ports = {"backend_port": args.backend_port, "db_port": args.db_port}
        publish = {"publish_db": not args.no_db_port}
        if args.command == "remote" or args.remote:
            host = RemoteHost(args.remote or DEFAULT_NAME, args.ssh_port)
            bed: Testbed = RemoteTestbed(host, project=args.project, **ports, **publish)
        else:
            bed = Testbed(project=args.project, **ports, **publish)
        if args.command == "remote":
            assert isinstance(bed, RemoteTestbed)
            if args.action == "up":
                print(remote_up(bed.host, bed))
            elif args.action == "down":
                remote_down(bed.host, bed, volumes=args.volumes)
            else:
                for key, value in bed.host.status().items():
                    print(f"{key}: {value}")
        elif args.command == "up":
            bed.up()
        elif args.command == "down":
            bed.down()
        elif args.command == "reset":
            bed.reset()
        elif args.command == "inject":
            bed.inject(args.fault)
        elif args.command == "stack-file":
            print(bed.write_stack_file(args.path))
        elif args.command == "status":
            summary = bed.status()
            for service, info in summary.items():
                if service == "health":
                    print(f"GET {bed.health_url}: {info}")
                    continue
                if service == "remote host":
                    print(f"remote host: {', '.join(f'{k}: {v}' for k, v in info.items())}")
                    continue
                dirt = ", ".join(info.get("dirt") or []) or "clean"
                print(
                    f"{service}: {info['status']} id={info.get('id', '-')}"
                    f" restarts={info.get('restarts', '-')} ({dirt})"
                )
            return 0
    except TestbedError as exc:
        print(f"testbed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("testbed: interrupted", file=sys.stderr)
        return 130
    if args.command != "stack-file":
        if args.command == "remote":
            args.command = f"remote {args.action}"
        print(f"testbed: {args.command} done in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
