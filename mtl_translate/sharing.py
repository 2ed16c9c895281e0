"""How the target languages share the pretrained encoder (`sharing:` in the config).

- `hard`: one encoder for every language (Caruana 1997); the default and the cheapest.
- `soft`: one encoder copy per language, all initialised from the same checkpoint, pulled together by an L2 penalty
  on their differences (Duong et al. 2015); costs one encoder forward per language.
- `partial`: hierarchical sharing (Søgaard & Goldberg 2016 style): the bottom `shared_layers` blocks are shared by
  every language, the blocks above by a language group (`language_groups`); an ungrouped language gets its own.
"""

import copy

import torch
from torch import nn

from .encoders import layer_stack

SHARING_MODES = ("hard", "soft", "partial")


def language_group_map(languages: list[str], language_groups: dict[str, list[str]] | None) -> dict[str, str]:
    """{lang: the group whose encoder blocks it reads}; an ungrouped language is a group of its own (named by it)."""
    groups = {lang: lang for lang in languages}
    for name, members in (language_groups or {}).items():
        unknown = [lang for lang in members if lang not in languages]
        if unknown:
            raise ValueError(f"language_groups[{name!r}] lists {unknown}, not among the languages {languages}.")
        if name in languages and name not in members:
            raise ValueError(f"language_groups: the group name {name!r} is also a language outside that group.")
        for lang in members:
            if groups[lang] != lang:
                raise ValueError(f"language_groups: {lang!r} is in both {groups[lang]!r} and {name!r}.")
            groups[lang] = name
    return groups


class _Captured(Exception):
    def __init__(self, args, kwargs):
        super().__init__("encoder stopped at its unshared layers")
        self.layer_args, self.layer_kwargs = args, kwargs


class LayerInputs(nn.Module):
    """Takes the place of the unshared blocks in the shared encoder's layer stack: it records how the encoder calls
    its blocks (hidden states, attention mask in the encoder's own format, ...) and stops the encoder there, so the
    group blocks are called exactly as the encoder would have called them."""

    def forward(self, *args, **kwargs):
        raise _Captured(args, kwargs)


def split_encoder(encoder: nn.Module, shared_layers: int, group_names: list[str]) -> nn.ModuleDict:
    """Cuts `encoder` (in place) after its bottom `shared_layers` blocks; returns {group: copy of the blocks above}."""
    stack = layer_stack(encoder)
    if not 0 <= shared_layers < len(stack):
        raise ValueError(f"shared_layers={shared_layers}: the encoder has {len(stack)} blocks; partial sharing needs "
                         f"0 <= shared_layers < {len(stack)} (shared_layers={len(stack)} is sharing: hard).")
    if getattr(encoder, "final_layer_norm", None) is not None:
        raise ValueError(f"sharing: partial needs an encoder whose output is its last block's output (BERT, RoBERTa, "
                         f"XLM-R, ELECTRA, ...); {type(encoder).__name__} normalises after its stack.")
    top = nn.ModuleList(stack[shared_layers:])
    groups = nn.ModuleDict({name: copy.deepcopy(top) for name in group_names})
    del stack[shared_layers:]
    stack.append(LayerInputs())
    return groups


def run_split_encoder(encoder: nn.Module, groups: dict[str, nn.ModuleList], input_ids, attention_mask):
    """Shared blocks once, then each group's blocks on their output: {group: (B, S, E)}."""
    try:
        encoder(input_ids=input_ids, attention_mask=attention_mask)
        raise RuntimeError(f"{type(encoder).__name__} never reached its layer stack")
    except _Captured as call:
        args, kwargs = list(call.layer_args), dict(call.layer_kwargs)
    shared = kwargs.pop("hidden_states") if "hidden_states" in kwargs else args.pop(0)  # (B, S, E)
    out = {}
    for name, blocks in groups.items():
        hidden = shared
        for block in blocks:
            hidden = block(hidden, *args, **kwargs)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        out[name] = hidden
    return out


def soft_sharing_penalty(encoders: nn.ModuleDict) -> torch.Tensor:
    """Σ over trainable parameters and copies of ||θ_copy − mean_copies(θ)||²: its gradient 2(θ_copy − mean) pulls
    each copy toward the others (frozen parameters stay equal, so they are skipped)."""
    terms = []
    for copies in zip(*(enc.parameters() for enc in encoders.values())):
        if copies[0].requires_grad:
            stacked = torch.stack(copies)  # (N, *param.shape)
            terms.append((stacked - stacked.mean(0)).pow(2).sum())
    return torch.stack(terms).sum() if terms else torch.zeros(())
