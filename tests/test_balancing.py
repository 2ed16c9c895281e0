"""Temperature sampling of multi-target rows (the effective language shares on a skewed corpus) and per-language
batches (B rows of every language in every batch)."""

import json

import pytest
import torch

from mtl_translate.configs import load_recipe
from mtl_translate.data.balancing import (LanguageBatchSampler, OneTargetRows, RowSampler, language_shares,
                                         target_mask, temperature_row_weights)

LANGS = ["de", "fr", "ru"]


@pytest.fixture(scope="module")
def skewed_rows():
    """2000 rows: German everywhere, French on 400 rows, Russian on 50 scattered rows (shares .82/.16/.02)."""
    g = torch.Generator().manual_seed(0)
    rows = [{"en": f"s{i}", "de": f"d{i}", "fr": f"f{i}" if i < 400 else None, "ru": None} for i in range(2000)]
    for i in torch.randperm(2000, generator=g)[:50].tolist():
        rows[i]["ru"] = f"r{i}"
    return rows


def expected_shares(counts, temperature):
    p = torch.tensor(counts, dtype=torch.float64).pow(1 / temperature)
    return p / p.sum()


def test_target_mask_treats_null_and_empty_as_missing():
    has = target_mask([{"de": "a", "fr": None}, {"de": "", "fr": "b"}], ["de", "fr"])
    assert has.tolist() == [[True, False], [False, True]]


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0])
def test_row_weights_reach_the_temperature_shares(skewed_rows, temperature):
    has = target_mask(skewed_rows, LANGS)
    natural = language_shares(has)
    torch.testing.assert_close(natural, expected_shares([2000, 400, 50], 1.0))
    weights = temperature_row_weights(has, temperature)
    torch.testing.assert_close(language_shares(has, weights), expected_shares([2000, 400, 50], temperature),
                               atol=1e-3, rtol=0)
    if temperature == 1.0:
        torch.testing.assert_close(weights, torch.ones_like(weights))


def test_high_temperature_is_nearly_uniform(skewed_rows):
    has = target_mask(skewed_rows, LANGS)
    shares = language_shares(has, temperature_row_weights(has, 1000.0))
    assert (shares - 1 / 3).abs().max() < 0.02


def test_sampler_draws_rows_with_the_effective_shares(skewed_rows):
    has = target_mask(skewed_rows, LANGS)
    weights = temperature_row_weights(has, 5.0)
    sampler = RowSampler(len(skewed_rows), seed=0, weights=weights)
    counts = torch.zeros(3)
    for epoch in range(10):
        sampler.set_epoch(epoch)
        counts += has[list(sampler)].sum(0)
    assert (counts / counts.sum() - expected_shares([2000, 400, 50], 5.0)).abs().max() < 0.01


def test_sampler_is_reproducible_per_epoch_and_groups_by_length():
    lengths = [i % 37 for i in range(512)]
    sampler = RowSampler(512, seed=3, lengths=lengths, batch_size=32)
    first = list(sampler)
    assert sorted(first) == list(range(512)) and list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    spread = [max(lengths[i] for i in first[k:k + 32]) - min(lengths[i] for i in first[k:k + 32])
              for k in range(0, 512, 32)]
    assert sum(spread) / len(spread) < 36 / 2  # batches of similar length, unlike a random permutation


def test_temperature_must_be_positive(skewed_rows):
    with pytest.raises(ValueError, match="language_temperature must be > 0"):
        temperature_row_weights(target_mask(skewed_rows, LANGS), 0.0)


def language_batches(sampler, rows, batch_size):
    """The sampler's device batches as lists of (row, language) from OneTargetRows items."""
    items = OneTargetRows(rows, "en", LANGS)
    flat = [items[i]["translation"] for i in sampler]
    pairs = [(int(next(v for k, v in t.items() if k != "en")[1:]), next(k for k in t if k != "en")) for t in flat]
    size = batch_size * len(LANGS)
    return [pairs[k:k + size] for k in range(0, len(pairs), size)]


def test_language_batches_hold_b_rows_of_every_language_each_training_it_alone(skewed_rows):
    has = target_mask(skewed_rows, LANGS)
    sampler = LanguageBatchSampler(has, seed=0, batch_size=8, global_batch=16)
    assert sampler.steps == 125 and len(sampler) == 125 * 16 * 3  # de's 2000 rows once, in steps of 16
    batches = language_batches(sampler, skewed_rows, 8)
    assert len(batches) == 250
    for batch in batches:
        assert sorted(lang for _, lang in batch) == sorted(LANGS * 8)
        assert all(skewed_rows[r][lang] for r, lang in batch)  # a row drawn for a language holds it
    item = OneTargetRows(skewed_rows, "en", LANGS)[7 * 3 + 1]  # row 7 as a French example: only fr kept
    assert item == {"translation": {"en": "s7", "fr": "f7"}}
    seen = {lang: torch.zeros(len(skewed_rows), dtype=torch.long) for lang in LANGS}
    for batch in batches:
        for r, lang in batch:
            seen[lang][r] += 1
    assert (seen["de"] == 1).all()  # the largest language: every row once per epoch
    for lang, n in (("fr", 400), ("ru", 50)):  # smaller ones go round their rows, each 2000/n times
        assert (seen[lang][has[:, LANGS.index(lang)]] == 2000 // n).all() and seen[lang].sum() == 2000


def test_language_batches_are_reproducible_per_epoch_and_independent_of_the_split(skewed_rows):
    has = target_mask(skewed_rows, LANGS)
    lengths = [i % 37 for i in range(len(skewed_rows))]
    one = LanguageBatchSampler(has, seed=3, batch_size=16, global_batch=16, lengths=lengths)
    split = LanguageBatchSampler(has, seed=3, batch_size=8, global_batch=16, lengths=lengths)  # 2 devices x 8
    first = list(one)
    assert list(one) == first
    halves = language_batches(split, skewed_rows, 8)
    for step, whole in enumerate(language_batches(one, skewed_rows, 16)):
        assert sorted(whole) == sorted(halves[2 * step] + halves[2 * step + 1])
    one.set_epoch(1)
    assert list(one) != first
    de = [r for batch in language_batches(split, skewed_rows, 8) for r, lang in batch if lang == "de"]
    spread = [max(lengths[r] for r in de[k:k + 16]) - min(lengths[r] for r in de[k:k + 16]) for k in range(0, 2000, 16)]
    assert sum(spread) / len(spread) < 36 / 2  # each language's rows grouped by length


def test_language_batches_refuse_a_language_without_rows_and_temperature():
    has = target_mask([{"de": "a", "fr": None}], ["de", "fr"])
    with pytest.raises(ValueError, match=r"no training row holds a target in \['fr'\]"):
        LanguageBatchSampler(has, seed=0, batch_size=2, global_batch=2, langs=["de", "fr"])
    with pytest.raises(ValueError, match="'language_batches' and 'language_temperature' \\(5.0\\) both set"):
        load_recipe(base={"language_batches": True, "language_temperature": 5.0})


def test_training_with_language_batches_gives_every_head_b_targets_per_step(corpus_dir, tiny_encoder_dir, tmp_path):
    from accelerate import Accelerator

    from mtl_translate import train
    from mtl_translate.data.collator import MultiTargetCollator

    from .conftest import LANGS as TINY_LANGS, tiny_recipe

    recipe = load_recipe(base=tiny_recipe(corpus_dir, tiny_encoder_dir, tmp_path / "loader", language_batches=True))
    rows, _ = train.load_data(recipe, Accelerator(cpu=True))
    tokenizer = train.build_tokenizer(recipe, rows, tiny_encoder_dir, Accelerator(cpu=True))
    loader = train.build_loader(recipe, rows, MultiTargetCollator(tokenizer, "en", TINY_LANGS), Accelerator(cpu=True))
    for batch in list(loader)[:5]:
        assert batch["input_ids"].shape[0] == 4 * len(TINY_LANGS)
        for lang, labels in batch["labels"].items():  # 4 rows hold this language's target, the rest are -100
            assert ((labels != -100).any(1)).sum().item() == 4, lang
    recipe.training.output_dir = str(tmp_path / "out")
    train.run(recipe)
    history = json.loads((tmp_path / "out" / "trainer_state.json").read_text())["history"]
    assert [entry["step"] for entry in history if "train/loss" in entry] == [1, 2, 3, 4, 5, 6]


def test_rows_are_grouped_by_source_length_in_tokens_not_characters(corpus_dir, tiny_encoder_dir, tmp_path):
    """Sources of one length in characters but one to six words: grouped by characters the batches would be random
    (a third padding); grouped by tokens, as the collator cuts them, they are nearly padding-free."""
    import random

    from accelerate import Accelerator
    from datasets import Dataset

    from mtl_translate import train
    from mtl_translate.data.collator import MultiTargetCollator

    from .conftest import LANGS as TINY_LANGS, tiny_recipe

    recipe = load_recipe(base=tiny_recipe(corpus_dir, tiny_encoder_dir, tmp_path / "out"))
    rows, _ = train.load_data(recipe, Accelerator(cpu=True))
    collator = MultiTargetCollator(train.build_tokenizer(recipe, rows, tiny_encoder_dir, Accelerator(cpu=True)), "en",
                                   TINY_LANGS)
    sources = ["information", "hello world", "a b c world", "a b c d e f"]  # 11 characters each
    assert collator.source_lengths([{"en": s} for s in sources]) == [3, 4, 6, 8]  # with [CLS] and [SEP]
    pick = random.Random(0)
    same = Dataset.from_dict({"translation": [{"en": pick.choice(sources), **{lang: "x" for lang in TINY_LANGS}}
                                              for _ in range(800)]})
    masks = [batch["attention_mask"] for batch in train.build_loader(recipe, same, collator, Accelerator(cpu=True))]
    assert sum(mask.shape[0] for mask in masks) == 800
    assert sum((mask == 0).sum().item() for mask in masks) / sum(mask.numel() for mask in masks) < 0.05


def test_a_run_with_language_batches_resumed_mid_epoch_matches_the_straight_run(corpus_dir, tiny_encoder_dir,
                                                                                tmp_path):
    """Checkpoints at 3 and 6 of 8 steps (4 per epoch): resuming from step 3 replays the sampler's epoch and the
    skipped batches, so the final weights are those of the straight run, bit for bit."""
    import shutil

    from safetensors.torch import load_file

    from mtl_translate.train import run

    from .conftest import tiny_recipe

    keys = dict(language_batches=True, decoder_dropout=0.1, trainable_encoder_layers=1, max_steps=8, save_steps=3,
                eval_steps=4, save_total_limit=3)
    run(load_recipe(base=tiny_recipe(corpus_dir, tiny_encoder_dir, tmp_path / "straight", **keys)))
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    for late in ("step_6", "step_8"):
        shutil.rmtree(tmp_path / "resumed" / "checkpoints" / late)
    run(load_recipe(base=tiny_recipe(corpus_dir, tiny_encoder_dir, tmp_path / "resumed",
                                     resume_from_checkpoint="latest", **keys)))
    a = load_file(tmp_path / "straight" / "checkpoints" / "step_8" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "checkpoints" / "step_8" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
