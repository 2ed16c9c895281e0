"""`sharing: cross_stitch`: cross-stitch networks (Misra et al. 2016): one encoder copy per language, and after every
block a learned unit that mixes the copies' hidden states, h'_l = Σ_m α[b, l, m] h_m, so that the languages learn how
much to share at each depth (α = identity: independent encoders).

Cost: every copy runs on every row of the batch, block by block (a language's states depend on all copies): the
compute of N encoder forwards, as soft sharing, plus N² · B · S · E multiply-adds per block."""

import torch
from torch import nn

from ..encoders import layer_stack
from .layers import block_inputs, check_output_is_last_block, run_block
from .soft import SoftSharing


def initial_alpha(init: float, n: int, blocks: int) -> torch.Tensor:
    """(blocks, n, n): `init` on the diagonal, (1 - init) / (n - 1) elsewhere: rows sum to 1, so copies that start
    equal (one pretrained checkpoint) stay equal to it; one language: 1."""
    eye = torch.eye(n)
    alpha = eye * init + (1 - eye) * (1 - init) / (n - 1) if n > 1 else eye
    return alpha.expand(blocks, n, n).clone()


def cross_stitch(alpha: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """alpha (N, N), hidden (N, B, S, E) -> (N, B, S, E), h'_l = Σ_m α[l, m] h_m.

    Summed term by term in copy order, elementwise: a copy weighted 0 adds exactly 0, so a language's mix is bit for
    bit the same with or without a copy it does not read (a matmul over m may reorder its sum when N changes)."""
    alpha = alpha.to(hidden.dtype)
    return sum(alpha[:, m, None, None, None] * hidden[m] for m in range(len(hidden)))


def own_parameter(value: torch.Tensor, requires_grad: bool = True) -> nn.Parameter:
    """`value` as a parameter in storage of its own (a slice of a shared tensor could not be saved on its own)."""
    return nn.Parameter(value.clone(memory_format=torch.contiguous_format), requires_grad=requires_grad)


def alpha_row(value: torch.Tensor) -> nn.ParameterDict:
    """One language's row of α, (blocks, N) (saved as `cross_stitch.<lang>.alpha`)."""
    return nn.ParameterDict({"alpha": own_parameter(value)})


class CrossStitchSharing(SoftSharing):
    """`model.encoders`: {lang: encoder copy}, built, loaded, frozen and added as with soft sharing, coupled by α
    instead of a penalty; `model.cross_stitch`: {lang: `alpha` (blocks, N)}, the language's row of α, its weights on
    every copy in `config.languages` order.

    Rows are parameters of their own so that a language owns its row as it owns its copy (trained when it is trained
    alone, dropped with it). An added language's row reads every copy, while each older row gets weight 0 on the new
    copy: training the new language alone freezes the older rows, so the older languages stay bit for bit as they
    were, outputs included. The other way round, every language reads the older copies, so training or removing an
    older language alone changes the languages that read its copy.

    Sluice networks (sluice.py) are this with other rows: `units` names the rows' module on the model (and their
    parameter-name prefix), `copy_axis` the axis of a row's `alpha` over the copies it reads."""

    units = "cross_stitch"
    copy_axis = 1  # alpha (blocks, N)

    def build(self, model, encoder):
        check_output_is_last_block(encoder, self.config.sharing)
        super().build(model, encoder)
        n, blocks = len(self.config.languages), len(layer_stack(encoder))
        setattr(model, self.units, nn.ModuleDict({lang: self.initial_row(i, n, blocks)
                                                  for i, lang in enumerate(self.config.languages)}))

    def initial_row(self, index: int, n: int, blocks: int) -> nn.ParameterDict:
        """The row of the `index`-th of `n` languages at the start of training (its own copy weighted
        `cross_stitch_init`)."""
        return alpha_row(initial_alpha(self.config.cross_stitch_init, n, blocks)[:, index])

    def rows(self, model) -> nn.ModuleDict:
        return getattr(model, self.units)

    def mixing_prefixes(self):
        return (f"{self.units}.",)

    def alpha(self, model) -> torch.Tensor:
        """(blocks, N, N), rows and columns in `config.languages` order."""
        return torch.stack([self.rows(model)[lang].alpha for lang in self.config.languages], 1)

    def freeze(self, model, trainable_layers):
        """Each copy as with soft sharing; α trains unless the whole encoder is frozen (equal frozen copies: nothing
        to mix)."""
        super().freeze(model, trainable_layers)
        self.rows(model).requires_grad_(trainable_layers != 0)

    def mix(self, alpha: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """One block's unit: alpha (N, N), hidden (N, B, S, E) -> (N, B, S, E)."""
        return cross_stitch(alpha, hidden)

    def stitched_blocks(self, model, input_ids, attention_mask):
        """Every copy on every row (a row's states then do not depend on which languages need it), block by block:
        yields each block's outputs and the mixed states every copy continues from, (N, B, S, E) each."""
        copies = [model.encoders[lang] for lang in self.config.languages]
        stacks = [layer_stack(copy_) for copy_ in copies]
        calls = [block_inputs(copy_, stack[0], input_ids, attention_mask) for copy_, stack in zip(copies, stacks)]
        hidden = torch.stack([h for h, _, _ in calls])  # (N, B, S, E)
        alpha = self.alpha(model)  # (blocks, N, ...)
        for b in range(len(stacks[0])):
            out = torch.stack([run_block(stack[b], h, args, kwargs)
                               for stack, h, (_, args, kwargs) in zip(stacks, hidden, calls)])  # (N, B, S, E)
            hidden = self.mix(alpha[b], out)
            yield out, hidden

    def encode(self, model, input_ids, attention_mask, rows):
        """What each language's copy gives after the last block's unit."""
        *_, (_, hidden) = self.stitched_blocks(model, input_ids, attention_mask)  # the last block's, (N, B, S, E)
        return {lang: hidden[self.config.languages.index(lang)][keep] for lang, keep in rows.items()}

    def penalty(self, model):
        return None

    def readers(self, model, lang) -> list[str]:
        """The other languages whose α row gives `lang`'s copy a non-zero weight: they read it."""
        col = self.config.languages.index(lang)
        return [other for other in self.config.languages
                if other != lang and bool(self.rows(model)[other].alpha.select(self.copy_axis, col).any())]

    def owned_prefixes(self, model, lang):
        """Its copy and its α row only while no other language reads its copy (a language added later): the row also
        sets what the copy passes to its next block, which the readers read. So training one language alone never
        changes another one's output; a language others read trains its head alone."""
        return [] if self.readers(model, lang) else [*super().owned_prefixes(model, lang), f"{self.units}.{lang}."]

    @torch.no_grad()
    def add_language(self, model, lang):
        """The new copy as with soft sharing (the mean of the others); its row as at the start of training; each
        older row gets weight 0 on the new copy, its entries kept."""
        super().add_language(model, lang)
        langs, rows = self.config.languages, self.rows(model)
        new = langs.index(lang)
        for row in rows.values():
            old = row.alpha  # the copy axis has N - 1 entries
            zero = old.new_zeros(old.shape[:self.copy_axis] + (1,) + old.shape[self.copy_axis + 1:])
            row["alpha"] = own_parameter(torch.cat([old.narrow(self.copy_axis, 0, new), zero,
                                                    old.narrow(self.copy_axis, new, old.shape[self.copy_axis] - new)],
                                                   self.copy_axis), old.requires_grad)
        rows[lang] = self.initial_row(new, len(langs), len(old)).to(old).requires_grad_(old.requires_grad)

    @torch.no_grad()
    def remove_language(self, model, lang):
        """Drops its copy, its row and its column; refused while other languages read its copy (their translations
        would change)."""
        readers = self.readers(model, lang)
        if readers:
            raise ValueError(f"cannot remove {lang!r}: {readers} read its encoder copy through the "
                             f"{self.config.sharing} units (non-zero α), so removing it would change their "
                             f"translations. Only a language no other one reads (one added later) can be removed "
                             f"from a {self.config.sharing} model.")
        gone = self.config.languages.index(lang)
        super().remove_language(model, lang)
        for row in self.rows(model).values():
            old = row.alpha  # the copy axis has N entries
            row["alpha"] = own_parameter(torch.cat([old.narrow(self.copy_axis, 0, gone),
                                                    old.narrow(self.copy_axis, gone + 1, old.shape[self.copy_axis]
                                                               - gone - 1)], self.copy_axis), old.requires_grad)
