"""Language balancing for multi-target rows: temperature sampling (as fairseq does for language pairs) by row weights.

Language l has n_l training targets. Temperature T asks for a share of sampled (source, l-target) examples
p_l ∝ n_l^(1/T): T=1 keeps the natural shares, T→∞ makes them uniform. A row carries several targets at once, so
the shares are reached by sampling ROWS with weights, found by iterative proportional scaling: each round scales a
row's weight by the mean correction p_l / share_l of the languages it holds. Every target keeps its loss weight.

`limit_rows_per_language` goes the other way: it cuts a language down to N targets (`max_rows_per_language`), a
low-resource setting taken from a full corpus.
"""

import zlib

import datasets
import torch
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices


def target_mask(rows: list[dict], langs: list[str]) -> torch.Tensor:
    """(R, L) bool: row r has a non-empty target in language l."""
    return torch.tensor([[bool(row.get(lang)) for lang in langs] for row in rows], dtype=torch.bool).reshape(-1, len(langs))


def language_shares(has: torch.Tensor, row_weights: torch.Tensor | None = None) -> torch.Tensor:
    """(L,) expected share of each language among the targets of rows drawn ∝ `row_weights` (default uniform)."""
    w = torch.ones(has.shape[0], dtype=torch.float64) if row_weights is None else row_weights.double()
    counts = (w[:, None] * has.double()).sum(0)  # (L,)
    return counts / counts.sum()


def temperature_row_weights(has: torch.Tensor, temperature: float, rounds: int = 200) -> torch.Tensor:
    """(R,) row sampling weights (mean 1 over rows with a target) whose language shares approach n_l^(1/T)."""
    if temperature <= 0:
        raise ValueError(f"language_temperature must be > 0, got {temperature}.")
    hasf = has.double()  # (R, L)
    n = hasf.sum(0)  # (L,)
    target = n.clamp(min=1).pow(1.0 / temperature) * (n > 0)
    target = target / target.sum()
    per_row = hasf.sum(1)  # (R,) targets per row
    w = (per_row > 0).double()
    for _ in range(rounds):
        share = language_shares(has, w)
        correction = torch.where(n > 0, target / share.clamp(min=1e-12), torch.ones_like(n))  # (L,)
        w = w * (hasf @ correction) / per_row.clamp(min=1)
        w = w / w[per_row > 0].mean()
    return w.float()


def limit_rows_per_language(ds: datasets.Dataset, limits: dict[str, int], langs: list[str],
                            seed: int) -> datasets.Dataset:
    """A low-resource setting from a full corpus: language l of `limits` ({l: N}) keeps N seeded-random targets;
    its other rows lose that target but keep their other languages, and a row left with no target is dropped.

    The draw for l is a permutation of the rows that have l, in file order, seeded by (seed, l): it does not depend
    on the other languages, so a dataset loaded with l alone (compare's single-task run) keeps the same N rows."""
    limits = {lang: n for lang, n in limits.items() if lang in langs}
    if not limits:
        return ds
    rows = ds.select_columns(["translation"])[:]["translation"]
    for lang, n in limits.items():
        have = [i for i, row in enumerate(rows) if row[lang]]
        generator = torch.Generator().manual_seed(seed * 100_003 + zlib.crc32(lang.encode()))
        for k in torch.randperm(len(have), generator=generator)[n:].tolist():
            rows[have[k]][lang] = None
    kept = [row for row in rows if any(row[lang] for lang in langs)]
    return datasets.Dataset.from_dict({"translation": kept}, features=ds.features)


class RowSampler(Sampler):
    """One epoch of row indices, reproducible from (seed, epoch): a permutation, or with `weights` a draw with
    replacement of as many rows; with `batch_size`, ordered into batches of similar length (less padding)."""

    def __init__(self, num_rows: int, seed: int, weights: torch.Tensor | None = None,
                 lengths: list[int] | None = None, batch_size: int | None = None):
        self.num_rows, self.seed, self.weights = num_rows, seed, weights
        self.lengths, self.batch_size, self.epoch = lengths, batch_size, 0

    def set_epoch(self, epoch: int) -> None:  # called by Accelerate's prepared loader
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_rows

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is None:
            indices = torch.randperm(self.num_rows, generator=generator)
        else:
            indices = torch.multinomial(self.weights, self.num_rows, replacement=True, generator=generator)
        if self.lengths is not None:
            order = get_length_grouped_indices([self.lengths[i] for i in indices], self.batch_size, generator=generator)
            indices = indices[order]
        return iter(indices.tolist())
