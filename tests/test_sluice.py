"""`sharing: sluice`: α = identity and β on the last block start every copy as the pretrained encoder (bitwise), α
mixes subspaces across copies, β mixes the blocks, the orthogonality penalty and how a step counts it, gradients,
freezing, saving and translate-all, α and β on the model card, adding a language without changing the older ones
(bitwise), what a language owns, the recipe and a short training run."""

from itertools import combinations

import pytest
import torch

from mtl_translate.configs import load_recipe
from mtl_translate.data.collator import MultiTargetCollator
from mtl_translate.languages import remove_language
from mtl_translate.mixing_card import SLUICE_PNG
from mtl_translate.sharing.sluice import identity_row

from .conftest import LANGS, corpus_rows
from .mixing_checks import (add_es, assert_same_gradients, check_es_trained_alone_keeps_the_others,
                            check_freezing_applies_to_each_copy_and_the_units_train_unless_all_is_frozen,
                            check_removing_the_newest_restores, check_save_load_and_translate_all, encode_all,
                            mixed_model, short_training_run, train_alone, with_a_pretrained_encoder)
from .test_objective import gradients, relative_gap, sparse_rows, split
from .test_sharing import batch_of, has_grad


def sluiced(tokenizer, blocks=3, languages=LANGS, diverged=True, **kwargs):
    """A sluice model over a `blocks`-block BERT (E = 48), its copies made to differ (as after training) unless not
    `diverged`."""
    return mixed_model(tokenizer, "sluice", blocks, languages, diverged, **kwargs)


def randomise(model, *names):
    with torch.no_grad():
        for row in model.sluice.values():
            for name in names:
                row[name].copy_(torch.rand_like(row[name]))


def block_outputs(model, lang, batch) -> tuple:
    """Every block's output of `lang`'s copy run by itself, as the encoder it is: ((B, S, E) per block)."""
    out = model.encoders[lang](input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                               output_hidden_states=True)
    return out.hidden_states[1:]


def test_alpha_identity_and_beta_on_the_last_block_start_each_copy_as_the_pretrained_encoder(tokenizer):
    model = sluiced(tokenizer, diverged=False)
    alpha, beta = model.sharing_mode.alpha(model), model.sharing_mode.beta(model)
    assert alpha.shape == (3, 3, 2, 3, 2) and beta.shape == (3, 3)  # (blocks, N, K, N, K), (N, blocks)
    assert torch.equal(alpha.reshape(3, 6, 6), torch.eye(6).expand(3, 6, 6))
    assert torch.equal(beta, torch.tensor([[0.0, 0.0, 1.0]] * 3))
    memories, expected = with_a_pretrained_encoder(model, tokenizer)  # on padded rows
    for memory in memories.values():
        assert torch.equal(memory, expected)  # bit for bit: 1·h + 0·(the rest), summed term by term


def test_identity_alpha_gives_independent_encoders_and_beta_mixes_their_blocks(tokenizer):
    model = sluiced(tokenizer)
    batch = batch_of(tokenizer, corpus_rows()[:5])
    memory = encode_all(model, batch)
    for lang in LANGS:
        assert torch.equal(memory[lang], block_outputs(model, lang, batch)[-1])
    randomise(model, "beta")
    memory = encode_all(model, batch)
    for i, lang in enumerate(LANGS):
        beta = model.sharing_mode.beta(model)[i]
        torch.testing.assert_close(memory[lang], sum(w * h for w, h in zip(beta, block_outputs(model, lang, batch))))


def test_alpha_mixes_every_copys_subspaces_into_each_subspace(tokenizer):
    model = sluiced(tokenizer, blocks=1)
    randomise(model, "alpha")
    alpha = model.sharing_mode.alpha(model)[0]  # (N, K, N, K): one block
    batch = batch_of(tokenizer, corpus_rows()[:5])
    halves = torch.stack([block_outputs(model, lang, batch)[0] for lang in LANGS]).unflatten(-1, (2, 24))
    memory = encode_all(model, batch)  # halves: (N, B, S, K, E/K), every copy's block output split in two
    for i, lang in enumerate(LANGS):
        expected = torch.einsum("smt,mbptd->bpsd", alpha[i], halves)  # (B, S, K, E/K)
        torch.testing.assert_close(memory[lang], expected.flatten(-2))


@pytest.mark.parametrize("k", [2, 4])
def test_the_orthogonality_penalty_is_the_squared_cross_products_of_a_copys_subspaces_over_real_tokens(tokenizer, k):
    model = sluiced(tokenizer, blocks=2, sluice_subspaces=k, sluice_orthogonality_weight=0.5)
    randomise(model, "alpha")
    batch = batch_of(tokenizer, corpus_rows()[:5])
    keep = batch["attention_mask"].bool()  # (B, S): padding left out
    _, penalty = model.sharing_mode.encode_with_penalty(model, batch["input_ids"], batch["attention_mask"], {})
    expected = 0
    for out, _ in model.sharing_mode.stitched_blocks(model, batch["input_ids"], batch["attention_mask"]):
        for copy_out in out:  # (B, S, E)
            g = copy_out[keep].unflatten(-1, (k, -1))  # (n, K, E/K)
            expected += sum((g[:, s].T @ g[:, t] / len(g)).pow(2).sum() for s, t in combinations(range(k), 2))
    torch.testing.assert_close(penalty, expected)
    out = model(**batch)
    torch.testing.assert_close(out.sharing_penalty, penalty)
    torch.testing.assert_close(out.loss, sum(out.language_losses.values()) + 0.5 * penalty)


def test_a_step_counts_the_penalty_as_its_mean_over_the_passes(tokenizer):
    """The penalty is quadratic in a pass's activations, so a step counts each pass's value times the pass's share
    (objective.py): accumulation and processes agree; one batch of all the rows differs only by the penalty."""
    model = sluiced(tokenizer, blocks=2, sluice_orthogonality_weight=0.01).train()
    randomise(model, "alpha", "beta")
    collate = MultiTargetCollator(tokenizer, "en", LANGS)
    rows = sparse_rows()
    micro = [collate(rows[:4]), collate(rows[4:])]
    accumulated, two_processes = split(model, micro, 1), split(model, micro, 2)
    assert relative_gap(two_processes, accumulated) < 1e-5
    model.config.sluice_orthogonality_weight = 0.0
    model(**collate(rows)).loss.backward()  # the token losses' gradient: the same for any split
    penalties = [model.sharing_mode.encode_with_penalty(model, b["input_ids"], b["attention_mask"], {})[1]
                 for b in micro]
    (0.01 * sum(penalties) / len(micro)).backward()
    assert relative_gap(accumulated, gradients(model)) < 1e-5


def test_at_the_identity_a_languages_loss_reaches_its_rows_beta_and_copy_only_and_checkpointing_agrees(tokenizer):
    model = sluiced(tokenizer).train()
    model(**batch_of(tokenizer, corpus_rows()[:4])).language_losses["de"].backward()
    de = model.sluice["de"]
    assert bool((de.alpha.grad != 0).all()) and bool((de.beta.grad != 0).all())  # also its weights on fr, es: learnable
    assert not any(has_grad(model.sluice[lang]) for lang in ("fr", "es"))  # de reads no other copy, so not theirs
    assert has_grad(model.encoders["de"]) and not has_grad(model.encoders["fr"])  # nobody reads fr's copy yet
    model.zero_grad()
    randomise(model, "alpha")
    model(**batch_of(tokenizer, corpus_rows()[:4])).loss.backward()  # the penalty included
    assert all(has_grad(model.encoders[lang]) for lang in LANGS)  # now de reads every copy
    checkpointed = sluiced(tokenizer).train()
    checkpointed.load_state_dict(model.state_dict())
    checkpointed.activation_checkpointing_enable()
    checkpointed(**batch_of(tokenizer, corpus_rows()[:4])).loss.backward()
    assert_same_gradients(model, checkpointed)


def test_freezing_applies_to_each_copy_and_alpha_and_beta_train_unless_all_is_frozen(tokenizer):
    check_freezing_applies_to_each_copy_and_the_units_train_unless_all_is_frozen(sluiced(tokenizer))


def test_save_load_translate_all_and_alpha_and_beta_on_the_model_card(tokenizer, tmp_path):
    model = sluiced(tokenizer, blocks=2)
    with torch.no_grad():
        model.sluice["fr"].alpha[1, 0, 0, 1] = 0.25  # block 2: fr's first half reads de's second half
        model.sluice["es"].beta.copy_(torch.tensor([0.4, 0.6]))
    reloaded, card = check_save_load_and_translate_all(model, tokenizer, tmp_path)
    assert reloaded.config.sharing == "sluice" and reloaded.config.sluice_subspaces == 2
    assert "`sluice` parameter sharing" in card and "## Sluice units" in card
    assert "| head of | block 1 | block 2 |" in card and "| es | 0.400 | 0.600 |" in card
    assert "| de | 0.000 | 1.000 |" in card
    assert "| 2 | fr.1 | 0.000 | 0.250 | 1.000 | 0.000 | 0.000 | 0.000 |" in card
    assert f"![sluice α, one heatmap per encoder block]({SLUICE_PNG})" in card
    assert (tmp_path / SLUICE_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_added_language_trained_alone_leaves_the_older_ones_bit_for_bit(tokenizer):
    model = sluiced(tokenizer, languages=["de", "fr"])
    randomise(model, "alpha", "beta")  # the older languages read each other
    before, after, batch, old_memory, old_alpha = add_es(model, tokenizer)  # no weight but α changes
    alpha = model.sharing_mode.alpha(model)  # (3 blocks, 3, 2, 3, 2)
    assert torch.equal(alpha[:, :2, :, :2], old_alpha)  # the older rows keep their entries
    assert torch.equal(alpha[:, :2, :, 2], torch.zeros(3, 2, 2, 2))  # and do not read the new copy
    assert torch.equal(alpha[:, 2].reshape(3, 2, 6), torch.eye(6)[4:].expand(3, 2, 6))  # the new rows: identity
    assert torch.equal(model.sluice["es"].beta, torch.tensor([0.0, 0.0, 1.0]))
    assert torch.equal(encode_all(model, batch)["de"], old_memory["de"])

    trainable, trained = check_es_trained_alone_keeps_the_others(model, tokenizer, after, batch, old_memory)
    assert sorted(trainable) == ["decoders.es.", "encoders.es.", "sluice.es."]
    assert not torch.equal(trained["sluice.es.alpha"][:, :, :2], after["sluice.es.alpha"][:, :, :2])  # es reads them
    check_removing_the_newest_restores(model, before)


def test_a_language_others_read_owns_its_beta_only_and_trained_alone_leaves_the_others_bit_for_bit(tokenizer):
    """Its α rows also set what its copy passes to the next block, which its readers read: not its own."""
    model = sluiced(tokenizer)
    assert model.sharing_mode.owned_prefixes(model, "de") == ["encoders.de.", "sluice.de."]  # identity: unread
    randomise(model, "alpha")
    with pytest.raises(ValueError, match=r"cannot remove 'de': \['fr', 'es'\] read its encoder copy"):
        remove_language(model, "de")
    assert model.sharing_mode.owned_prefixes(model, "de") == ["sluice.de.beta"]
    batch = batch_of(tokenizer, corpus_rows()[:6])
    before = encode_all(model, batch)
    train_alone(model, tokenizer, "de")
    after = encode_all(model, batch)
    assert not torch.equal(after["de"], before["de"])
    assert torch.equal(after["fr"], before["fr"]) and torch.equal(after["es"], before["es"])
    with torch.no_grad():
        for lang in ("fr", "es"):
            model.sluice[lang].alpha[:, :, 0] = 0  # nobody reads de's copy any more
    alpha = model.sharing_mode.alpha(model)
    remove_language(model, "de")
    assert list(model.encoders) == list(model.sluice) == ["fr", "es"]
    assert torch.equal(model.sharing_mode.alpha(model), alpha[:, 1:, :, 1:])


def test_subspaces_that_do_not_divide_the_hidden_size_are_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match=r"sluice_subspaces=5 must divide the encoder's hidden size 48"):
        sluiced(tokenizer, sluice_subspaces=5)


def test_the_recipe_and_a_short_training_run_learn_alpha_and_beta(corpus_dir, tiny_encoder_dir, tmp_path):
    recipe = load_recipe("recipes/quickstart/config_sluice.yaml").model
    assert (recipe.sharing, recipe.sluice_subspaces, recipe.sluice_orthogonality_weight,
            recipe.trainable_encoder_layers) == ("sluice", 2, 1e-4, 2)
    weights, out = short_training_run(corpus_dir, tiny_encoder_dir, tmp_path, "sluice")
    for i, lang in enumerate(LANGS):
        assert not torch.equal(weights[f"sluice.{lang}.alpha"], identity_row(i, 3, 2, 2))  # 2 blocks
        assert not torch.equal(weights[f"sluice.{lang}.beta"], torch.tensor([0.0, 1.0]))  # 2 blocks
    card = (out / "README.md").read_text()
    assert "## Sluice units" in card and (out / SLUICE_PNG).is_file()
