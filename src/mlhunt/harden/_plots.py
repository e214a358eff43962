"""Grouped bar charts for trade-offs that have no natural x axis (variants of a defence, attackers
under a limit); curves use :func:`mlhunt.assess.plots.curve`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def bars(
    directory: Path,
    name: str,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    ylabel: str,
    title: str,
    logy: bool = False,
    hline: tuple[float, str] | None = None,
) -> str:
    """One bar per series inside each group; ``hline``: (value, label) drawn across."""
    from mlhunt.assess.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5.2, 1.1 * len(groups) * max(len(series), 1) / 2), 3.4))
    width = 0.8 / max(len(series), 1)
    xs = np.arange(len(groups))
    for i, (label, ys) in enumerate(series.items()):
        vals = [np.nan if v is None else float(v) for v in ys]
        ax.bar(xs + (i - (len(series) - 1) / 2) * width, vals, width, label=label)
    if hline is not None:
        ax.axhline(hline[0], color="black", linestyle="--", linewidth=1, label=hline[1])
    if logy:
        ax.set_yscale("log")
    ax.set_xticks(xs, list(groups), fontsize=8)
    ax.set(ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    return save_figure(fig, directory, name)
