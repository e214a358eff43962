"""Plots a reviewer can read: curves, ROC, image grids. PNG files via matplotlib's Agg backend
(no display needed); every function returns the file name it wrote inside ``directory``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # headless: CI and servers have no display
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, directory: Path, name: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{name}.tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    tmp.replace(directory / name)  # never a half-written plot
    pyplot().close(fig)
    return name


def curve(
    directory: Path,
    name: str,
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
    ylim: tuple[float, float] | None = (0.0, 1.02),
) -> str:
    """One or more y-series over a shared x (robustness curve, agreement vs queries ...)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for label, ys in series.items():
        ax.plot(x, ys, marker="o", markersize=3, label=label)
    if logx:
        ax.set_xscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return save_figure(fig, directory, name)


def roc(
    directory: Path,
    name: str,
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
) -> str:
    """ROC curves on log-log axes (low-FPR behaviour is what matters for membership)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.4, 4.0))
    for label, (fpr, tpr) in curves.items():
        f = np.clip(np.asarray(fpr, dtype=float), 1e-5, 1)
        t = np.clip(np.asarray(tpr, dtype=float), 1e-5, 1)
        ax.plot(f, t, label=label)
    ax.plot([1e-5, 1], [1e-5, 1], "k--", linewidth=0.8, label="chance")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=title,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, directory, name)


def image_grid(
    directory: Path,
    name: str,
    images: np.ndarray,
    titles: Sequence[str],
    *,
    columns: int = 4,
    title: str = "",
) -> str:
    """Images (n, C, H, W) in [0, 1] with a caption each (patch examples, inversions)."""
    plt = pyplot()
    n = len(images)
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.0 * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            img = np.clip(np.transpose(images[i], (1, 2, 0)), 0, 1)
            ax.imshow(img.squeeze(), cmap="gray" if img.shape[-1] == 1 else None)
            ax.set_title(titles[i], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, directory, name)
