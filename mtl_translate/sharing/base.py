"""The one interface between the model and a way of sharing the encoder."""

import torch
from torch import nn


class SharingMode:
    """A sharing mode builds the encoder part of a model and answers everything that depends on it.

    It holds no modules itself: `build` registers them on the model (under the names saved checkpoints use:
    `encoder`, `encoders`, `encoder_groups`), and every method takes the model. Defaults describe a mode whose
    languages own nothing of the encoder and add no regularisation.
    """

    def __init__(self, config):
        self.config = config

    def build(self, model: nn.Module, encoder: nn.Module) -> None:
        """Registers the encoder modules on `model`, built from `encoder` (randomly initialised, from the config)."""
        raise NotImplementedError

    def load_pretrained(self, model: nn.Module, pretrained: nn.Module) -> None:
        """Copies a pretrained encoder's weights into every encoder part."""
        raise NotImplementedError

    def freeze(self, model: nn.Module, trainable_layers: int | None) -> None:
        """None: train all; 0: freeze; k: train the top k blocks of each language's encoder stack."""
        raise NotImplementedError

    def encode(self, model: nn.Module, input_ids, attention_mask, rows: dict) -> dict[str, torch.Tensor]:
        """{lang: (B,) bool or slice} -> {lang: (B_lang, S, E) encoder states its head reads on those rows}."""
        raise NotImplementedError

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """Unweighted regularisation term between the encoder parts, a function of the parameters (None: none)."""
        return None

    def encode_with_penalty(self, model: nn.Module, input_ids, attention_mask,
                            rows: dict) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """`encode`, and the unweighted regularisation term of this forward pass (None: none). By default the
        parameters' `penalty`; a mode whose term is on activations (sluice) computes it from this pass's own, which
        the step's objective then counts as its mean over the step's passes (objective.py)."""
        return self.encode(model, input_ids, attention_mask, rows), self.penalty(model)

    penalty_weight = 0.0

    def states_key(self, lang: str) -> str | None:
        """Languages with the same key read the same encoder states (their heads can decode as one stack);
        None: `lang` has states of its own."""
        raise NotImplementedError

    def mixing_prefixes(self) -> tuple[str, ...]:
        """Parameter-name prefixes of learned mixing or gating weights: no weight decay for them (decay would pull a
        mixing weight towards 0, i.e. away from its identity-like start, not towards a simpler model)."""
        return ()

    def owned_prefixes(self, model: nn.Module, lang: str) -> list[str]:
        """Parameter-name prefixes, besides `decoders.<lang>.`, that only `lang` uses (trained when that language
        alone is trained, dropped when it is removed): changing them changes no other language's output."""
        return []

    def add_language(self, model: nn.Module, lang: str) -> None:
        """Builds the encoder parts `lang` will own. Called on the mode of the NEW config (which already lists
        `lang`), before the new head is added; must leave every existing parameter untouched."""

    def remove_language(self, model: nn.Module, lang: str) -> None:
        """Deletes what `lang` owns (see `owned_prefixes`). Called on the mode of the OLD config."""
        for prefix in self.owned_prefixes(model, lang):
            path = prefix.rstrip(".").split(".")
            parent = model.get_submodule(".".join(path[:-1]))
            del parent[path[-1]]
