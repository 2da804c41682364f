"""Runs the registered benchmarks side by side and collects their repetitions.

For one benchmark, every runnable variant's world is built first (all its sandboxes and
servers at once, idle while not measured), then the repetitions go round-robin over
cases and variants: slow drift on a noisy machine spreads over all columns instead of
landing on whichever ran last. A variant that fails is reported as failed and the run
goes on; Ctrl-C stops the run and every sandbox is torn down on the way out.
"""

from __future__ import annotations

import importlib
import pkgutil
import statistics
import sys
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field

from benchmarks import suite
from benchmarks.harness import Benchmark, Measure, Settings

Log = Callable[[str], None]


@dataclass(frozen=True)
class Summary:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Summary:
        return cls(statistics.median(values), min(values), max(values))


@dataclass
class Outcome:
    """What one benchmark produced: per (variant, case) the values of each metric, per variant any status."""

    benchmark: Benchmark
    samples: dict[tuple[str, str], dict[str, list[float]]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)

    def summary(self, variant: str, case: str, metric: str) -> Summary | None:
        values = self.samples.get((variant, case), {}).get(metric)
        return Summary.of(values) if values else None


def discover() -> list[Benchmark]:
    """Every benchmark declared by a module of `benchmarks.suite`, in their declared order."""
    found: list[Benchmark] = []
    for info in pkgutil.iter_modules(suite.__path__):
        module = importlib.import_module(f"{suite.__name__}.{info.name}")
        found.extend(getattr(module, "BENCHMARKS", ()))
    names = [b.name for b in found]
    if len(set(names)) != len(names):
        raise ValueError(f"benchmark names repeat: {sorted(names)}")
    return sorted(found, key=lambda b: (b.order, b.name))


def select(benchmarks: list[Benchmark], only: Iterable[str] | None, quick: bool = False) -> list[Benchmark]:
    """The benchmarks to run: those named, or all (less the full-only ones in quick mode)."""
    if only is None:
        return [b for b in benchmarks if not (quick and b.full_only)]
    wanted = list(only)
    known = {b.name for b in benchmarks}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [b for b in benchmarks if b.name in wanted]


def _why(exc: BaseException) -> str:
    return f"failed: {' '.join(str(exc).split()) or type(exc).__name__}"


def run_benchmark(benchmark: Benchmark, settings: Settings, log: Log) -> Outcome:
    outcome = Outcome(benchmark)
    with ExitStack() as stack:
        measures: dict[str, Measure] = {}
        for v in benchmark.variants:
            try:
                measures[v.key] = stack.enter_context(v.setup(settings))
            except Exception as exc:
                outcome.status[v.key] = _why(exc)
                log(f"{benchmark.name} / {v.label}: {outcome.status[v.key]}")
        for repeat in range(1, settings.repeats + 1):
            for case in benchmark.cases:
                for key, measure in measures.items():
                    if key in outcome.status:
                        continue
                    try:
                        values = measure(case)
                    except Exception as exc:
                        outcome.status[key] = _why(exc)
                        log(f"{benchmark.name} / {key}: {outcome.status[key]}")
                        continue
                    cell = outcome.samples.setdefault((key, case), {})
                    for metric, value in values.items():
                        cell.setdefault(metric, []).append(value)
                    headline = benchmark.metrics[0]
                    log(
                        f"{benchmark.name} [{repeat}/{settings.repeats}] {case} / {key}: "
                        f"{values.get(headline.key, float('nan')):,.{headline.digits}f} {headline.label}"
                    )
    return outcome


def run_all(
    benchmarks: list[Benchmark], settings: Settings, log: Log = lambda line: print(line, file=sys.stderr)
) -> list[Outcome]:
    outcomes = []
    for benchmark in benchmarks:
        if benchmark.runnable:
            log(f"== {benchmark.title}")
        outcomes.append(run_benchmark(benchmark, settings, log))
    return outcomes
