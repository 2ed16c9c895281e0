"""`sharing: adapters`: one shared encoder plus, for each language, a small residual adapter after every encoder block
(Bapna & Firat 2019; per-language adapters as in Philip et al. 2020). The encoder may be frozen: the adapters then
hold everything language-specific in the encoder, about 2 · E · `adapter_size` weights per block and language.

Cost: a language's states diverge after the first block, so every block runs once per language. The languages'
rows are stacked into one batch (Σ_l B_l rows) and the encoder runs once on it: the compute of N encoder forwards
(like soft sharing) in one pass, with the parameters of one encoder."""

import torch
import torch.nn.functional as F
from torch import nn

from ..encoders import layer_stack
from .hard import HardSharing
from .layers import block_inputs, check_output_is_last_block, run_block


class Adapter(nn.Module):
    """x + W_up relu(W_down LN(x)) (Bapna & Firat 2019). W_up starts at zero, so a new adapter is the identity: the
    encoder's output is the pretrained one until the language trains, and adding a language changes no output."""

    def __init__(self, hidden_size: int, size: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size)
        self.down = nn.Linear(hidden_size, size)
        self.up = nn.Linear(size, hidden_size)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        for module in self.children():  # initialised here, alike in a new model and for an added language:
            module._is_hf_initialized = True  # the model's post_init leaves them as they are

    def forward(self, x):  # (B, S, E) -> (B, S, E)
        return x + self.up(F.relu(self.down(self.norm(x))))


class AdapterSharing(HardSharing):
    """`model.encoder`: the shared encoder (loaded and frozen as with hard sharing; `trainable_encoder_layers` applies
    to it alone, adapters always train); `model.adapters`: {lang: one `Adapter` per encoder block}."""

    def build(self, model, encoder):
        check_output_is_last_block(encoder, "adapters")
        super().build(model, encoder)
        model.adapters = nn.ModuleDict({lang: self.language_adapters(encoder) for lang in self.config.languages})

    def language_adapters(self, encoder) -> nn.ModuleList:
        """One new (identity) adapter per block, on the encoder's device and dtype (a language added to a model
        that is already on a GPU or in bf16)."""
        weight = next(encoder.parameters())
        adapters = [Adapter(self.config.encoder.hidden_size, self.config.adapter_size) for _ in layer_stack(encoder)]
        return nn.ModuleList(adapters).to(weight.device, weight.dtype)

    def encode(self, model, input_ids, attention_mask, rows):
        """Each language's rows, stacked: every block runs once on all of them, then each language's adapter on its
        own rows."""
        if not rows:
            return {}
        picks = [torch.arange(len(input_ids), device=input_ids.device)[keep] for keep in rows.values()]
        sizes, index = [len(p) for p in picks], torch.cat(picks)  # index: (Σ B_l,)
        adapters = [model.adapters[lang] for lang in rows]
        stack = layer_stack(model.encoder)
        hidden, args, kwargs = block_inputs(model.encoder, stack[0], input_ids[index], attention_mask[index])
        for i, block in enumerate(stack):
            parts = run_block(block, hidden, args, kwargs).split(sizes)  # [(B_l, S, E)]
            hidden = torch.cat([own[i](part) for own, part in zip(adapters, parts)])  # (Σ B_l, S, E)
        return dict(zip(rows, hidden.split(sizes)))

    def states_key(self, lang):
        return None

    def owned_prefixes(self, model, lang):
        return [f"adapters.{lang}."]

    def add_language(self, model, lang):
        model.adapters[lang] = self.language_adapters(model.encoder)
