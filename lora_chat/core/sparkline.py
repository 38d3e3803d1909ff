"""Text sparklines for loss curves in the terminal."""

from __future__ import annotations

from typing import Sequence

BARS = "▁▂▃▄▅▆▇█"


def resample(values: Sequence[float], width: int) -> list[float]:
    """Average ``values`` into at most ``width`` buckets."""
    if len(values) <= width:
        return list(values)
    buckets = []
    for i in range(width):
        start = i * len(values) // width
        end = max(start + 1, (i + 1) * len(values) // width)
        chunk = values[start:end]
        buckets.append(sum(chunk) / len(chunk))
    return buckets


def sparkline(values: Sequence[float], width: int = 40) -> str:
    points = resample(values, width)
    if not points:
        return ""
    low, high = min(points), max(points)
    span = high - low or 1.0
    return "".join(BARS[min(len(BARS) - 1, int((v - low) / span * (len(BARS) - 1) + 0.5))] for v in points)
