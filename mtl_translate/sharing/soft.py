"""`sharing: soft`: one encoder copy per language, all initialised from the same checkpoint, pulled together by an
L2 penalty on their differences (Duong et al. 2015); costs one encoder forward per language."""

import copy

import torch
from torch import nn

from ..encoders import freeze_encoder_layers
from .base import SharingMode


def soft_sharing_penalty(encoders: nn.ModuleDict) -> torch.Tensor:
    """Σ over trainable parameters and copies of ||θ_copy − mean_copies(θ)||²: its gradient 2(θ_copy − mean) pulls
    each copy toward the others (parameters frozen in every copy stay equal, so they are skipped; a copy trained
    alone, e.g. a language added later, is pulled toward the frozen others)."""
    terms = []
    for copies in zip(*(enc.parameters() for enc in encoders.values())):
        if any(c.requires_grad for c in copies):
            stacked = torch.stack(copies)  # (N, *param.shape)
            terms.append((stacked - stacked.mean(0)).pow(2).sum())
    return torch.stack(terms).sum() if terms else torch.zeros(())


class SoftSharing(SharingMode):
    """`model.encoders`: {lang: encoder copy}; the penalty (weight `soft_sharing_weight`) couples them."""

    @property
    def penalty_weight(self):
        return self.config.soft_sharing_weight

    def build(self, model, encoder):
        model.encoders = nn.ModuleDict({lang: copy.deepcopy(encoder) for lang in self.config.languages})

    def load_pretrained(self, model, pretrained):
        for copy_ in model.encoders.values():
            copy_.load_state_dict(pretrained.state_dict())

    def freeze(self, model, trainable_layers):
        for copy_ in model.encoders.values():
            freeze_encoder_layers(copy_, trainable_layers)

    def encode(self, model, input_ids, attention_mask, rows):
        return {lang: model.encoders[lang](input_ids=input_ids[keep], attention_mask=attention_mask[keep])
                .last_hidden_state for lang, keep in rows.items()}

    def penalty(self, model):
        return soft_sharing_penalty(model.encoders)

    def states_key(self, lang):
        return None

    def owned_prefixes(self, model, lang):
        return [f"encoders.{lang}."]

    def add_language(self, model, lang):
        """The new copy starts from the mean of the existing ones (what the penalty pulls it toward)."""
        model.encoders[lang] = mean_copy(list(model.encoders.values()))


@torch.no_grad()
def mean_copy(modules: list[nn.Module]) -> nn.Module:
    """A copy of `modules[0]` whose every parameter is the mean of that parameter over `modules`."""
    new = copy.deepcopy(modules[0])
    for name, param in new.named_parameters():
        param.copy_(torch.stack([m.get_parameter(name) for m in modules]).mean(0))
    return new
