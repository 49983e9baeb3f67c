"""python -m testbed up|down|reset|status|inject FAULT|stack-file PATH"""

from __future__ import annotations

import argparse
import sys
import time
from typing import NoReturn

from testbed.stack import DEFAULT_PROJECT, FAULTS, Testbed, TestbedError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage block
        self.exit(2, f"testbed: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m testbed", description=__doc__)
    parser.add_argument("--project", default=DEFAULT_PROJECT, help="compose project name")
    parser.add_argument("--backend-port", type=int, default=18000, help="backend port on 127.0.0.1")
    parser.add_argument("--db-port", type=int, default=15432, help="PostgreSQL port on 127.0.0.1")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("up", help="build/reuse images, start, wait until healthy")
    commands.add_parser("down", help="remove the project's containers, network, volumes")
    commands.add_parser("reset", help="undo every fault, wait until healthy")
    commands.add_parser("status", help="per service: status, restarts, signs of faults")
    inject = commands.add_parser("inject", help="switch on one fault")
    inject.add_argument("fault", metavar="FAULT", help=", ".join(FAULTS))
    stack_file = commands.add_parser("stack-file", help="write a stack file for the checks")
    stack_file.add_argument("path", metavar="PATH")
    for sub in commands.choices.values():
        sub.error = parser.error  # type: ignore[method-assign]
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.monotonic()
    try:
        bed = Testbed(project=args.project, backend_port=args.backend_port, db_port=args.db_port)
        if args.command == "up":
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
        print(f"testbed: {args.command} done in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
