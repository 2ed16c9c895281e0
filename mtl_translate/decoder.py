"""One target language's decoder head: a pre-LN transformer decoder with cross-attention and a KV cache."""

import math

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention over `F.scaled_dot_product_attention`; caches keys/values for incremental decoding."""

    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads, self.dropout = num_heads, dropout
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(dim, dim) for _ in range(4))

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.num_heads, d // self.num_heads).transpose(1, 2)  # (B, H, T, D/H)

    def project_kv(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split_heads(self.k_proj(source)), self.split_heads(self.v_proj(source))

    def forward(self, x, kv: tuple[torch.Tensor, torch.Tensor], mask=None, is_causal=False) -> torch.Tensor:
        q = self.split_heads(self.q_proj(x))  # (B, H, T, D/H)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=mask, dropout_p=p, is_causal=is_causal)
        b, h, t, dh = out.shape
        return self.o_proj(out.transpose(1, 2).reshape(b, t, h * dh))


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.self_attn = Attention(dim, num_heads, dropout)
        self.cross_attn = Attention(dim, num_heads, dropout)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, cross_kv, cross_mask, self_cache: list | None = None):
        """x: (B, T, D). With `self_cache` (a [k, v] pair or empty list), appends this step's keys/values."""
        h = self.norm1(x)
        k, v = self.self_attn.project_kv(h)
        if self_cache is None:
            x = x + self.dropout(self.self_attn(h, (k, v), is_causal=True))
        else:
            if self_cache:
                k, v = torch.cat([self_cache[0], k], dim=2), torch.cat([self_cache[1], v], dim=2)
            self_cache[:] = [k, v]
            x = x + self.dropout(self.self_attn(h, (k, v)))  # one new query attends to every cached position
        x = x + self.dropout(self.cross_attn(self.norm2(x), cross_kv, mask=cross_mask))
        return x + self.dropout(self.ffn(self.norm3(x)))


def sinusoidal_positions(positions: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """(T,) -> (T, dim) fixed sin/cos position encodings (Vaswani et al., 2017): nothing to learn or store.
    Computed in float32, returned in `dtype` (the embeddings' dtype: bf16 weights stay bf16)."""
    inv_freq = torch.exp(torch.arange(0, dim, 2, device=positions.device) * (-math.log(10000.0) / dim))
    angles = positions[:, None].float() * inv_freq[None, :]  # (T, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).to(dtype)


def decoder_layers(config, count: int) -> nn.ModuleList:
    """`count` new decoder layers of the config's shape, marked for the fairseq init (`_init_weights` of the model)."""
    layers = nn.ModuleList(
        DecoderLayer(config.decoder_hidden_size, config.decoder_attention_heads, config.decoder_ffn_dim,
                     config.decoder_dropout)
        for _ in range(count)
    )
    for module in layers.modules():
        if isinstance(module, nn.Linear):
            module.head_init = "xavier"
    return layers


class DecoderHead(nn.Module):
    """Decoder for one target vocabulary. Output projection is tied to the input embedding (no extra weights).

    With `shared_decoder_layers: k`, the bottom k layers are the model's `shared_decoder` (every language runs the same
    ones, see `share`); `layers` holds this language's own layers above them; `blocks` is the whole stack in order."""

    def __init__(self, vocab_size: int, encoder_dim: int, config):
        super().__init__()
        self.dim = dim = config.decoder_hidden_size
        self.embed_scale = math.sqrt(dim)
        self.encoder_proj = nn.Linear(encoder_dim, dim) if encoder_dim != dim else nn.Identity()
        self.memory_norm = nn.LayerNorm(dim)  # encoder states arrive at whatever scale the encoder has
        self.embed_tokens = nn.Embedding(vocab_size, dim, padding_idx=config.target_pad_token_id)
        self.shared: list[DecoderLayer] = []  # a plain list: registered on the model once, not in every head
        self.layers = decoder_layers(config, config.decoder_layers - config.shared_decoder_layers)
        self.final_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(config.decoder_dropout)
        self.gradient_checkpointing = False  # set by `activation_checkpointing_enable`, read by the model's loss
        if isinstance(self.encoder_proj, nn.Linear):  # read by MTLPreTrainedModel._init_weights
            self.encoder_proj.head_init = "xavier"
        self.embed_tokens.head_init = "tied_embedding"

    def share(self, shared_layers: nn.ModuleList) -> None:
        """Runs the model's shared bottom layers below this head's own."""
        self.shared = list(shared_layers)

    @property
    def blocks(self) -> list[DecoderLayer]:
        return [*self.shared, *self.layers]

    def block_parameters(self) -> list[torch.Tensor]:
        """Every weight this head computes with: its own and the shared layers'."""
        return [*self.parameters(), *(p for layer in self.shared for p in layer.parameters())]

    def cross_kv(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-layer cross-attention keys/values of the encoder states, computed once per sentence."""
        memory = self.memory_norm(self.encoder_proj(memory))  # (B, S, D)
        return [layer.cross_attn.project_kv(memory) for layer in self.blocks]

    def forward(self, input_ids, cross_kv, cross_mask, start: int = 0, caches: list | None = None):
        """input_ids: (B, T) -> logits (B, T, V). `cross_mask`: (B, 1, 1, S) boolean, True = attend.

        With `caches` (one list per layer), decodes incrementally from position `start`.
        """
        positions = torch.arange(start, start + input_ids.shape[1], device=input_ids.device)
        x = self.embed_tokens(input_ids) * self.embed_scale  # (B, T, D)
        x = self.dropout(x + sinusoidal_positions(positions, self.dim, x.dtype))
        for i, layer in enumerate(self.blocks):
            x = layer(x, cross_kv[i], cross_mask, None if caches is None else caches[i])
        return self.output_projection(self.final_norm(x))  # (B, T, V)

    def output_projection(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, V) logits, through the input embedding (tied)."""
        return F.linear(x, self.embed_tokens.weight)
