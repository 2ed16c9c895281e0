"""Figures for reports and model cards. matplotlib is imported inside each function: the package does not need it
(`pip install "mtl-translate[compare]"` brings it), and a missing one is an ImportError for the caller to handle."""

from pathlib import Path

import numpy as np


def plot_cross_stitch(alpha: np.ndarray, languages: list[str], path: str | Path) -> None:
    """α (blocks, N, N) as one heatmap per block (row: the language whose copy reads, column: the copy it reads), so
    a card shows at a glance where in the encoder the languages share (off-diagonal) or keep apart (diagonal)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    blocks, n = alpha.shape[:2]
    fig = Figure(figsize=(0.6 + (1.0 + 0.45 * n) * blocks, 1.2 + 0.45 * n))
    axes = fig.subplots(1, blocks, squeeze=False)[0]
    for b, ax in enumerate(axes):
        image = ax.imshow(alpha[b], cmap="viridis", vmin=min(0.0, alpha.min()), vmax=max(1.0, alpha.max()))
        for (i, j), value in np.ndenumerate(alpha[b]):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="w" if value < 0.5 else "k")
        ax.set_xticks(range(n), languages, fontsize=8)
        ax.set_yticks(range(n), languages if b == 0 else [], fontsize=8)
        ax.set_title(f"block {b + 1}", fontsize=9)
    fig.colorbar(image, ax=list(axes), shrink=0.8)
    fig.suptitle("cross-stitch α: row reads column", fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches="tight")
