"""`python -m benchmarks [--quick] [--repeats N] [--only NAME,...] [--out DIR]`: usernet against the kernel, in one run.

Writes DIR/latest.md (medians, min–max, ratios to the kernel column) and DIR/latest.png.
Needs root: every benchmark that touches a network builds its own namespaces.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from benchmarks.harness import Settings
from benchmarks.report import write_markdown, write_plot
from benchmarks.runner import discover, run_all, select

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 short repetitions per figure (well under 2 minutes)")
    parser.add_argument(
        "--repeats", type=int, help="repetitions per figure instead of the mode's (1 proves the harness runs)"
    )
    parser.add_argument("--only", help="comma-separated benchmark names (see --list)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"where latest.md and latest.png go (default {RESULTS})"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and their variants, then exit")
    options = parser.parse_args(argv)

    benchmarks = discover()
    if options.list:
        for b in benchmarks:
            print(f"{b.name:<16} {b.title}")
            for v in b.variants:
                print(f"{'':<18}{v.label}")
        return 0
    try:
        chosen = select(benchmarks, options.only.split(",") if options.only else None, options.quick)
    except ValueError as exc:
        parser.error(str(exc))
    settings = Settings.for_mode(options.quick)
    if options.repeats is not None:
        if options.repeats < 1:
            parser.error("--repeats must be at least 1")
        settings = dataclasses.replace(settings, repeats=options.repeats)
    try:
        outcomes = run_all(chosen, settings)
    except KeyboardInterrupt:
        print("interrupted: sandboxes removed, nothing written", file=sys.stderr)
        return 130
    options.out.mkdir(parents=True, exist_ok=True)
    markdown = write_markdown(outcomes, settings, options.out / "latest.md")
    print(markdown)
    print(write_plot(outcomes, options.out / "latest.png"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
