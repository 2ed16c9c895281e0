"""Running an encoder's blocks one at a time, each called exactly as the encoder itself calls it (attention mask in
the model's own format, position embeddings, ...), for modes that cut the layer stack or interleave several."""

import torch
from torch import nn


class _Captured(Exception):
    def __init__(self, args, kwargs):
        super().__init__("encoder stopped before a block")
        self.layer_args, self.layer_kwargs = args, kwargs


def _stop(module, args, kwargs):
    raise _Captured(args, kwargs)


def check_output_is_last_block(encoder: nn.Module, mode: str) -> None:
    """Block-by-block modes return the last block's output as the encoder's: a norm after the stack would be lost."""
    norms = ("final_layer_norm", "final_norm")
    after = [name for name, _ in encoder.named_modules() if name.rsplit(".", 1)[-1] in norms]
    if after:
        raise ValueError(f"sharing: {mode} needs an encoder whose output is its last block's output (BERT, RoBERTa, "
                         f"XLM-R, ELECTRA, ...); {type(encoder).__name__} normalises after its stack ({after[0]}).")


def block_inputs(encoder: nn.Module, block: nn.Module, input_ids, attention_mask) -> tuple[torch.Tensor, list, dict]:
    """Runs `encoder` until it calls `block` (a module of its layer stack) and stops it there: the hidden states of that
    call, (B, S, E), and its other arguments, with which any block can then be called as the encoder would."""
    handle = block.register_forward_pre_hook(_stop, with_kwargs=True)
    try:
        encoder(input_ids=input_ids, attention_mask=attention_mask)
        raise RuntimeError(f"{type(encoder).__name__} never called {type(block).__name__}")
    except _Captured as call:
        args, kwargs = list(call.layer_args), dict(call.layer_kwargs)
    finally:
        handle.remove()
    hidden = kwargs.pop("hidden_states") if "hidden_states" in kwargs else args.pop(0)  # (B, S, E)
    return hidden, args, kwargs


def run_block(block: nn.Module, hidden: torch.Tensor, args: list, kwargs: dict) -> torch.Tensor:
    """(B, S, E) -> (B, S, E): `block` called with the arguments `block_inputs` captured."""
    out = block(hidden, *args, **kwargs)
    return out[0] if isinstance(out, tuple) else out
