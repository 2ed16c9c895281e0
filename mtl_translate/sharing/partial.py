"""`sharing: partial`: hierarchical sharing (Søgaard & Goldberg 2016 style): the bottom `shared_layers` blocks are
shared by every language, the blocks above by a language group (`language_groups`); an ungrouped language gets its
own."""

import copy

from torch import nn

from ..encoders import freeze_encoder_layers, layer_stack
from . import language_group_map
from .base import SharingMode
from .layers import block_inputs, check_output_is_last_block, run_block
from .soft import mean_copy


class LayerInputs(nn.Module):
    """Takes the place of the unshared blocks in the shared encoder's layer stack: `block_inputs` stops the encoder
    there, so the group blocks are called exactly as the encoder would have called them."""


def split_encoder(encoder: nn.Module, shared_layers: int, group_names: list[str]) -> nn.ModuleDict:
    """Cuts `encoder` (in place) after its bottom `shared_layers` blocks; returns {group: copy of the blocks above}."""
    stack = layer_stack(encoder)
    if not 0 <= shared_layers < len(stack):
        raise ValueError(f"shared_layers={shared_layers}: the encoder has {len(stack)} blocks; partial sharing needs "
                         f"0 <= shared_layers < {len(stack)} (shared_layers={len(stack)} is sharing: hard).")
    check_output_is_last_block(encoder, "partial")
    top = nn.ModuleList(stack[shared_layers:])
    groups = nn.ModuleDict({name: copy.deepcopy(top) for name in group_names})
    del stack[shared_layers:]
    stack.append(LayerInputs())
    return groups


def run_split_encoder(encoder: nn.Module, groups: dict[str, nn.ModuleList], input_ids, attention_mask):
    """Shared blocks once, then each group's blocks on their output: {group: (B, S, E)}."""
    shared, args, kwargs = block_inputs(encoder, layer_stack(encoder)[-1], input_ids, attention_mask)  # (B, S, E)
    out = {}
    for name, blocks in groups.items():
        hidden = shared
        for block in blocks:
            hidden = run_block(block, hidden, args, kwargs)
        out[name] = hidden
    return out


class PartialSharing(SharingMode):
    """`model.encoder`: the shared bottom blocks (its stack ends in `LayerInputs`); `model.encoder_groups`:
    {group: the blocks above}. Shared blocks run once per batch, each needed group's blocks once."""

    def __init__(self, config):
        super().__init__(config)
        self.group = language_group_map(config.languages, config.language_groups)  # {lang: group}

    def build(self, model, encoder):
        model.encoder = encoder
        model.encoder_groups = split_encoder(encoder, self.config.shared_layers, sorted(set(self.group.values())))

    def load_pretrained(self, model, pretrained):
        missing, _ = model.encoder.load_state_dict(pretrained.state_dict(), strict=False)
        if missing:
            raise ValueError(f"the pretrained encoder lacks weights {missing[:5]}")
        top = layer_stack(pretrained)[self.config.shared_layers:]
        for blocks in model.encoder_groups.values():
            for block, weights in zip(blocks, top, strict=True):
                block.load_state_dict(weights.state_dict())

    def freeze(self, model, trainable_layers):
        """The group blocks are the top of each language's stack: k counts them first, then the shared blocks."""
        k = trainable_layers
        top = len(next(iter(model.encoder_groups.values())))  # blocks above the shared ones, in every group
        for blocks in model.encoder_groups.values():
            for i, block in enumerate(blocks):
                block.requires_grad_(k is None or i >= top - k)
        freeze_encoder_layers(model.encoder, None if k is None else max(k - top, 0))

    def encode(self, model, input_ids, attention_mask, rows):
        needed = {self.group[lang] for lang in rows}
        groups = {name: blocks for name, blocks in model.encoder_groups.items() if name in needed}
        memory = run_split_encoder(model.encoder, groups, input_ids, attention_mask)  # {group: (B, S, E)}
        return {lang: memory[self.group[lang]][keep] for lang, keep in rows.items()}

    def states_key(self, lang):
        return self.group[lang]

    def owned_prefixes(self, model, lang):
        alone = [other for other, group in self.group.items() if group == self.group[lang]] == [lang]
        return [f"encoder_groups.{self.group[lang]}."] if alone else []

    def add_language(self, model, lang):
        """A language joining an existing group reads its (frozen) blocks; a new group starts from the mean of the
        existing groups' blocks."""
        group = self.group[lang]
        if group not in model.encoder_groups:
            model.encoder_groups[group] = mean_copy(list(model.encoder_groups.values()))
