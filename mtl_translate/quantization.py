"""Dynamic int8 quantization for CPU inference: `quantize_int8(model)`.

Every `nn.Linear` of the decoder heads becomes a dynamically quantized Linear: int8 weights, one scale per output
channel; activations are quantized per call and the matmul runs in int8 (fbgemm/oneDNN). Each head's output
projection, tied to its input embedding (`F.linear(x, embed_tokens.weight)`), gets an untied int8 copy (`output_proj`);
the embedding lookup stays float. That projection is a third or more of a head's work per decoding step (d=384 or
256, 8000 tokens), so leaving it float would keep much of the cost. The model decodes head by head afterwards: the
stacked path batches float weight tensors, which int8 layers do not have.

The encoder stays float unless `encoder=True`: it runs once per sentence, the heads once per token and language, and
on the quickstart model (1000 test rows) quantizing it too cost up to 0.6 BLEU (de) against at most 0.14 for the
heads alone; per-tensor activation scales suit the encoder's activations poorly.

Built on `torch.ao.nn.quantized.dynamic.Linear`: torch deprecates `torch.ao.quantization` and quantized tensors in
favour of torchao, but the plain int8 ops torchao's CPU path builds on (`torch._int_mm`, `_weight_int8pack_mm`) ran
25-50x slower than a float32 Linear here in eager mode, while the fbgemm kernels are still in torch 2.13 (pyproject:
torch < 2.14). Inference only: a quantized model cannot be trained or saved with `save_pretrained`.
"""

import warnings

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as Int8Linear
from torch.ao.quantization import per_channel_dynamic_qconfig

from .decoder import DecoderHead
from .modeling_mtl import MTLTranslationModel


def int8_linear(linear: nn.Linear) -> Int8Linear:
    linear.qconfig = per_channel_dynamic_qconfig
    with warnings.catch_warnings():  # "quantized tensor creation functions ... are deprecated", once per layer
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor", category=UserWarning)
        return Int8Linear.from_float(linear)


class Int8DecoderHead(DecoderHead):
    """A `DecoderHead` whose output projection runs through `output_proj`, the int8 copy of the embedding."""

    def output_projection(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_proj(x)  # (B, T, D) -> (B, T, V)


class Int8TranslationModel(MTLTranslationModel):
    """Decodes head by head: the stacked path (`StackedHeads`) batches float weight tensors, which int8 layers lack."""

    def generate(self, *args, stacked: bool | None = None, **kwargs) -> dict[str, torch.Tensor]:
        if stacked:
            raise ValueError("stacked=True: an int8 model decodes head by head (StackedHeads needs float weights).")
        return super().generate(*args, stacked=False, **kwargs)


@torch.no_grad()
def quantize_int8(model: MTLTranslationModel, encoder: bool = False) -> MTLTranslationModel:
    """Quantizes the decoder heads of `model` (and its encoder with `encoder=True`) in place for CPU inference, see
    the module docstring; returns it, in eval mode."""
    if model.device.type != "cpu":
        raise ValueError(f"int8 dynamic quantization runs on CPU; the model is on {model.device}.")
    model.eval().float()
    for head in model.decoders.values():
        vocab, dim = head.embed_tokens.weight.shape
        output = nn.Linear(dim, vocab, bias=False)
        output.weight = head.embed_tokens.weight  # quantized into a copy: the embedding itself stays float
        head.output_proj = int8_linear(output)
        head.__class__ = Int8DecoderHead
    parts = [model] if encoder else [model.decoders, model.shared_decoder]  # the shared layers are in no head
    for module in [m for part in parts for m in part.modules()]:
        for name, child in list(module.named_children()):
            if type(child) is nn.Linear:
                setattr(module, name, int8_linear(child))
    model.__class__ = Int8TranslationModel
    return model
