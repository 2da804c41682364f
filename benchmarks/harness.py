"""What a benchmark declares, so the runner can run any of them without knowing what they measure.

A benchmark module in `benchmarks/suite/` exports `BENCHMARKS`, a tuple of `Benchmark`.
Each benchmark lists its variants (the columns compared side by side: usernet on one
loop, the kernel on another, kernel-to-kernel over veth...). A variant's `setup` builds
its world (sandboxes, servers) and yields a `Measure`; a variant whose setup or
measurement fails still appears in the table, with the reason, so a missing figure is
visible rather than silently absent.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

__all__ = [
    "LABELS",
    "Benchmark",
    "Measure",
    "Metric",
    "Settings",
    "Setup",
    "Variant",
    "variant",
]

#: The standard columns of issue 6, (a)-(e), plus what only usernet has today.
LABELS: dict[str, str] = {
    "usernet-select": "usernet, select loop",
    "usernet-asyncio": "(a) usernet + asyncio",
    "usernet-uvloop": "(b) usernet + uvloop",
    "kernel-asyncio": "(c) kernel + asyncio",
    "kernel-uvloop": "(d) kernel + uvloop",
    "kernel-veth": "(e) kernel over veth",
}


@dataclass(frozen=True)
class Settings:
    """How long and how often to measure; `quick` trades precision for a run well under 2 minutes."""

    quick: bool
    repeats: int
    seconds: float

    @classmethod
    def for_mode(cls, quick: bool) -> Settings:
        return cls(quick=True, repeats=3, seconds=0.6) if quick else cls(quick=False, repeats=5, seconds=3.0)


@dataclass(frozen=True)
class Metric:
    """One figure a benchmark reports; `higher_is_better` tells the reader how to read a ratio."""

    key: str
    label: str
    higher_is_better: bool = True
    digits: int = 0


#: Takes a case name, runs one measurement of it, returns {metric key: value}.
Measure = Callable[[str], dict[str, float]]
#: Builds a variant's world (namespaces, servers) and yields its Measure; tears it all down on exit.
Setup = Callable[[Settings], AbstractContextManager[Measure]]


@dataclass(frozen=True)
class Variant:
    """One column. `reference` is the kernel variant its headline figure is divided by (default: the benchmark's)."""

    key: str
    label: str
    setup: Setup
    reference: str | None = None


def variant(key: str, setup: Setup, *, label: str | None = None, vs: str | None = None) -> Variant:
    """A variant labelled from `LABELS` unless `label` is given, compared with variant `vs` if given."""
    return Variant(key, label or LABELS[key], setup, vs)


@dataclass(frozen=True)
class Benchmark:
    """One table of the report: `cases` are its rows groups, `variants` its columns, `metrics` its figures.

    The first metric is the headline one: plotted, and divided by the reference variant's
    figure for the same case to give the ratio to the kernel (each variant may name its
    own reference, e.g. usernet on uvloop against the kernel on uvloop).
    """

    name: str
    title: str
    order: int
    meaning: str
    metrics: tuple[Metric, ...]
    cases: tuple[str, ...]
    variants: tuple[Variant, ...]
    reference: str | None = None
    #: Left out of `--quick` unless named with `--only`: it adds little to proving the harness works.
    full_only: bool = False

    def __post_init__(self) -> None:
        keys = [v.key for v in self.variants]
        if len(set(keys)) != len(keys):
            raise ValueError(f"benchmark {self.name}: variant keys repeat: {keys}")
        for ref in {self.reference, *(v.reference for v in self.variants)} - {None}:
            if ref not in keys:
                raise ValueError(f"benchmark {self.name}: reference {ref!r} is none of its variants {keys}")
        if not self.metrics or not self.cases:
            raise ValueError(f"benchmark {self.name}: needs at least one metric and one case")

    @property
    def runnable(self) -> bool:
        return any(v.setup is not None for v in self.variants)

    def reference_of(self, variant: Variant) -> str | None:
        return variant.reference or self.reference
