"""`python -m usernet.testing.drill SCRIPT.pkt...`: run packetdrill scripts against usernet."""

from __future__ import annotations

import argparse
import sys

from usernet.testing.drill.lexer import DrillSyntaxError
from usernet.testing.drill.packets import DrillError
from usernet.testing.drill.profile import PROFILES
from usernet.testing.drill.runner import DrillFailure, run_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="usernet drill", description="Run packetdrill scripts against usernet's TCP on a virtual clock."
    )
    parser.add_argument("scripts", nargs="+", metavar="SCRIPT.pkt")
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="usernet",
        help="defaults of the stack under test (linux: what Linux scripts assume)",
    )
    parser.add_argument("--tolerance_usecs", help="timing tolerance (default 4000, or the script's)")
    parser.add_argument("--local_isn", help="the stack's ISN (e.g. 4294967000 to test wrap-around)")
    parser.add_argument("--remote_isn", help="added to the script's own sequence numbers on the wire")
    parser.add_argument("-D", "--define", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("-v", "--verbose", action="store_true", help="list what was applied and skipped")
    args = parser.parse_args(argv)
    overrides = {
        name: value
        for name in ("tolerance_usecs", "local_isn", "remote_isn")
        if (value := getattr(args, name)) is not None
    }
    defines = dict(item.split("=", 1) for item in args.define)
    failed = 0
    for path in args.scripts:
        try:
            result = run_file(path, PROFILES[args.profile], overrides, defines)
        except (DrillFailure, DrillError, DrillSyntaxError) as exc:
            failed += 1
            print(f"FAIL {exc}" if isinstance(exc, DrillFailure) else f"FAIL {path}: {exc}", file=sys.stderr)
            continue
        print(f"ok   {path} ({result.events} events, {len(result.skipped)} skipped)")
        if args.verbose:
            for item in result.applied:
                print(f"     applied {item}")
            for item in result.skipped:
                print(f"     skipped {item}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
