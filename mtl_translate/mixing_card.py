"""The model card's section on what a sharing mode learned to mix (cross-stitch α; sluice α and β): tables read from
the weights with numpy (no torch), and heatmaps written next to them (uploaded with the model) when matplotlib is
installed. Modes that mix nothing have no section."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from safetensors import safe_open

from .plots import plot_cross_stitch

logger = logging.getLogger(__name__)

CROSS_STITCH_PNG = "cross_stitch_alpha.png"
SLUICE_PNG = "sluice_alpha.png"


def mixing_section(model_dir: Path, config: dict) -> list[str]:
    """The card's lines on the learned mixing weights of `config`'s sharing mode; [] for modes without any."""
    section = {"cross_stitch": _cross_stitch, "sluice": _sluice}.get(config.get("sharing"))
    weights = model_dir / "model.safetensors"
    if section is None or not weights.is_file():
        return []
    with safe_open(weights, framework="np") as f:
        return section(f, model_dir, config["languages"])


def _alpha_table(alpha: np.ndarray, labels: list[str]) -> list[str]:
    """alpha (blocks, R, R) as one table, a line per (block, reading row); R = len(labels)."""
    lines = ["| block | copy of | " + " | ".join(f"reads {label}" for label in labels) + " |",
             "|---:|---|" + "---:|" * len(labels)]
    for b, block in enumerate(alpha, 1):
        lines += [f"| {b} | {label} | " + " | ".join(f"{v:.3f}" for v in row) + " |"
                  for label, row in zip(labels, block)]
    return lines


def _heatmap(alpha: np.ndarray, labels: list[str], path: Path, title: str) -> list[str]:
    """The heatmap's image line, [] without matplotlib."""
    try:
        plot_cross_stitch(alpha, labels, path, title)
    except ImportError:
        logger.info("matplotlib is not installed: the model card shows α without its heatmap")
        return []
    return [f"\n![{title}, one heatmap per encoder block]({path.name})"]


def _cross_stitch(f, model_dir: Path, langs: list[str]) -> list[str]:
    alpha = np.stack([f.get_tensor(f"cross_stitch.{lang}.alpha") for lang in langs], 1)  # (blocks, N, N)
    lines = _alpha_table(alpha, langs) + _heatmap(alpha, langs, model_dir / CROSS_STITCH_PNG, "cross-stitch α")
    return ["## Cross-stitch units\n",
            "The encoder has one copy per target language. After each block, a language's copy continues from "
            "Σ_m α[l, m] h_m, a learned mix of every copy's hidden states (cross-stitch units, Misra et al. 2016; "
            "α = identity would be independent encoders). The learned α:\n",
            "\n".join(lines) + "\n"]


def _sluice(f, model_dir: Path, langs: list[str]) -> list[str]:
    alpha = np.stack([f.get_tensor(f"sluice.{lang}.alpha") for lang in langs], 1)  # (blocks, N, K, N, K)
    beta = np.stack([f.get_tensor(f"sluice.{lang}.beta") for lang in langs])  # (N, blocks)
    blocks, n, k = alpha.shape[:3]
    alpha = alpha.reshape(blocks, n * k, n * k)  # rows and columns: (copy, subspace)
    labels = [f"{lang}.{s}" for lang in langs for s in range(1, k + 1)]
    betas = ["| head of | " + " | ".join(f"block {b}" for b in range(1, blocks + 1)) + " |",
             "|---|" + "---:|" * blocks] + [f"| {lang} | " + " | ".join(f"{v:.3f}" for v in row) + " |"
                                            for lang, row in zip(langs, beta)]
    alphas = _alpha_table(alpha, labels) + _heatmap(alpha, labels, model_dir / SLUICE_PNG, "sluice α")
    first = f"{langs[0]}.1"
    return ["## Sluice units\n",
            f"The encoder has one copy per target language, and each block's output is split into {k} subspaces, "
            f"equal ranges of its coordinates (`{first}`: the first of {langs[0]}'s copy). After each block, each "
            "subspace of a copy continues from a learned mix of every copy's subspaces (sluice networks, Ruder et al. "
            "2019; α = identity would be independent encoders), and each language's head reads Σ_b β[l, b] h_b, a "
            "learned mix of what its copy holds after each block (β on the last block alone: the copy's output). "
            "The learned β:\n",
            "\n".join(betas) + "\n",
            "The learned α (row: a copy's subspace; column: what it reads):\n",
            "\n".join(alphas) + "\n"]
