"""`python -m usernet.testing.drill SCRIPT.pkt|DIR...`: run packetdrill scripts against usernet.

A folder stands for every `.pkt` below it, so a suite written for Linux (kept outside the
repository) reruns with one command; `--summary` then counts the results per folder, the
first line of each failure beside it.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from usernet.testing.drill.lexer import DrillSyntaxError
from usernet.testing.drill.packets import DrillError
from usernet.testing.drill.profile import PROFILES
from usernet.testing.drill.runner import DrillFailure, run_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="usernet drill", description="Run packetdrill scripts against usernet's TCP on a virtual clock."
    )
    parser.add_argument("scripts", nargs="+", metavar="SCRIPT.pkt|DIR", help="scripts, or folders of them")
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
    parser.add_argument("--summary", action="store_true", help="a table per folder: scripts tried, passed, failures")
    args = parser.parse_args(argv)
    overrides = {
        name: value
        for name in ("tolerance_usecs", "local_isn", "remote_isn")
        if (value := getattr(args, name)) is not None
    }
    defines = dict(item.split("=", 1) for item in args.define)
    failed = 0
    outcomes: dict[Path, list[str | None]] = defaultdict(list)  # per folder: None (passed) or the failure
    for path in _scripts(args.scripts):
        try:
            result = run_file(path, PROFILES[args.profile], overrides, defines)
        except (DrillFailure, DrillError, DrillSyntaxError) as exc:
            failed += 1
            text = str(exc) if isinstance(exc, DrillFailure) else f"{path}: {exc}"
            print(f"FAIL {text}", file=sys.stderr)
            outcomes[path.parent].append(f"{path.name}: {text.splitlines()[0].removeprefix(str(path) + ':')}")
            continue
        outcomes[path.parent].append(None)
        print(f"ok   {path} ({result.events} events, {len(result.skipped)} skipped)")
        if args.verbose:
            for item in result.applied:
                print(f"     applied {item}")
            for item in result.skipped:
                print(f"     skipped {item}")
    if args.summary:
        _print_summary(outcomes)
    return 1 if failed else 0


def _scripts(args: list[str]) -> list[Path]:
    """The scripts named, a folder standing for every `.pkt` below it, in name order."""
    out: list[Path] = []
    for arg in args:
        path = Path(arg)
        out.extend(sorted(path.rglob("*.pkt")) if path.is_dir() else [path])
    return out


def _print_summary(outcomes: dict[Path, list[str | None]]) -> None:
    print("\n| folder | scripts | passed | failures |\n|---|---:|---:|---|")
    for folder, results in sorted(outcomes.items()):
        failures = "; ".join(r for r in results if r is not None)
        print(f"| {folder.name} | {len(results)} | {results.count(None)} | {failures} |")


if __name__ == "__main__":
    sys.exit(main())
