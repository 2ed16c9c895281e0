"""Greedy and beam-search decoding for one decoder head (or `StackedHeads`: all heads as one), from encoder states
computed once for all heads."""

import torch

SETTINGS = ("num_beams", "max_new_tokens", "length_penalty", "no_repeat_ngram_size")  # what `decode` takes


def check_generation_settings(settings: dict) -> None:
    """Bad settings are errors, checked once per call: in the loops below `num_beams=0` would quietly mean greedy
    and `max_new_tokens=0` empty output, and an unknown name (`do_sample`) would be a TypeError deep inside."""
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown generation setting(s) {unknown}; the supported ones are {list(SETTINGS)}.")
    for name, low in (("num_beams", 1), ("max_new_tokens", 1), ("no_repeat_ngram_size", 0)):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")


def expand_kv(cross_kv, n: int):
    """Repeat each sentence's cross-attention keys/values `n` times (one copy per beam)."""
    return [(k.repeat_interleave(n, dim=0), v.repeat_interleave(n, dim=0)) for k, v in cross_kv]


def pad_sequences(seqs: list[list[int]], pad: int) -> torch.Tensor:
    width = max(1, max(len(s) for s in seqs))
    return torch.tensor([s + [pad] * (width - len(s)) for s in seqs], dtype=torch.long)


def ban_repeated_ngrams(logits: torch.Tensor, seqs: torch.Tensor, n: int) -> torch.Tensor:
    """HF's `no_repeat_ngram_size`: -inf for every token that would complete an n-gram already in its row.
    logits: (B, V) next-token scores; seqs: (B, t) the tokens generated so far."""
    if n <= 0 or seqs.shape[1] < n:
        return logits
    ngrams = seqs.unfold(1, n, 1)  # (B, t-n+1, n)
    prefix = seqs[:, seqs.shape[1] - n + 1 :]  # (B, n-1) the last n-1 tokens
    seen = (ngrams[:, :, :-1] == prefix[:, None]).all(-1)  # (B, t-n+1) n-grams that start like the next one
    hits = torch.zeros(logits.shape, device=logits.device).scatter_add_(1, ngrams[:, :, -1], seen.float())  # (B, V)
    return logits.masked_fill(hits > 0, float("-inf"))


@torch.no_grad()
def greedy_search(head, cross_kv, cross_mask, *, bos: int, eos: int, pad: int, max_new_tokens: int,
                  no_repeat_ngram_size: int = 0) -> torch.Tensor:
    """Returns (B, T) token ids, EOS included, padded with `pad`; stops as soon as every sentence has ended."""
    batch = cross_mask.shape[0]
    tokens = torch.full((batch, 1), bos, dtype=torch.long, device=cross_mask.device)
    caches = [[] for _ in head.layers]
    done = torch.zeros(batch, dtype=torch.bool, device=cross_mask.device)
    out = []
    for step in range(max_new_tokens):
        logits = head(tokens, cross_kv, cross_mask, start=step, caches=caches)[:, -1]  # (B, V)
        if no_repeat_ngram_size and out:
            logits = ban_repeated_ngrams(logits, torch.cat(out, dim=1), no_repeat_ngram_size)
        tokens = logits.argmax(dim=-1).masked_fill(done, pad)[:, None]  # (B, 1)
        out.append(tokens)
        done |= tokens[:, 0] == eos
        if done.all():
            break
    return torch.cat(out, dim=1)


@torch.no_grad()
def beam_search(
    head, cross_kv, cross_mask, *, bos: int, eos: int, pad: int, max_new_tokens: int, num_beams: int,
    length_penalty: float = 1.0, no_repeat_ngram_size: int = 0,
) -> torch.Tensor:
    """Beam search with a KV cache. Hypotheses are ranked by sum of log-probs / length ** length_penalty.

    A sentence is done once it holds `num_beams` finished hypotheses and its best live beam cannot beat the
    worst of them any more (HF's `early_stopping=False` rule); live beams compete at `max_new_tokens`.
    """
    batch, k, device = cross_mask.shape[0], num_beams, cross_mask.device
    cross_kv, cross_mask = expand_kv(cross_kv, k), cross_mask.repeat_interleave(k, dim=0)
    scores = torch.zeros(batch, k, device=device)
    scores[:, 1:] = float("-inf")  # all beams start identical: keep only the first at step 0
    seqs = torch.empty(batch * k, 0, dtype=torch.long, device=device)
    tokens = torch.full((batch * k, 1), bos, dtype=torch.long, device=device)
    caches = [[] for _ in head.layers]
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]  # best first, at most K
    done = [False] * batch

    def add(b: int, score: float, hyp: list[int]) -> None:
        finished[b] = sorted([*finished[b], (score / max(1, len(hyp)) ** length_penalty, hyp)], reverse=True)[:k]

    for step in range(max_new_tokens):
        logp = head(tokens, cross_kv, cross_mask, start=step, caches=caches)[:, -1].float().log_softmax(-1)
        logp = ban_repeated_ngrams(logp, seqs, no_repeat_ngram_size)  # (B*K, V)
        vocab = logp.shape[-1]
        cand = (scores.view(-1, 1) + logp).view(batch, k * vocab)
        top_scores, top_idx = cand.topk(2 * k, dim=1)  # (B, 2K): at most K of them end in EOS
        beam, tok = top_idx // vocab, top_idx % vocab
        is_eos = tok == eos
        for b, j in is_eos[:, :k].nonzero().tolist():  # EOS among the K best: a finished hypothesis
            if not done[b]:
                add(b, top_scores[b, j].item(), seqs[b * k + beam[b, j]].tolist() + [eos])
        keep = (is_eos.long() * 2 * k + torch.arange(2 * k, device=device)).argsort(dim=1)[:, :k]  # best K non-EOS
        rows = (torch.arange(batch, device=device)[:, None] * k + beam.gather(1, keep)).view(-1)  # (B*K,)
        tokens = tok.gather(1, keep).view(-1, 1)
        scores = top_scores.gather(1, keep)  # (B, K), best first
        seqs = torch.cat([seqs[rows], tokens], dim=1)
        for t in (t for cache in caches for t in cache):  # (rows, H, positions or more, D/H) keys and values
            t[:, :, : step + 1] = t[:, :, : step + 1].index_select(0, rows)  # in place: spare room is not copied
        best_live = (scores[:, 0] / (step + 1) ** length_penalty).tolist()
        done = [d or (len(f) == k and best_live[b] <= f[-1][0]) for b, (d, f) in enumerate(zip(done, finished))]
        if all(done):
            break
    for b in range(batch):
        if not done[b]:
            for j in range(k):
                add(b, scores[b, j].item(), seqs[b * k + j].tolist())
    return pad_sequences([f[0][1] for f in finished], pad).to(device)


def decode(head, cross_kv, cross_mask, *, bos: int, eos: int, pad: int, num_beams: int, max_new_tokens: int,
           length_penalty: float, no_repeat_ngram_size: int) -> torch.Tensor:
    """Greedy search for one beam, beam search for more; `generation_settings` gives the last four arguments."""
    ids = dict(bos=bos, eos=eos, pad=pad, max_new_tokens=max_new_tokens, no_repeat_ngram_size=no_repeat_ngram_size)
    if num_beams > 1:
        return beam_search(head, cross_kv, cross_mask, num_beams=num_beams, length_penalty=length_penalty, **ids)
    return greedy_search(head, cross_kv, cross_mask, **ids)
