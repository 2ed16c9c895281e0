"""Language balancing for multi-target rows: temperature sampling (as fairseq does for language pairs) by row weights.

Language l has n_l training targets. Temperature T asks for a share of sampled (source, l-target) examples
p_l ∝ n_l^(1/T): T=1 keeps the natural shares, T→∞ makes them uniform. A row carries several targets at once, so
the shares are reached by sampling ROWS with weights, found by iterative proportional scaling: each round scales a
row's weight by the mean correction p_l / share_l of the languages it holds. Every target keeps its loss weight.

`limit_rows_per_language` goes the other way: it cuts a language down to N targets (`max_rows_per_language`), a
low-resource setting taken from a full corpus.
"""

import math
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


class OneTargetRows(torch.utils.data.Dataset):
    """Each (row, language) pair as an example of that language alone: item `r * L + l` is row r with its source and
    its language-l target only, so that a batch can hold exactly B examples of every language."""

    def __init__(self, rows: list[dict], source_lang: str, langs: list[str]):
        self.rows, self.source_lang, self.langs = rows, source_lang, list(langs)

    def __len__(self) -> int:
        return len(self.rows) * len(self.langs)

    def __getitem__(self, index: int) -> dict:
        r, l = divmod(index, len(self.langs))
        lang = self.langs[l]
        return {"translation": {self.source_lang: self.rows[r][self.source_lang], lang: self.rows[r][lang]}}


class LanguageBatchSampler(Sampler):
    """`OneTargetRows` indices in device batches of L x `batch_size`: `batch_size` rows of each language, drawn from
    the rows holding it (LibMTL's multi-input setting: per-language batches as large as a single-task model's).

    An epoch is as many optimizer steps as the language with the most rows needs to see each once; a language with
    fewer rows goes round its rows again, reshuffled. Each language's order is a seeded permutation per (seed, epoch,
    language, round), grouped by source length with `lengths`; optimizer steps of `global_batch` rows per language
    (per device x processes x accumulation) hold the same rows for any split of that batch."""

    def __init__(self, has: torch.Tensor, seed: int, batch_size: int, global_batch: int,
                 lengths: list[int] | None = None, langs: list[str] | None = None):
        counts = has.sum(0)  # (L,)
        if (counts == 0).any():
            empty = [langs[i] if langs else i for i in (counts == 0).nonzero().flatten().tolist()]
            raise ValueError(f"language_batches: no training row holds a target in {empty}: every trained language "
                             "needs rows of its own (drop it from target_langs, or set language_batches: false).")
        self.has, self.seed, self.batch_size, self.global_batch = has, seed, batch_size, global_batch
        self.lengths, self.epoch = lengths, 0
        self.steps = math.ceil(counts.max().item() / global_batch)  # optimizer steps per epoch

    def set_epoch(self, epoch: int) -> None:  # called by Accelerate's prepared loader
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps * self.global_batch * self.has.shape[1]

    def seeded(self, l: int, part) -> torch.Generator:  # not `generator`: Accelerate syncs a `sampler.generator`
        return torch.Generator().manual_seed(zlib.crc32(f"{self.seed}/{self.epoch}/{l}/{part}".encode()))

    def language_order(self, l: int) -> torch.Tensor:
        """(steps * global_batch,) row indices holding language l, this epoch's order."""
        rows = self.has[:, l].nonzero().flatten()
        need, rounds = self.steps * self.global_batch, []
        while sum(map(len, rounds)) < need:
            rounds.append(rows[torch.randperm(len(rows), generator=self.seeded(l, len(rounds)))])
        order = torch.cat(rounds)[:need]
        if self.lengths is not None:
            order = order[get_length_grouped_indices([self.lengths[i] for i in order], self.global_batch,
                                                     generator=self.seeded(l, "lengths"))]
        return order

    def __iter__(self):
        num_langs = self.has.shape[1]
        orders = torch.stack([self.language_order(l) for l in range(num_langs)])  # (L, steps * global_batch)
        batches = orders.view(num_langs, -1, self.batch_size)  # (L, device batches, B)
        pairs = batches * num_langs + torch.arange(num_langs)[:, None, None]  # OneTargetRows indices
        return iter(pairs.permute(1, 0, 2).flatten().tolist())  # device batch by device batch: B of each language
