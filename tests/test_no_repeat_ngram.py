"""`no_repeat_ngram_size`: no output repeats an n-gram, in greedy and beam search, stacked or head by head."""

import pytest
import torch
from transformers import BertConfig

from mtl_translate import MTLConfig, MTLTranslationModel
from mtl_translate.generation import ban_repeated_ngrams

VOCABS = {"de": 13, "fr": 9}


def brute_force_ban(logits, seqs, n):
    out = logits.clone()
    if n <= 0:
        return out
    for b, seq in enumerate(seqs.tolist()):
        for i in range(len(seq) - n + 1):
            if seq[i : i + n - 1] == seq[len(seq) - n + 1 :]:
                out[b, seq[i + n - 1]] = float("-inf")
    return out


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("length", [0, 1, 2, 5, 12])
def test_ban_matches_brute_force(n, length):
    g = torch.Generator().manual_seed(10 * n + length)
    seqs = torch.randint(0, 4, (6, length), generator=g)  # a small vocabulary: many repeats
    logits = torch.randn(6, 7, generator=g)
    assert torch.equal(ban_repeated_ngrams(logits, seqs, n), brute_force_ban(logits, seqs, n))


def repeated_ngrams(ids: torch.Tensor, n: int, eos: int) -> list:
    found = []
    for seq in ids.tolist():
        seq = seq[: seq.index(eos)] if eos in seq else seq
        grams = [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]
        found += [g for g in set(grams) if grams.count(g) > 1]
    return found


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    encoder = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)
    config = MTLConfig(encoder=encoder.to_dict(), languages=list(VOCABS), target_vocab_sizes=VOCABS,
                       decoder_layers=1, decoder_hidden_size=32, decoder_attention_heads=2, decoder_ffn_dim=64,
                       max_target_positions=24)
    return MTLTranslationModel(config).eval()


@pytest.mark.parametrize("num_beams", [1, 3])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_generate_never_repeats_an_ngram(model, num_beams, n):
    input_ids = torch.randint(5, 50, (4, 7), generator=torch.Generator().manual_seed(n))
    eos = model.config.target_eos_token_id
    plain = model.generate(input_ids, num_beams=num_beams, max_new_tokens=20)
    assert any(repeated_ngrams(ids, n, eos) for ids in plain.values())  # a random model repeats itself ...
    for stacked in (True, False):
        out = model.generate(input_ids, num_beams=num_beams, max_new_tokens=20, no_repeat_ngram_size=n,
                             stacked=stacked)
        assert all(not repeated_ngrams(ids, n, eos) for ids in out.values())  # ... unless told not to


def test_setting_is_saved_in_the_generation_config(model, tmp_path):
    input_ids = torch.randint(5, 50, (3, 7), generator=torch.Generator().manual_seed(0))
    expected = model.generate(input_ids, no_repeat_ngram_size=2)
    model.generation_config.no_repeat_ngram_size = 2
    model.save_pretrained(tmp_path)
    model.generation_config.no_repeat_ngram_size = 0
    reloaded = MTLTranslationModel.from_pretrained(tmp_path).eval()
    assert reloaded.generation_config.no_repeat_ngram_size == 2
    out = reloaded.generate(input_ids)
    assert all(torch.equal(out[lang], expected[lang]) for lang in VOCABS)
