"""`sharing: sluice`: sluice networks (Ruder et al. 2019), cross-stitch networks (cross_stitch.py) whose units mix
subspaces, with a penalty that keeps a copy's subspaces apart and learned weights over the blocks for each head.

One encoder copy per language. Each block's output, (B, S, E), is split into K = `sluice_subspaces` subspaces of E / K
coordinates (halves by default). After every block b a learned α over all N·K copy-subspaces gives subspace s of copy
l the states it continues from, h'_{l,s} = Σ_{m,t} α[b, l, s, m, t] h_{m,t}. The orthogonality penalty
Σ_copies Σ_blocks Σ_{s<t} ‖G_sᵀ G_t‖²_F / n² (weight `sluice_orthogonality_weight`) pushes a copy's subspaces to
carry different features: G_s (n, E/K) holds subspace s of the block's output at the batch's n real tokens (padding
left out; the 1/n² makes G_sᵀ G_t a mean over tokens, whose size does not grow with the batch). A learned β per language mixes the
blocks' mixed states into what its head reads, Σ_b β[l, b] h'_{b,l} (the paper's layer-stitch units).

α starts at the identity and β on the last block: every copy starts as the pretrained encoder, output for output.
The subspaces of a pretrained transformer are only coordinate ranges of its hidden state, not features it learned to
keep apart: README ("Multi-task methods") says what that means.

Cost: as cross-stitch, with K times its mixing multiply-adds, plus N · K(K-1)/2 · (E/K)² · n per block for the
penalty."""

from itertools import combinations

import torch
from torch import nn

from .cross_stitch import CrossStitchSharing, own_parameter


def identity_row(index: int, n: int, k: int, blocks: int) -> torch.Tensor:
    """(blocks, K, N, K): the `index`-th copy's subspace s reads its own subspace s with weight 1, nothing else."""
    row = torch.zeros(blocks, k, n, k)
    row[:, :, index] = torch.eye(k)
    return row


def sluice_mix(alpha: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """alpha (N, K, N, K), hidden (N, B, S, E) -> (N, B, S, E): h'_{l,s} = Σ_{m,t} α[l, s, m, t] h_{m,t}.

    Summed term by term in (copy, subspace) order, elementwise, as `cross_stitch`: a copy weighted 0 adds exactly 0,
    so an older language's states are bit for bit the same with a copy added after it."""
    n, k = alpha.shape[:2]
    parts = hidden.unflatten(-1, (k, -1))  # (N, B, S, K, E/K)
    alpha = alpha.to(hidden.dtype)
    mixed = sum(alpha[:, None, None, :, m, t, None] * parts[m, None, :, :, t, None, :]
                for m in range(n) for t in range(k))  # (N, B, S, K, E/K)
    return mixed.flatten(-2)


def orthogonality_penalty(out: torch.Tensor, attention_mask: torch.Tensor, k: int) -> torch.Tensor:
    """out (N, B, S, E), attention_mask (B, S) -> Σ_copies Σ_{s<t} ‖G_sᵀ G_t‖²_F / n², in float32 (a sum of
    squares of many products would lose its small terms in half precision)."""
    g = out[:, attention_mask.bool()].float().unflatten(-1, (k, -1))  # (N, n, K, E/K)
    n = g.shape[1]
    return sum((((g[:, :, s].mT @ g[:, :, t]) / n).pow(2).sum()  # (N, E/K, E/K): G_sᵀ G_t / n per copy
                for s, t in combinations(range(k), 2)), g.new_zeros(()))


class SluiceSharing(CrossStitchSharing):
    """`model.encoders`: {lang: encoder copy}, as with cross-stitch; `model.sluice`: {lang: `alpha` (blocks, K, N, K),
    the language's K rows of α, its subspaces' weights on every copy's subspaces (copies in `config.languages` order);
    `beta` (blocks,), its head's weights on the blocks}. `alpha(model)`: (blocks, N, K, N, K).

    An added language gets weight 0 in the older rows, as with cross-stitch: older languages stay bit for bit as they
    were, and removing it again restores the model."""

    units = "sluice"
    copy_axis = 2  # alpha (blocks, K, N, K)

    @property
    def penalty_weight(self):
        return self.config.sluice_orthogonality_weight

    def build(self, model, encoder):
        hidden, k = encoder.config.hidden_size, self.config.sluice_subspaces
        if hidden % k:
            raise ValueError(f"sluice_subspaces={k} must divide the encoder's hidden size {hidden}.")
        super().build(model, encoder)

    def initial_row(self, index, n, blocks):
        """Its own copy's subspaces as they are (α identity), its head on the last block (β one-hot)."""
        beta = torch.zeros(blocks)
        beta[-1] = 1.0
        alpha = identity_row(index, n, self.config.sluice_subspaces, blocks)
        return nn.ParameterDict({"alpha": own_parameter(alpha), "beta": own_parameter(beta)})

    def beta(self, model) -> torch.Tensor:
        """(N, blocks), languages in `config.languages` order."""
        return torch.stack([self.rows(model)[lang].beta for lang in self.config.languages])

    def mix(self, alpha, hidden):
        return sluice_mix(alpha, hidden)

    def encode(self, model, input_ids, attention_mask, rows):
        return self.sluice_encode(model, input_ids, attention_mask, rows, with_penalty=False)[0]

    def encode_with_penalty(self, model, input_ids, attention_mask, rows):
        return self.sluice_encode(model, input_ids, attention_mask, rows, with_penalty=True)

    def sluice_encode(self, model, input_ids, attention_mask, rows, with_penalty: bool):
        """{lang: (B_lang, S, E) Σ_b β[l, b] h'_{b,l}}, and the orthogonality penalty of this batch (None unless
        asked). β is summed term by term, as α: β one-hot on the last block gives its states bit for bit."""
        beta = self.beta(model)  # (N, blocks)
        states, penalty = 0, 0 if with_penalty else None
        for b, (out, hidden) in enumerate(self.stitched_blocks(model, input_ids, attention_mask)):
            if with_penalty:
                penalty = penalty + orthogonality_penalty(out, attention_mask, self.config.sluice_subspaces)
            states = states + beta[:, b, None, None, None].to(hidden.dtype) * hidden  # (N, B, S, E)
        return {lang: states[self.config.languages.index(lang)][keep] for lang, keep in rows.items()}, penalty

    def owned_prefixes(self, model, lang):
        """Its β always (it weighs its own head's input only); its α rows and its copy only while no other language
        reads its copy: its rows also set what its copy passes to the next block, which the readers read. Training
        a language others read trains its β (and head) alone, and leaves every other language bit for bit."""
        beta = [f"{self.units}.{lang}.beta"]
        return beta if self.readers(model, lang) else super().owned_prefixes(model, lang)
