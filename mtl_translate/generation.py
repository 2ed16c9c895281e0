"""Greedy and beam-search decoding for one decoder head (or `StackedHeads`: all heads as one), from encoder states
computed once for all heads. With a `Pieces` table the output is always valid text (`Utf8Guard`); with `Masks` it
holds every mask token of its source exactly once and each counted character (`COUNTED`: brackets, `<>`, tabs, `%`) as
often as its source does (`MaskGuard`)."""

from dataclasses import dataclass

import torch

# Characters an output holds as often as its source (outside its masked spans): pofilter's `brackets` and `tabs` checks
# count them, a `<` or `>` the source lacks opens a tag (`xmltags`), and a `%` of the model's own starts a conversion
# that `msgfmt -c` rejects (`%]`). Their count says nothing of word order.
COUNTED = "()[]{}<>\t%"
SETTINGS = ("num_beams", "max_new_tokens", "length_penalty", "no_repeat_ngram_size", "repetition_penalty")  # decode's


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
    penalty = settings["repetition_penalty"]
    if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or not penalty > 0:
        raise ValueError(f"repetition_penalty must be a number > 0 (1.0: none), got {penalty!r}.")


def utf8_automaton() -> torch.Tensor:
    """UTF-8 as a state machine: (8, 256) the state after each byte, -1 where the byte is invalid there. States: 0
    between characters; 1-3 that many continuation bytes (80-BF) to come; 4-7 right after the leads E0, ED, F0, F4,
    whose next byte has a narrower range (no overlong form, no surrogate, nothing above U+10FFFF). C0, C1 and
    F5-FF are valid nowhere."""
    after = torch.full((8, 256), -1, dtype=torch.int8)
    after[0, :0x80] = 0
    after[0, 0xC2:0xE0], after[0, 0xE1:0xF0], after[0, 0xF1:0xF4] = 1, 2, 3
    after[0, 0xE0], after[0, 0xED], after[0, 0xF0], after[0, 0xF4] = 4, 5, 6, 7
    after[1, 0x80:0xC0], after[2, 0x80:0xC0], after[3, 0x80:0xC0] = 0, 1, 2
    after[4, 0xA0:0xC0], after[5, 0x80:0xA0], after[6, 0x90:0xC0], after[7, 0x80:0x90] = 1, 1, 2, 2
    return after


def byte_piece_offset(sp_model) -> int | None:
    """The id of `<0x00>` in a SentencePiece model with byte fallback (`<0x00>`..`<0xFF>` follow it, as SentencePiece
    lays them out); None without byte pieces. Saved as `generation_config.byte_piece_offsets[lang]`."""
    offset = sp_model.piece_to_id("<0x00>")
    if not sp_model.is_byte(offset):
        return None
    if any(sp_model.id_to_piece(offset + b) != f"<0x{b:02X}>" for b in range(256)):
        raise ValueError(f"the tokenizer's byte pieces <0x00>..<0xFF> are not consecutive ids from {offset}; "
                         f"train it with TargetTokenizer.train (SentencePiece byte_fallback).")
    return offset


def counted_pieces(sp_model) -> dict:
    """{"pieces": [[id, the COUNTED characters it writes], ...], "single": {character: the id writing just it}} of a
    SentencePiece model (byte pieces write their ASCII byte); saved as `generation_config.counted_pieces[lang]`."""
    pieces, single = [], {}
    for i in range(sp_model.get_piece_size()):
        if sp_model.is_byte(i):
            byte = int(sp_model.id_to_piece(i)[1:-1], 16)
            text = chr(byte) if byte < 0x80 else ""
        else:
            text = "" if sp_model.is_control(i) or sp_model.is_unknown(i) else sp_model.id_to_piece(i)
        counted = "".join(ch for ch in text if ch in COUNTED)
        if counted:
            pieces.append([i, counted])
            if text == counted and len(text) == 1 and (text not in single or not sp_model.is_byte(i)):
                single[text] = i  # a piece of its own before the byte piece
    return {"pieces": pieces, "single": single}


@dataclass(frozen=True)
class Counts:
    """The `COUNTED` characters of each sentence's source and how each language's pieces write them: `table`
    (L, V, C) int, how many of each character each piece writes; `single` (L, C) the piece that writes one alone, -1
    where a vocabulary has none (that character is then not constrained); `need` (L*B, C) the source's counts, rows
    language-major as `Pieces` lays them out."""

    table: torch.Tensor
    single: torch.Tensor
    need: torch.Tensor

    @classmethod
    def build(cls, recorded: list[dict | None], need: torch.Tensor, width: int) -> "Counts":
        """From each language's `counted_pieces` (None: unknown, nothing constrained) and `need` (B, C)."""
        table = torch.zeros(len(recorded), width, len(COUNTED), dtype=torch.int16)
        single = torch.full((len(recorded), len(COUNTED)), -1, dtype=torch.long)
        for lang, pieces in enumerate(recorded):
            for i, chars in (pieces or {}).get("pieces", []):
                table[lang, i] = torch.tensor([chars.count(ch) for ch in COUNTED], dtype=torch.int16)
            for ch, i in (pieces or {}).get("single", {}).items():
                single[lang, COUNTED.index(ch)] = i
        device = need.device
        return cls(table.to(device), single.to(device), need.repeat(len(recorded), 1))


@dataclass(frozen=True)
class Pieces:
    """What decoding must know of each language's pieces to keep its output valid text: `after` (L, 8, V), for
    each language, UTF-8 state (`utf8_automaton`) and piece, the state after that piece, -1 where it may not come
    next. Byte pieces follow the automaton; every other piece may only come between characters; the `never` ids
    (pad, bos, unk) never. The rows of a search are language-major (L blocks of equal size, as `StackedHeads` lays
    them out; L = 1 for one head)."""

    after: torch.Tensor

    @classmethod
    def build(cls, offsets: list[int | None], never, width: int, device) -> "Pieces":
        """One table per language from its byte-piece offset (`byte_piece_offset`), `width` pieces wide."""
        after = torch.full((len(offsets), 8, width), -1, dtype=torch.int8)
        after[:, 0] = 0
        for table, offset in zip(after, offsets):
            if offset is not None:
                table[:, offset : offset + 256] = utf8_automaton()
        after[:, :, list(never)] = -1
        return cls(after.to(device))


class Utf8Guard:
    """The UTF-8 state of each row of a search; `mask` sets -inf on every piece that may not come next. So the bytes
    of an output always decode: no stray continuation byte, no EOS or other piece inside a character (one still
    open at `max_new_tokens` is dropped by the tokenizer), and no pad, bos or unk anywhere."""

    def __init__(self, pieces: Pieces, rows: int):
        self.after = pieces.after  # (L, 8, V)
        device = self.after.device
        self.lang = torch.arange(rows, device=device) // (rows // self.after.shape[0])  # (R,) language of each row
        self.state = torch.zeros(rows, dtype=torch.long, device=device)  # (R,)

    def mask(self, logits: torch.Tensor) -> torch.Tensor:
        """logits: (R, V) -> (R, V) with -inf where a piece may not come next."""
        return logits.masked_fill(self.after[self.lang, self.state] < 0, float("-inf"))

    def step(self, tokens: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        """tokens: (R,) the pieces just chosen; rows: (R,) the row each one extends (beam search reorders). A masked
        piece comes only where nothing else could (a finished row's padding): its row starts over between characters."""
        if rows is not None:
            self.state = self.state[rows]
        self.state = self.after[self.lang, self.state, tokens].long().clamp(min=0)


@dataclass(frozen=True)
class Masks:
    """Which mask tokens (placeholders.py: `⟨0⟩`, `⟨1⟩`, ...) each sentence must emit: `ids` (L, K) the piece id of
    `⟨k⟩` in each language's vocabulary, a row of -1 for a language without them (its rows need none); `need`
    (L*B, K) bool, `⟨k⟩` is in the sentence's source, rows language-major as `Pieces` lays them out; `ordered`
    (L*B, K) bool or None, the tokens that must come out in source order (unnumbered conversions: `%s ... %s`);
    `counts`: the `COUNTED` characters each output must hold as often as its source, or None."""

    ids: torch.Tensor
    need: torch.Tensor
    ordered: torch.Tensor | None = None
    counts: Counts | None = None


class MaskGuard:
    """Each mask token of the source comes out exactly once, so restoring the spans loses no placeholder, option or
    path: a token already placed or not in the source is banned, EOS is banned while one is missing, and once the
    tokens left (`max_new_tokens` minus those emitted) are no more than the missing ones, only those may come.
    Ordered tokens (`Masks.ordered`) come in source order: `%s ... %s` is never reordered into `%2$s ... %1$s`,
    which C accepts but Python does not, and which translators and pofilter read as a changed variable.
    With `Masks.counts`, each `COUNTED` character likewise: a piece that would write one more than the source holds
    is banned, EOS waits for the ones owed, and at the budget's end the character's own piece is forced.
    Repetition penalty and no-repeat-ngram cannot ban a missing token: it is not in the row yet."""

    def __init__(self, masks: Masks, beams: int, max_new_tokens: int):
        need = masks.need.repeat_interleave(beams, dim=0)  # (R, K): each sentence's rows (beams) in a block
        self.lang = torch.arange(need.shape[0], device=need.device) // (need.shape[0] // masks.ids.shape[0])  # (R,)
        ids = masks.ids[self.lang]  # (R, K)
        self.index, self.known = ids.clamp(min=0), ids >= 0  # a language without mask pieces: all False
        self.missing = need & self.known  # (R, K) still to place
        self.ordered = None if masks.ordered is None else masks.ordered.repeat_interleave(beams, dim=0) & self.known
        self.left = max_new_tokens  # tokens still to come, this one included
        self.counts = masks.counts
        if self.counts is not None:
            table = self.counts.table  # (L, V, C)
            self.counted = table.gt(0).any(-1).any(0).nonzero()[:, 0]  # (S,) pieces writing a counted character
            self.writes = table[:, self.counted][self.lang]  # (R, S, C)
            single = self.counts.single[self.lang]  # (R, C), -1: no such piece
            self.single_index = single.clamp(min=0)
            self.owed = self.counts.need.repeat_interleave(beams, dim=0).masked_fill(single < 0, 0)  # (R, C)

    def mask(self, logits: torch.Tensor, eos: int) -> torch.Tensor:
        """logits: (R, V) after the other rules -> (R, V) with -inf where the next piece may not come. Works on the
        K mask columns and the S counted pieces only (a few copies of the logits per step, no (R, V) table): a
        language without mask pieces has K copies of column 0, left as they are."""
        banned = self.known & ~self.missing  # (R, K) placed already, or not in the source
        if self.ordered is not None:  # an ordered token waits for the ordered ones before it
            waiting = (self.missing & self.ordered).int()
            banned |= self.ordered & (waiting.cumsum(1) - waiting > 0)
        scores = logits.gather(1, self.index).masked_fill(banned, float("-inf"))  # (R, K)
        count = self.missing.sum(dim=1, keepdim=True)  # (R, 1)
        if self.counts is not None:
            count = count + self.owed.sum(dim=1, keepdim=True)
            over = (self.writes > self.owed[:, None]).any(-1)  # (R, S): more than the source holds
            single = logits.gather(1, self.single_index)  # (R, C) before the bans: forced pieces come
            logits = logits.index_copy(1, self.counted, logits[:, self.counted].masked_fill(over, float("-inf")))
        end = logits[:, eos : eos + 1].masked_fill(count > 0, float("-inf"))  # (R, 1)
        forced = (count > 0) & (count >= self.left)  # (R, 1): no room for anything else
        if forced.any():
            logits = logits.masked_fill(forced, float("-inf"))
            # a forced token the UTF-8 guard banned (a character left open) still comes; the tokenizer drops the bytes
            scores = torch.where(forced & self.missing, scores.clamp(min=-1e4), scores)
            if self.counts is not None:
                owed = forced & (self.owed > 0)  # (R, C)
                logits = logits.scatter(1, self.single_index, torch.where(
                    owed, single.clamp(min=-1e4), logits.gather(1, self.single_index)))
        logits = logits.scatter(1, self.index, scores)
        logits[:, eos : eos + 1] = end
        return logits

    def step(self, tokens: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        """tokens: (R,) the pieces just chosen; rows: (R,) the row each one extends (beam search reorders)."""
        if rows is not None:
            self.missing = self.missing[rows]
        self.missing &= self.index != tokens[:, None]
        if self.counts is not None:
            if rows is not None:
                self.owed = self.owed[rows]
            self.owed = (self.owed - self.counts.table[self.lang, tokens]).clamp(min=0)
        self.left -= 1


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


def penalize_repeats(logits: torch.Tensor, seqs: torch.Tensor, penalty: float) -> torch.Tensor:
    """HF's `repetition_penalty`: the logit of every token already in its row is divided by `penalty` where
    positive, multiplied where negative. logits: (B, V); seqs: (B, t) the tokens generated so far."""
    if penalty == 1.0 or seqs.shape[1] == 0:
        return logits
    seen = logits.gather(1, seqs)  # (B, t)
    return logits.scatter(1, seqs, torch.where(seen > 0, seen / penalty, seen * penalty))


@torch.no_grad()
def greedy_search(head, cross_kv, cross_mask, *, bos: int, eos: int, pad: int, max_new_tokens: int,
                  no_repeat_ngram_size: int = 0, repetition_penalty: float = 1.0, pieces: Pieces | None = None,
                  masks: Masks | None = None, mean_logprobs: bool = False):
    """Returns (B, T) token ids, EOS included, padded with `pad`; stops as soon as every sentence has ended. With
    `mean_logprobs`, also (B,) each output's mean token log-probability under the model (before any rule), EOS
    included: how sure the model was of what it wrote."""
    batch = cross_mask.shape[0]
    tokens = torch.full((batch, 1), bos, dtype=torch.long, device=cross_mask.device)
    caches = [[] for _ in head.blocks]
    done = torch.zeros(batch, dtype=torch.bool, device=cross_mask.device)
    guard = Utf8Guard(pieces, batch) if pieces is not None else None
    placing = MaskGuard(masks, 1, max_new_tokens) if masks is not None else None
    total = torch.zeros(batch, device=cross_mask.device)  # (B,) summed log-probs of the chosen tokens
    out = []
    for step in range(max_new_tokens):
        logits = head(tokens, cross_kv, cross_mask, start=step, caches=caches)[:, -1]  # (B, V)
        model_logits = logits
        if out:
            seqs = torch.cat(out, dim=1)  # (B, step)
            logits = ban_repeated_ngrams(penalize_repeats(logits, seqs, repetition_penalty), seqs,
                                         no_repeat_ngram_size)
        if guard is not None:
            logits = guard.mask(logits)
        if placing is not None:
            logits = placing.mask(logits, eos)
        tokens = logits.argmax(dim=-1).masked_fill(done, pad)[:, None]  # (B, 1)
        if mean_logprobs:
            chosen = model_logits.float().log_softmax(-1).gather(1, tokens)[:, 0]  # (B,)
            total += chosen.masked_fill(done, 0)
        if guard is not None:
            guard.step(tokens[:, 0])
        if placing is not None:
            placing.step(tokens[:, 0])
        out.append(tokens)
        done |= tokens[:, 0] == eos
        if done.all():
            break
    ids = torch.cat(out, dim=1)
    if not mean_logprobs:
        return ids
    ended = ids == eos  # (B, T)
    lengths = torch.where(ended.any(dim=1), ended.int().argmax(dim=1) + 1, ids.shape[1])  # (B,) EOS included
    return ids, total / lengths


@torch.no_grad()
def beam_search(
    head, cross_kv, cross_mask, *, bos: int, eos: int, pad: int, max_new_tokens: int, num_beams: int,
    length_penalty: float = 1.0, no_repeat_ngram_size: int = 0, repetition_penalty: float = 1.0,
    pieces: Pieces | None = None, masks: Masks | None = None, mean_logprobs: bool = False,
):
    """Beam search with a KV cache. Hypotheses are ranked by sum of log-probs / length ** length_penalty.

    A sentence is done once it holds `num_beams` finished hypotheses and its best live beam cannot beat the
    worst of them any more (HF's `early_stopping=False` rule); live beams compete at `max_new_tokens`.
    `mean_logprobs` as in `greedy_search`, of the hypothesis chosen (the model's log-probs, before any rule).
    """
    batch, k, device = cross_mask.shape[0], num_beams, cross_mask.device
    cross_kv, cross_mask = expand_kv(cross_kv, k), cross_mask.repeat_interleave(k, dim=0)
    scores = torch.zeros(batch, k, device=device)
    scores[:, 1:] = float("-inf")  # all beams start identical: keep only the first at step 0
    sums = torch.zeros(batch, k, device=device)  # (B, K) the model's log-probs of each beam's tokens, summed
    seqs = torch.empty(batch * k, 0, dtype=torch.long, device=device)
    tokens = torch.full((batch * k, 1), bos, dtype=torch.long, device=device)
    caches = [[] for _ in head.blocks]
    finished: list[list[tuple[float, list[int], float]]] = [[] for _ in range(batch)]  # best first, at most K
    done = [False] * batch
    guard = Utf8Guard(pieces, batch * k) if pieces is not None else None
    placing = MaskGuard(masks, k, max_new_tokens) if masks is not None else None

    def add(b: int, score: float, hyp: list[int], logprob: float) -> None:
        finished[b] = sorted([*finished[b], (score / max(1, len(hyp)) ** length_penalty, hyp, logprob)],
                             reverse=True)[:k]

    for step in range(max_new_tokens):
        logits = head(tokens, cross_kv, cross_mask, start=step, caches=caches)[:, -1].float()  # (B*K, V)
        model_logp = logits.log_softmax(-1)
        logp = ban_repeated_ngrams(model_logp if repetition_penalty == 1.0 else penalize_repeats(
            logits, seqs, repetition_penalty).log_softmax(-1), seqs, no_repeat_ngram_size)
        if guard is not None:
            logp = guard.mask(logp)
        if placing is not None:
            logp = placing.mask(logp, eos)
        vocab = logp.shape[-1]
        cand = (scores.view(-1, 1) + logp).view(batch, k * vocab)
        top_scores, top_idx = cand.topk(2 * k, dim=1)  # (B, 2K): at most K of them end in EOS
        beam, tok = top_idx // vocab, top_idx % vocab
        top_sums = (sums.view(-1, 1) + model_logp).view(batch, k * vocab).gather(1, top_idx) if mean_logprobs \
            else torch.zeros_like(top_scores)  # (B, 2K)
        is_eos = tok == eos
        for b, j in is_eos[:, :k].nonzero().tolist():  # EOS among the K best: a finished hypothesis
            if not done[b] and top_scores[b, j] > float("-inf"):  # not a banned EOS of a beam that is no beam
                add(b, top_scores[b, j].item(), seqs[b * k + beam[b, j]].tolist() + [eos], top_sums[b, j].item())
        keep = (is_eos.long() * 2 * k + torch.arange(2 * k, device=device)).argsort(dim=1)[:, :k]  # best K non-EOS
        rows = (torch.arange(batch, device=device)[:, None] * k + beam.gather(1, keep)).view(-1)  # (B*K,)
        tokens = tok.gather(1, keep).view(-1, 1)
        scores, sums = top_scores.gather(1, keep), top_sums.gather(1, keep)  # (B, K), best first
        seqs = torch.cat([seqs[rows], tokens], dim=1)
        if guard is not None:
            guard.step(tokens[:, 0], rows)
        if placing is not None:
            placing.step(tokens[:, 0], rows)
        for t in (t for cache in caches for t in cache):  # (rows, H, positions or more, D/H) keys and values
            t[:, :, : step + 1] = t[:, :, : step + 1].index_select(0, rows)  # in place: spare room is not copied
        best_live = (scores[:, 0] / (step + 1) ** length_penalty).tolist()
        done = [d or (len(f) == k and best_live[b] <= f[-1][0]) for b, (d, f) in enumerate(zip(done, finished))]
        if all(done):
            break
    for b in range(batch):
        if not done[b]:
            for j in range(k):
                add(b, scores[b, j].item(), seqs[b * k + j].tolist(), sums[b, j].item())
    ids = pad_sequences([f[0][1] for f in finished], pad).to(device)
    if not mean_logprobs:
        return ids
    return ids, torch.tensor([f[0][2] / len(f[0][1]) for f in finished], device=device)


def decode(head, cross_kv, cross_mask, *, bos: int, eos: int, pad: int, pieces: Pieces | None, num_beams: int,
           max_new_tokens: int, length_penalty: float, no_repeat_ngram_size: int, repetition_penalty: float,
           masks: Masks | None = None, mean_logprobs: bool = False):
    """Greedy search for one beam, beam search for more; `generation_settings` gives the five settings."""
    ids = dict(bos=bos, eos=eos, pad=pad, pieces=pieces, max_new_tokens=max_new_tokens, masks=masks,
               no_repeat_ngram_size=no_repeat_ngram_size, repetition_penalty=repetition_penalty,
               mean_logprobs=mean_logprobs)
    if num_beams > 1:
        return beam_search(head, cross_kv, cross_mask, num_beams=num_beams, length_penalty=length_penalty, **ids)
    return greedy_search(head, cross_kv, cross_mask, **ids)
