"""The PNG plots judgeforge draws with matplotlib (Agg): a card's histograms and bar charts, the loop's lines.

A number table says how many rows passed a filter; a picture says at once whether the judge's margins
are all tiny or the search mostly ran out of steps. Each function draws one small figure and writes it
atomically; the figures carry no timestamp or software stamp, so re-rendering a card gives the same files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import MaxNLocator  # noqa: E402

from judgeforge.files import atomic_write  # noqa: E402

_SIZE = (5.5, 3.2)
_COLOR = "#4C72B0"


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None}))
    finally:
        plt.close(fig)


def histogram(values: Sequence[float], title: str, xlabel: str, path: Path, bins: int = 20) -> Path:
    """A histogram of ``values``; integer-valued data gets one bar per integer."""
    fig, ax = plt.subplots(figsize=_SIZE)
    if values and all(float(v).is_integer() for v in values):
        low, high = int(min(values)), int(max(values))
        edges = [x - 0.5 for x in range(low, high + 2)]
        ax.hist(values, bins=edges, color=_COLOR, edgecolor="white")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.hist(values, bins=bins, color=_COLOR, edgecolor="white")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, path)


def bars(labels: Sequence[str], counts: Sequence[float], title: str, path: Path, xlabel: str = "rows") -> Path:
    """Horizontal bars, first label on top, each bar annotated with its value."""
    fig, ax = plt.subplots(figsize=(_SIZE[0], max(1.6, 0.45 * len(labels) + 1.0)))
    positions = list(range(len(labels)))[::-1]
    ax.barh(positions, counts, color=_COLOR)
    ax.set_yticks(positions, labels)
    for y, value in zip(positions, counts, strict=True):
        ax.text(value, y, f" {value:g}", va="center")
    ax.set_xlim(0, max(counts, default=1) * 1.18 or 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return _save(fig, path)


def lines(labels: Sequence[str], series: dict[str, Sequence[float | None]], title: str, path: Path) -> Path:
    """One line per series of rates (0..1) across ``labels`` (models, iterations); a None is a gap."""
    fig, ax = plt.subplots(figsize=_SIZE)
    xs = list(range(len(labels)))
    for name, values in series.items():
        points = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
        ax.plot([x for x, _ in points], [v for _, v in points], marker="o", label=name)
    ax.set_xticks(xs, labels, rotation=20, ha="right")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)
