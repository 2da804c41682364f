"""Cutting a byte stream into pieces at chosen points, as a network may deliver it."""

from __future__ import annotations

import itertools


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    """`stream` cut at each of `cuts` (taken modulo its length + 1, duplicates merged)."""
    points = sorted({c % (len(stream) + 1) for c in cuts})
    return [stream[a:b] for a, b in itertools.pairwise([0, *points, len(stream)])]
