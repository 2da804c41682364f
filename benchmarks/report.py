"""The report of one run: a markdown table per benchmark, and one plot of the headline figures."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from benchmarks.harness import Benchmark, Settings, Variant
from benchmarks.runner import Outcome, Summary


def number(value: float) -> str:
    """Thousands separators for big figures, three significant digits for small ones."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def cell(summary: Summary | None, status: str | None) -> str:
    if summary is None:
        return status or "—"
    return f"{number(summary.median)} ({number(summary.low)}–{number(summary.high)})"


def short_label(benchmark: Benchmark, key: str) -> str:
    """ "(c)" for the standard columns, the whole label otherwise."""
    label = next(v.label for v in benchmark.variants if v.key == key)
    return label.split()[0] if label.startswith("(") else label


def ratio(outcome: Outcome, variant: Variant, case: str) -> str:
    benchmark = outcome.benchmark
    reference = benchmark.reference_of(variant)
    if reference is None or reference == variant.key:
        return ""
    headline = benchmark.metrics[0].key
    mine = outcome.summary(variant.key, case, headline)
    kernel = outcome.summary(reference, case, headline)
    if mine is None or kernel is None or kernel.median == 0:
        return ""
    return f"{mine.median / kernel.median:.2f} × {short_label(benchmark, reference)}"


def table(outcome: Outcome) -> list[str]:
    b = outcome.benchmark
    compared = any(b.reference_of(v) is not None for v in b.variants)
    head = ["case", "variant", *(m.label for m in b.metrics)]
    if compared:
        head.append(f"{b.metrics[0].label}: ratio to kernel")
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for case in b.cases:
        for v in b.variants:
            status = outcome.status.get(v.key)
            row = [case, v.label]
            if (v.key, case) in outcome.samples:
                row += [cell(outcome.summary(v.key, case, m.key), None) for m in b.metrics]
            else:
                row += [status or "—"] + [""] * (len(b.metrics) - 1)
            if compared:
                row.append(ratio(outcome, v, case))
            lines.append("| " + " | ".join(row) + " |")
    return lines


def write_markdown(outcomes: list[Outcome], settings: Settings, path: Path) -> str:
    mode = "quick" if settings.quick else "full"
    lines = [
        "# usernet against the kernel",
        "",
        f"`python -m benchmarks{' --quick' if settings.quick else ''}`, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{mode} mode: {settings.repeats} repetitions of ~{settings.seconds:g} s per figure, "
        "interleaved across variants. "
        f"Linux {platform.release()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.",
        "",
        "Cells are median (min–max) over the repetitions. The ratio column divides a variant's headline median "
        "by that of the kernel column named after it (usernet on a loop against the kernel on the same loop), "
        "for the same case in this same run: compare ratios, not absolute figures across runs on a noisy machine.",
    ]
    for outcome in outcomes:
        b = outcome.benchmark
        lines += ["", f"## {b.title}", "", b.meaning, "", *table(outcome)]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def write_plot(outcomes: list[Outcome], path: Path) -> str:
    """Draw the headline figure of every measured case; returns what happened, for the console."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return (
            f"no plot: matplotlib is not installed (pip install matplotlib, or the `bench` extra); {path} not written"
        )
    panels = [
        (o, case)
        for o in outcomes
        for case in o.benchmark.cases
        if any((v.key, case) in o.samples for v in o.benchmark.variants)
    ]
    if not panels:
        return "no plot: nothing was measured"
    columns = 2 if len(panels) > 1 else 1
    rows = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(7 * columns, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (outcome, case) in zip(axes.flat, panels, strict=False):
        b = outcome.benchmark
        metric = b.metrics[0]
        labels: list[str] = []
        medians: list[float] = []
        errors: list[list[float]] = [[], []]  # below and above each median: barh's xerr
        notes: list[str] = []
        for v in b.variants:
            s = outcome.summary(v.key, case, metric.key)
            labels.append(v.label)
            medians.append(s.median if s else 0.0)
            errors[0].append(s.median - s.low if s else 0.0)
            errors[1].append(s.high - s.median if s else 0.0)
            notes.append("" if s else outcome.status.get(v.key, ""))
        positions = range(len(labels))
        colours = ["tab:orange" if v.key.startswith("usernet") else "tab:blue" for v in b.variants]
        ax.barh(list(positions), medians, xerr=errors, color=colours, capsize=3)
        for y, note in zip(positions, notes, strict=True):
            if note:
                ax.text(0, y, f" {note}", va="center", fontsize=7, color="grey")
        ax.set_yticks(list(positions), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{b.title} — {case}", fontsize=9)
        ax.set_xlabel(metric.label + ("" if metric.higher_is_better else " (lower is better)"), fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"plot written to {path}"
