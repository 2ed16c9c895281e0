"""Combining per-language losses into one training loss.

The model calls `loss_weighting(losses)` with the losses of the languages present in the batch. Static weights
live here; learned and dynamic methods plug in as further `nn.Module`s built by `build_loss_weighting`.
"""

import torch
from torch import nn


class StaticLossWeighting(nn.Module):
    """L = sum_l w_l * L_l over the languages present in the batch, with fixed weights from the config."""

    def __init__(self, weights: dict[str, float]):
        super().__init__()
        self.weights = dict(weights)

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.weights[lang] * loss for lang, loss in losses.items())


LOSS_WEIGHTINGS = {"static": StaticLossWeighting}


def build_loss_weighting(config) -> nn.Module:
    if config.loss_weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"loss_weighting={config.loss_weighting!r} is not one of {sorted(LOSS_WEIGHTINGS)}.")
    return LOSS_WEIGHTINGS[config.loss_weighting](config.loss_weights)
