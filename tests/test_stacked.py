"""The translate-all fast path: every head in one stacked decode gives exactly what the heads give one by one."""

import codecs

import pytest
import torch
from transformers import BertConfig

from mtl_translate import MTLConfig, MTLTranslationModel
from mtl_translate.stacked import STACKS, StackedHeads, stacked_heads

VOCABS = {"de": 23, "fr": 17, "es": 31, "it": 12}  # different vocabulary sizes on purpose
EOS = 3


def config(**kwargs):
    encoder = BertConfig(vocab_size=100, hidden_size=48, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=96, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    defaults = dict(encoder=encoder.to_dict(), languages=list(VOCABS), target_vocab_sizes=VOCABS, decoder_layers=2,
                    decoder_hidden_size=32, decoder_attention_heads=2, decoder_ffn_dim=64, decoder_dropout=0.0,
                    max_target_positions=32, label_smoothing=0.0)
    return MTLConfig(**{**defaults, **kwargs})


def sources(batch: int, seed: int, padded: bool = True):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, 100, (batch, 9), generator=g)
    attention_mask = torch.ones_like(input_ids)
    if padded:
        for i in range(batch):
            attention_mask[i, 3 + (i + seed) % 6:] = 0
    return input_ids, attention_mask


def fit(model, steps: int = 30):
    """A few steps on random targets of 0-9 tokens + EOS, so that outputs end at many different lengths
    (a random model repeats one token forever)."""
    input_ids, attention_mask = sources(12, seed=0)
    g = torch.Generator().manual_seed(1)
    labels = {}
    for lang, vocab in model.config.target_vocab_sizes.items():
        labels[lang] = torch.full((12, 12), -100)
        for i in range(12):
            n = int(torch.randint(0, 10, (), generator=g))
            labels[lang][i, :n] = torch.randint(4, vocab, (n,), generator=g)
            labels[lang][i, n] = EOS
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        model(input_ids, attention_mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tensors this small only lose time to intra-op threads (and to any other job on the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    return fit(MTLTranslationModel(config()))


def assert_same(a: dict, b: dict):
    assert list(a) == list(b)
    for lang in a:
        assert torch.equal(a[lang], b[lang]), (lang, a[lang], b[lang])


def one_by_one(model, input_ids, attention_mask, **kwargs):
    return {lang: model.generate(input_ids, attention_mask, langs=[lang], stacked=False, **kwargs)[lang]
            for lang in model.decoders}


def test_stacked_logits_equal_each_heads_logits(fitted):
    input_ids, attention_mask = sources(3, seed=4)
    memory = fitted.encode(input_ids, attention_mask, {"de": slice(None)})["de"]
    mask = attention_mask[:, None, None, :].bool()
    stack = StackedHeads(list(fitted.decoders.values()))
    targets = torch.cat([torch.randint(0, v, (3, 5)) for v in VOCABS.values()])  # (N*B, T), language-major
    logits = stack(targets, stack.cross_kv(memory), mask.repeat(len(VOCABS), 1, 1, 1))  # (N*B, T, V_max)
    assert logits.shape == (4 * 3, 5, max(VOCABS.values()))
    for n, (lang, head) in enumerate(fitted.decoders.items()):
        rows, vocab = slice(3 * n, 3 * n + 3), VOCABS[lang]
        expected = head(targets[rows], head.cross_kv(memory), mask)
        torch.testing.assert_close(logits[rows, :, :vocab], expected, rtol=1e-5, atol=1e-5)
        assert (logits[rows, :, vocab:] == float("-inf")).all()


@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("batch,seed", [(1, 0), (1, 5), (5, 1), (12, 0), (16, 2)])
def test_stacked_greedy_equals_per_language_greedy(fitted, batch, seed, padded):
    input_ids, attention_mask = sources(batch, seed, padded)
    stacked = fitted.generate(input_ids, attention_mask, stacked=True, max_new_tokens=16)
    assert_same(stacked, one_by_one(fitted, input_ids, attention_mask, max_new_tokens=16))
    assert_same(fitted.generate(input_ids, attention_mask, max_new_tokens=16), stacked)  # automatic: stacked too


def test_stacked_true_also_stacks_a_single_language(fitted):
    input_ids, attention_mask = sources(5, seed=1)
    alone = fitted.generate(input_ids, attention_mask, langs=["it"], stacked=True, max_new_tokens=16)
    assert set(STACKS[fitted]) >= {("it",)}
    assert_same(alone, fitted.generate(input_ids, attention_mask, langs=["it"], stacked=False, max_new_tokens=16))


def test_outputs_end_at_different_lengths_per_language(fitted):
    """The tests above are only worth something if languages stop at different steps."""
    out = fitted.generate(*sources(12, seed=0), max_new_tokens=16)
    widths = {lang: ids.shape[1] for lang, ids in out.items()}
    assert len(set(widths.values())) > 1 and max(widths.values()) < 16, widths
    assert all((ids == EOS).any(dim=1).all() for ids in out.values())


@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("batch,seed,num_beams", [(1, 0, 3), (5, 1, 2), (12, 0, 4), (7, 3, 3)])
def test_stacked_beam_search_equals_per_language_beam_search(fitted, batch, seed, num_beams, padded):
    input_ids, attention_mask = sources(batch, seed, padded)
    kwargs = dict(num_beams=num_beams, max_new_tokens=14, length_penalty=0.8)
    assert_same(fitted.generate(input_ids, attention_mask, stacked=True, **kwargs),
                one_by_one(fitted, input_ids, attention_mask, **kwargs))


def test_stack_follows_weight_changes(fitted):
    """Never stale: after an optimizer step, `load_state_dict`, an in-place edit or `.data = ...`."""
    model = MTLTranslationModel(fitted.config)
    model.load_state_dict(fitted.state_dict())
    model.eval()
    input_ids, attention_mask = sources(6, seed=7)

    def check():
        out = model.generate(input_ids, attention_mask, stacked=True, max_new_tokens=12)
        assert_same(out, model.generate(input_ids, attention_mask, stacked=False, max_new_tokens=12))
        return out

    before, stack = check(), stacked_heads(model, list(VOCABS))
    assert stacked_heads(model, list(VOCABS)) is stack  # unchanged weights: cached
    fit(model, steps=3)  # optimizer steps
    assert stacked_heads(model, list(VOCABS)) is not stack
    after_training = check()
    assert any(not torch.equal(before[lang], after_training[lang]) for lang in VOCABS)
    torch.manual_seed(1)
    model.load_state_dict(MTLTranslationModel(fitted.config).state_dict())
    assert any(not torch.equal(after_training[lang], ids) for lang, ids in check().items())
    model.load_state_dict(fitted.state_dict())
    assert_same(check(), before)
    norm = model.decoders["fr"].final_norm
    with torch.no_grad():
        norm.weight.zero_(), norm.bias.zero_()  # in place: all French logits 0: the first allowed token wins
    assert (check()["fr"] == EOS).all()  # pad, unk and bos (0-2) are never generated
    norm.weight.data, norm.bias.data = (p.data.clone() for p in fitted.decoders["fr"].final_norm.parameters())
    assert_same(check(), before)


def test_languages_are_grouped_by_generation_settings(fitted):
    """Per-language generation config still applies; each group of identical settings is one stacked decode."""
    model = MTLTranslationModel(fitted.config)
    model.load_state_dict(fitted.state_dict())
    model.eval()
    model.generation_config.per_language = {"de": {"num_beams": 3}, "es": {"num_beams": 3}, "it": {"max_new_tokens": 4}}
    input_ids, attention_mask = sources(5, seed=3)
    out = model.generate(input_ids, attention_mask, length_penalty=0.9)
    assert set(STACKS[model]) == {("de", "es")}  # fr and it differ in max_new_tokens: one by one
    expected = {lang: model.generate(input_ids, attention_mask, langs=[lang], stacked=False, length_penalty=0.9,
                                     **settings)[lang]
                for lang, settings in [("de", dict(num_beams=3)), ("fr", {}), ("es", dict(num_beams=3)),
                                       ("it", dict(max_new_tokens=4))]}
    assert_same(out, expected)
    assert out["it"].shape[1] <= 4
    out = model.generate(input_ids, attention_mask, max_new_tokens=4)  # now fr and it agree too
    assert set(STACKS[model]) == {("de", "es"), ("fr", "it")}
    assert_same(out, one_by_one(model, input_ids, attention_mask, max_new_tokens=4))


@pytest.mark.parametrize("num_beams", [1, 3])
def test_rows_restriction_picks_rows_of_the_stacked_decode(fitted, num_beams):
    input_ids, attention_mask = sources(6, seed=2)
    rows = {"fr": torch.tensor([True, False, True, True, False, True]), "it": torch.tensor([False, True] + [False] * 4),
            "de": torch.ones(6, dtype=torch.bool)}
    STACKS.pop(fitted, None)
    out = fitted.generate(input_ids, attention_mask, rows=rows, num_beams=num_beams, max_new_tokens=12)
    assert set(STACKS[fitted]) == {tuple(VOCABS)}  # every language in one stack, rows restricted or not
    expected = one_by_one(fitted, input_ids, attention_mask, num_beams=num_beams, max_new_tokens=12)
    for lang, keep in rows.items():
        expected[lang] = fitted.generate(input_ids[keep], attention_mask[keep], langs=[lang], stacked=False,
                                         num_beams=num_beams, max_new_tokens=12)[lang]
    assert_same(out, expected)


def test_partial_sharing_stacks_each_group_of_languages():
    """Languages of one group read the same encoder states: they decode together; de, alone in its group, does not."""
    torch.manual_seed(0)
    model = fit(MTLTranslationModel(config(sharing="partial", shared_layers=1,
                                           language_groups={"romance": ["fr", "es", "it"]})))
    input_ids, attention_mask = sources(6, seed=1)
    for num_beams in (1, 3):
        out = model.generate(input_ids, attention_mask, num_beams=num_beams, max_new_tokens=12)
        assert_same(out, one_by_one(model, input_ids, attention_mask, num_beams=num_beams, max_new_tokens=12))
    assert set(STACKS[model]) == {("fr", "es", "it")}


def test_soft_sharing_decodes_head_by_head():
    torch.manual_seed(0)
    model = MTLTranslationModel(config(sharing="soft")).eval()
    input_ids, attention_mask = sources(4, seed=1)
    out = model.generate(input_ids, attention_mask, max_new_tokens=6)
    assert model not in STACKS
    assert_same(out, one_by_one(model, input_ids, attention_mask, max_new_tokens=6))
    with pytest.raises(ValueError, match="stacked=True needs heads that read the same encoder states"):
        model.generate(input_ids, attention_mask, stacked=True)


@pytest.mark.parametrize("num_beams", [1, 2])
def test_bf16_weights_generate_in_both_paths(fitted, num_beams):
    """A model cast to bfloat16 (as on a GPU) decodes: position encodings follow the weights' dtype."""
    model = MTLTranslationModel(fitted.config)
    model.load_state_dict(fitted.state_dict())
    model = model.to(torch.bfloat16).eval()
    input_ids, attention_mask = sources(5, seed=3)
    for stacked in (True, False):
        out = model.generate(input_ids, attention_mask, stacked=stacked, num_beams=num_beams, max_new_tokens=8)
        for lang, ids in out.items():
            assert ids.shape[0] == 5 and 1 <= ids.shape[1] <= 8 and ids.max() < VOCABS[lang], (stacked, lang)


BYTE_VOCABS, BYTE_OFFSETS = {"de": 300, "fr": 270, "es": 290}, {"de": 4, "fr": 9, "es": 4}  # <0x00> at fr's id 9


def utf8_ok(ids: list[int], offset: int, max_new_tokens: int) -> tuple[bool, int]:
    """Whether one output's byte pieces decode as UTF-8, each character complete before any other piece (an output
    cut at `max_new_tokens` may end inside one) and no special token but the final EOS; and how many multi-byte
    characters it holds."""
    ended = EOS in ids
    ids = ids[: ids.index(EOS)] if ended else ids
    decoder, text = codecs.getincrementaldecoder("utf-8")(), ""
    try:
        for i in ids:
            is_byte = offset <= i < offset + 256
            text += decoder.decode(bytes([i - offset]) if is_byte else b"", final=not is_byte)
        decoder.decode(b"", final=ended or len(ids) < max_new_tokens)
    except UnicodeDecodeError:
        return False, 0
    return all(i > EOS for i in ids), sum(ord(c) > 0x7F for c in text)


@pytest.mark.parametrize("repetition_penalty", [1.0, 1.5])
@pytest.mark.parametrize("num_beams", [1, 3])
def test_stacked_equals_per_language_with_byte_pieces(num_beams, repetition_penalty):
    """The UTF-8 guard keeps one state per row, per language's byte pieces: stacked and one by one still agree,
    beams reorder it, and every output's bytes are valid UTF-8 (the random heads pick byte pieces all the time)."""
    torch.manual_seed(0)
    model = fit(MTLTranslationModel(config(languages=list(BYTE_VOCABS), target_vocab_sizes=BYTE_VOCABS)))
    model.generation_config.byte_piece_offsets = BYTE_OFFSETS
    input_ids, attention_mask = sources(8, seed=2)
    kwargs = dict(num_beams=num_beams, max_new_tokens=12, repetition_penalty=repetition_penalty)
    out = model.generate(input_ids, attention_mask, stacked=True, **kwargs)
    assert_same(out, one_by_one(model, input_ids, attention_mask, **kwargs))
    checks = [utf8_ok(row, BYTE_OFFSETS[lang], 12) for lang, ids in out.items() for row in ids.tolist()]
    assert all(ok for ok, _ in checks) and sum(n for _, n in checks) > 0
