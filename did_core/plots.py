"""Plots of a run (PNG; needs the optional extra ``did-core[plots]``, i.e. matplotlib).

Training curves from ``metrics.json``, the per-size metric per block from
``report.json``, and a 2-simplex helper for games with three joint actions that
tasks use for their own figures (``DesignObjective.extra_plots``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["require_matplotlib", "training_curves", "per_size_bars", "simplex_axes", "to_simplex"]


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` with a file backend, or a one-line error saying how to install it."""
    try:
        import matplotlib  # optional: the extra did-core[plots]
    except ImportError:
        raise ValueError("plots need matplotlib: pip install 'did-core[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # optional, as above (after the file backend is chosen)

    return plt


def training_curves(records: list[dict[str, Any]], path: Path) -> Path:
    """One panel per logged scalar against the step."""
    plt = require_matplotlib()
    keys = [k for k in records[0] if k != "step"] if records else []
    cols = min(3, max(len(keys), 1))
    rows = max(1, -(-len(keys) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        points = [(r["step"], r[key]) for r in records if key in r]
        ax.plot([p[0] for p in points], [p[1] for p in points])
        ax.set_title(key)
        ax.set_xlabel("step")
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def per_size_bars(report: dict[str, Any], path: Path) -> Path:
    """The metric per size label, one bar group per size and one bar per block; the axis is named by the task."""
    plt = require_matplotlib()
    blocks = report["blocks"]
    names = list(blocks)
    sizes = list(blocks[names[0]]["per_size"])
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(sizes) * len(names) + 2), 3.5))
    for i, name in enumerate(names):
        values = [blocks[name]["per_size"][s]["metric"] for s in sizes]
        ax.bar(np.arange(len(sizes)) + i * width, values, width, label=name)
    base = [blocks[names[0]]["per_size"][s]["baseline"] for s in sizes]
    ax.plot(np.arange(len(sizes)) + 0.4 - width / 2, base, "k_", markersize=18, label="baseline")
    ax.set_xticks(np.arange(len(sizes)) + 0.4 - width / 2, sizes)
    ax.set_xlabel(blocks[names[0]].get("size_axis", "game size"))  # reports before size_axis say nothing
    ax.set_ylabel(blocks[names[0]]["metric_name"])
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])


def to_simplex(p: np.ndarray) -> np.ndarray:
    """Barycentric ``[..., 3]`` to 2-D points ``[..., 2]`` in an equilateral triangle."""
    return np.asarray(p) @ CORNERS


def simplex_axes(ax: Any, labels: tuple[str, str, str]) -> None:
    """Draw the triangle with its corner labels and no axes."""
    ax.plot(*np.vstack([CORNERS, CORNERS[:1]]).T, "k-", lw=1)
    for corner, label, offset, align in zip(CORNERS, labels, ((-0.3, -1.2), (0.3, -1.2), (0, 0.4)),
                                            ("right", "left", "center")):
        ax.annotate(label, corner, xytext=offset, textcoords="offset fontsize", ha=align, fontsize=8)
    ax.set_aspect("equal")
    ax.axis("off")
