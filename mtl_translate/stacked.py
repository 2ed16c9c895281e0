"""Every decoder head as one: weights stacked on a leading language axis N, so all languages decode in one loop.

`StackedHeads(heads)` has the interface of one `DecoderHead` over a language-major batch of N*B rows (row n*B + b is
sentence b in language n), so `greedy_search` and `beam_search` run on it unchanged. Inside, activations are kept as
(N, B*T, D) and every projection is one batched matmul with the (N, in, out) stack of that projection's weights.
Vocabularies of different sizes are padded to the largest, V; the padded logits are -inf, so no search picks them.
Inference only: no dropout, no gradients.
"""

import weakref

import torch
import torch.nn.functional as F

from .decoder import sinusoidal_positions


def stack(tensors) -> torch.Tensor:
    return torch.stack(list(tensors))


class Linear:
    """N `nn.Linear`s (or several fused along the output), applied to x: (N, M, in) -> (N, M, out). One `nn.Linear`
    (a layer every language shares) is applied to all N*M rows at once, its weights held once."""

    def __init__(self, *groups):  # groups[j][n]: part j of language n's output features
        weight = torch.cat([stack(m.weight for m in ms) for ms in groups], dim=1)  # (N, out, in)
        self.weight = weight.transpose(1, 2).contiguous()  # (N, in, out): x @ W runs faster than x @ W.T here
        self.bias = torch.cat([stack(m.bias for m in ms) for ms in groups], dim=1)[:, None]  # (N, 1, out)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.shape[0] == 1:  # shared: (N*M, in) @ (in, out)
            return torch.addmm(self.bias[0], x.reshape(-1, x.shape[-1]), self.weight[0]).view(*x.shape[:-1], -1)
        return torch.baddbmm(self.bias, x, self.weight)


class LayerNorm:
    """N `nn.LayerNorm`s: x (N, M, D) -> (N, M, D); one (shared) broadcasts over N."""

    def __init__(self, norms):
        self.weight, self.bias = stack(m.weight for m in norms)[:, None], stack(m.bias for m in norms)[:, None]
        self.eps = norms[0].eps

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias, F.layer_norm(x, x.shape[-1:], eps=self.eps), self.weight)


def extend(cache: list, k: torch.Tensor, v: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Writes keys/values (N*B, H, T, D/H) at position `start` of the cache, a [keys, values] pair of buffers with
    room to spare (doubled when full; an empty list at first), and returns those up to here. Beam search reorders
    the filled positions of every cache tensor in place, which works on these buffers as on any cache."""
    end = start + k.shape[2]
    if not cache or cache[0].shape[2] < end:
        grown = [k.new_empty(*k.shape[:2], max(2 * end, 16), k.shape[3]) for _ in range(2)]
        for new, old in zip(grown, cache):
            new[:, :, :start] = old[:, :, :start]
        cache[:] = grown
    cache[0][:, :, start:end], cache[1][:, :, start:end] = k, v
    return cache[0][:, :, :end], cache[1][:, :, :end]


class StackedLayer:
    def __init__(self, layers, num_heads: int):
        self.num_heads = num_heads
        self.norm1, self.norm2, self.norm3 = (LayerNorm([getattr(l, name) for l in layers])
                                              for name in ("norm1", "norm2", "norm3"))
        attn = [l.self_attn for l in layers]
        self.qkv = Linear([a.q_proj for a in attn], [a.k_proj for a in attn], [a.v_proj for a in attn])
        self.o_proj = Linear([a.o_proj for a in attn])
        self.cross_q = Linear([l.cross_attn.q_proj for l in layers])
        self.cross_o = Linear([l.cross_attn.o_proj for l in layers])
        self.cross_kv = Linear([l.cross_attn.k_proj for l in layers], [l.cross_attn.v_proj for l in layers])
        self.ffn_in, self.ffn_out = Linear([l.ffn[0] for l in layers]), Linear([l.ffn[3] for l in layers])
        self.gelu = layers[0].ffn[1].approximate

    def split_heads(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """(N, B*T, D) -> (N*B, H, T, D/H)"""
        n, bt, d = x.shape
        return x.reshape(n * bt // t, t, self.num_heads, d // self.num_heads).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """(N*B, H, T, D/H) -> (N, B*T, D)"""
        nb, h, t, dh = x.shape
        return x.transpose(1, 2).reshape(n, nb // n * t, h * dh)

    def __call__(self, x, t: int, start: int, cross_kv, cross_mask, self_cache: list | None = None):
        """x: (N, B*T, D) at positions start..start+t-1. With `self_cache` (see `extend`), decodes incrementally."""
        n, d = x.shape[0], x.shape[-1]
        q, k, v = (self.split_heads(y, t) for y in self.qkv(self.norm1(x)).split(d, dim=-1))  # (N*B, H, T, D/H)
        if self_cache is None:
            attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            attn = F.scaled_dot_product_attention(q, *extend(self_cache, k, v, start))  # one new query, all keys
        x = x + self.o_proj(self.merge_heads(attn, n))
        q = self.split_heads(self.cross_q(self.norm2(x)), t)
        x = x + self.cross_o(self.merge_heads(F.scaled_dot_product_attention(q, *cross_kv, attn_mask=cross_mask), n))
        return x + self.ffn_out(F.gelu(self.ffn_in(self.norm3(x)), approximate=self.gelu))


class StackedHeads:
    """N `DecoderHead`s of one architecture (vocabulary sizes may differ) as one head over N*B rows."""

    @torch.no_grad()
    def __init__(self, heads):
        first = heads[0]
        self.n, self.dim, self.embed_scale = len(heads), first.dim, first.embed_scale
        self.num_heads = first.blocks[0].self_attn.num_heads
        sizes = [h.embed_tokens.num_embeddings for h in heads]
        w = first.embed_tokens.weight
        self.unembed = w.new_zeros(self.n, self.dim, max(sizes))  # (N, D, V): output projection = input embedding.T
        self.vocab_bias = w.new_full((self.n, 1, max(sizes)), float("-inf"))  # (N, 1, V): -inf on padding
        for n, (head, size) in enumerate(zip(heads, sizes)):
            self.unembed[n, :, :size] = head.embed_tokens.weight.T
            self.vocab_bias[n, :, :size] = 0
        identity = isinstance(first.encoder_proj, torch.nn.Identity)
        self.encoder_proj = None if identity else Linear([h.encoder_proj for h in heads])
        self.memory_norm = LayerNorm([h.memory_norm for h in heads])
        self.final_norm = LayerNorm([h.final_norm for h in heads])
        self.blocks = [StackedLayer(list({id(h.blocks[i]): h.blocks[i] for h in heads}.values()), self.num_heads)
                       for i in range(len(first.blocks))]  # a layer the heads share (same module) is held once

    def cross_kv(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """memory: the shared encoder states (B, S, E) -> per layer (K, V), each (N*B, H, S, D/H)."""
        b, s, e = memory.shape
        m = memory.reshape(1, b * s, e).expand(self.n, -1, -1)  # (N, B*S, E)
        if self.encoder_proj is not None:
            m = self.encoder_proj(m)
        m = self.memory_norm(m)  # (N, B*S, D)
        return [tuple(layer.split_heads(y, s) for y in layer.cross_kv(m).split(self.dim, dim=-1))
                for layer in self.blocks]

    def __call__(self, input_ids, cross_kv, cross_mask, start: int = 0, caches: list | None = None):
        """input_ids: (N*B, T) -> logits (N*B, T, V); `cross_mask`: (N*B, 1, 1, S), as `DecoderHead.forward`."""
        nb, t = input_ids.shape
        langs = torch.arange(self.n, device=input_ids.device)[:, None]  # (N, 1)
        x = self.unembed.transpose(1, 2)[langs, input_ids.view(self.n, -1)]  # (N, B*T, D)
        positions = torch.arange(start, start + t, device=input_ids.device)
        x = x.view(nb, t, self.dim) * self.embed_scale  # (N*B, T, D)
        x = x + sinusoidal_positions(positions, self.dim, x.dtype)
        x = x.view(self.n, -1, self.dim)
        for i, layer in enumerate(self.blocks):
            x = layer(x, t, start, cross_kv[i], cross_mask, None if caches is None else caches[i])
        logits = torch.baddbmm(self.vocab_bias, self.final_norm(x), self.unembed)  # (N, B*T, V)
        return logits.view(nb, t, -1)


def trim(ids: torch.Tensor, eos: int) -> torch.Tensor:
    """One language's rows of a stacked decode, cut to the width its own decode gives: its longest output."""
    ended = ids == eos  # (B, T)
    lengths = torch.where(ended.any(dim=1), ended.int().argmax(dim=1) + 1, ids.shape[1])  # (B,)
    return ids[:, : max([1, *lengths.tolist()])]


def versions(model, langs) -> list[tuple[int, int]]:
    """Where each head parameter lives and how often it was written in place (optimizer step, `load_state_dict`)."""
    return [(p.data_ptr(), p._version) for lang in langs for p in model.decoders[lang].block_parameters()]


STACKS = weakref.WeakKeyDictionary()  # {model: {langs: (versions, source tensors, StackedHeads)}}


def stacked_heads(model, langs: list[str]) -> StackedHeads:
    """The stack of `model.decoders[lang] for lang in langs`, cached per model (not in its `__dict__`: a deep copy or
    pickle of the model leaves it out) and rebuilt as soon as a head parameter was written in place (its version
    counter moved) or replaced (`.to()`, `.data = ...`: its storage moved; the cache holds the old tensors, so no new
    one can take their address). Stale stacks are dropped."""
    cache = STACKS.setdefault(model, {})
    langs = tuple(langs)
    if langs not in cache or cache[langs][0] != versions(model, langs):
        for stale in [key for key, (v, _, _) in cache.items() if v != versions(model, key)]:
            del cache[stale]
        heads = [model.decoders[lang] for lang in langs]
        sources = [p.detach() for head in heads for p in head.block_parameters()]
        cache[langs] = (versions(model, langs), sources, StackedHeads(heads))
    return cache[langs][2]
