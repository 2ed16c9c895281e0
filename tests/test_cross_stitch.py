"""`sharing: cross_stitch`: α = identity is independent encoders, α mixes the copies after every block, gradients,
freezing, saving and translate-all, adding a language without changing the older ones (bitwise), removing one, the
recipe and a short training run, and α on the model card."""

import pytest
import torch
from transformers import T5Config

from mtl_translate import MTLTranslationModel
from mtl_translate.configs import load_recipe
from mtl_translate.hub import build_model_card
from mtl_translate.languages import remove_language
from mtl_translate.mixing_card import CROSS_STITCH_PNG
from mtl_translate.translate import Translator

from .conftest import LANGS, corpus_rows, tiny_config
from .mixing_checks import (add_es, assert_same_gradients, check_es_trained_alone_keeps_the_others,
                            check_freezing_applies_to_each_copy_and_the_units_train_unless_all_is_frozen,
                            check_removing_the_newest_restores, check_save_load_and_translate_all, cloned_weights,
                            encode_all, mixed_model, short_training_run, train_alone, with_a_pretrained_encoder)
from .test_sharing import batch_of, has_grad


def stitched(tokenizer, blocks=3, languages=LANGS, **kwargs):
    """A cross-stitch model over a `blocks`-block BERT whose copies were made to differ (as after training)."""
    return mixed_model(tokenizer, "cross_stitch", blocks, languages, **kwargs)


def alone(model, lang, batch):
    """What `lang`'s encoder copy gives when it runs by itself, as the encoder it is."""
    return model.encoders[lang](input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state


def test_identity_alpha_gives_independent_encoders(tokenizer):
    model = stitched(tokenizer, cross_stitch_init=1.0)
    assert torch.equal(model.sharing_mode.alpha(model), torch.eye(3).expand(3, 3, 3))
    batch = batch_of(tokenizer, corpus_rows()[:5])  # padded rows
    for lang, memory in encode_all(model, batch).items():
        assert torch.equal(memory, alone(model, lang, batch))  # blocks called exactly as the encoder calls them


def test_alpha_mixes_the_copies_hidden_states(tokenizer):
    model = stitched(tokenizer, blocks=1)
    with torch.no_grad():
        for row in model.cross_stitch.values():
            row.alpha.copy_(torch.rand_like(row.alpha))
    alpha = model.sharing_mode.alpha(model)[0]  # (N, N): one block
    batch = batch_of(tokenizer, corpus_rows()[:5])
    states = torch.stack([alone(model, lang, batch) for lang in LANGS])  # (N, B, S, E)
    memory = encode_all(model, batch)
    for i, lang in enumerate(LANGS):
        torch.testing.assert_close(memory[lang], torch.einsum("m,mbse->bse", alpha[i], states))


def test_equal_copies_start_as_the_pretrained_encoder(tokenizer):
    model = stitched(tokenizer)
    assert torch.allclose(model.sharing_mode.alpha(model)[:, 0], torch.tensor([0.9, 0.05, 0.05]))  # rows sum to 1
    memories, expected = with_a_pretrained_encoder(model, tokenizer)
    for memory in memories.values():
        torch.testing.assert_close(memory, expected)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_one_languages_loss_reaches_alpha_and_every_copy(tokenizer, checkpointing):
    model = stitched(tokenizer).train()
    if checkpointing:
        model.activation_checkpointing_enable()
    model(**batch_of(tokenizer, corpus_rows()[:4])).language_losses["de"].backward()
    assert all(row.alpha.grad.abs().sum() > 0 for row in model.cross_stitch.values())
    assert all(has_grad(model.encoders[lang]) for lang in LANGS)  # fr and es through α, unlike soft sharing
    assert not has_grad(model.decoders["fr"])
    reference = stitched(tokenizer).train()
    reference(**batch_of(tokenizer, corpus_rows()[:4])).language_losses["de"].backward()
    assert_same_gradients(model, reference)


def test_freezing_applies_to_each_copy_and_alpha_trains_unless_all_is_frozen(tokenizer):
    check_freezing_applies_to_each_copy_and_the_units_train_unless_all_is_frozen(stitched(tokenizer))


def test_save_load_translate_all_and_alpha_on_the_model_card(tokenizer, tmp_path):
    model = stitched(tokenizer)
    with torch.no_grad():
        model.cross_stitch["fr"].alpha[2, 0] = 0.25
    reloaded, card = check_save_load_and_translate_all(model, tokenizer, tmp_path)
    assert reloaded.config.sharing == "cross_stitch"
    assert "`cross_stitch` parameter sharing" in card and "## Cross-stitch units" in card
    assert "| 3 | fr | 0.250 | 0.900 | 0.050 |" in card  # block 3, fr's copy reads de with 0.25
    assert f"![cross-stitch α, one heatmap per encoder block]({CROSS_STITCH_PNG})" in card
    assert (tmp_path / CROSS_STITCH_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_card_shows_alpha_without_matplotlib(tokenizer, tmp_path, monkeypatch):
    Translator(stitched(tokenizer, blocks=1, languages=["de"]), tokenizer).save_pretrained(tmp_path)

    def missing(*args):
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr("mtl_translate.mixing_card.plot_cross_stitch", missing)
    card = str(build_model_card(tmp_path))
    assert "| 1 | de | 1.000 |" in card and CROSS_STITCH_PNG not in card  # one language: α = 1


def test_an_added_language_trained_alone_leaves_the_older_ones_bit_for_bit(tokenizer):
    model = stitched(tokenizer, languages=["de", "fr"])
    assert all(name.endswith(".alpha") for name in model.state_dict() if "cross_stitch" in name)  # α only
    before, after, batch, old_memory, old_alpha = add_es(model, tokenizer)  # no other weight changes
    alpha = model.sharing_mode.alpha(model)  # (3 blocks, 3, 3)
    assert torch.equal(alpha[:, :2, :2], old_alpha)  # the older rows keep their entries
    assert torch.equal(alpha[:, :2, 2], torch.zeros(3, 2))  # and do not read the new copy
    assert torch.allclose(alpha[:, 2], torch.tensor([0.05, 0.05, 0.9]))  # the new row as at the start

    _, trained = check_es_trained_alone_keeps_the_others(model, tokenizer, after, batch, old_memory)
    assert not torch.equal(trained["cross_stitch.es.alpha"], after["cross_stitch.es.alpha"])
    check_removing_the_newest_restores(model, before)


def test_retraining_a_language_others_read_leaves_them_bit_identical(tokenizer):
    """de's α row sets what de's copy passes on, which fr and es read: training de alone trains its head only."""
    model = stitched(tokenizer)
    batch = batch_of(tokenizer, corpus_rows()[:6])
    old_memory = encode_all(model, batch)
    before = cloned_weights(model)
    assert train_alone(model, tokenizer, "de") == ["decoders.de."]
    new_memory = encode_all(model, batch)
    assert all(torch.equal(new_memory[lang], old_memory[lang]) for lang in ["fr", "es"])
    after = model.state_dict()
    assert all(torch.equal(after[name], value) for name, value in before.items() if not name.startswith("decoders.de."))
    assert not torch.equal(after["decoders.de.embed_tokens.weight"], before["decoders.de.embed_tokens.weight"])


def test_a_language_is_removed_with_its_copy_row_and_column_only_when_no_other_reads_it(tokenizer):
    model = stitched(tokenizer)
    with pytest.raises(ValueError, match=r"cannot remove 'de': \['fr', 'es'\] read its encoder copy"):
        remove_language(model, "de")
    assert model.sharing_mode.owned_prefixes(model, "de") == []  # its copy is read: neither it nor its row its own
    with torch.no_grad():
        for lang in ("fr", "es"):
            model.cross_stitch[lang].alpha[:, 0] = 0  # nobody reads de's copy any more
    assert model.sharing_mode.owned_prefixes(model, "de") == ["encoders.de.", "cross_stitch.de."]
    alpha = model.sharing_mode.alpha(model)
    remove_language(model, "de")
    assert list(model.encoders) == list(model.cross_stitch) == ["fr", "es"]
    assert not any(name.startswith(("encoders.de.", "cross_stitch.de.")) for name in model.state_dict())
    assert torch.equal(model.sharing_mode.alpha(model), alpha[:, 1:, 1:])
    assert set(encode_all(model, batch_of(tokenizer, corpus_rows()[:2]))) == {"fr", "es"}


def test_an_encoder_that_normalises_after_its_stack_is_refused(tokenizer):
    t5 = T5Config(vocab_size=tokenizer.source.vocab_size, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2)
    with pytest.raises(ValueError, match=r"cross_stitch needs an encoder whose output is its last block's output"):
        MTLTranslationModel(tiny_config(tokenizer, encoder=t5.to_dict(), sharing="cross_stitch"))


def test_the_recipe_and_a_short_training_run_learn_alpha(corpus_dir, tiny_encoder_dir, tmp_path):
    recipe = load_recipe("recipes/quickstart/config_cross_stitch.yaml").model
    assert (recipe.sharing, recipe.cross_stitch_init, recipe.trainable_encoder_layers) == ("cross_stitch", 0.9, 2)
    weights, out = short_training_run(corpus_dir, tiny_encoder_dir, tmp_path, "cross_stitch")
    for i, lang in enumerate(LANGS):
        start = torch.full((2, 3), 0.05).index_fill_(1, torch.tensor(i), 0.9)  # 2 blocks, 3 languages
        assert not torch.allclose(weights[f"cross_stitch.{lang}.alpha"], start)  # α learned
    assert "## Cross-stitch units" in (out / "README.md").read_text() and (out / CROSS_STITCH_PNG).is_file()
