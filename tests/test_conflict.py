"""Gradient conflict logging: per-language gradients at the shared encoder output, their cosines and norms."""

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from mtl_translate import MTLTranslationModel
from mtl_translate.configs import load_recipe
from mtl_translate.conflict import conflict_keys, conflict_summary, gradient_conflict
from mtl_translate.data.collator import MultiTargetCollator
from mtl_translate.train import run

from .conftest import LANGS, corpus_rows, tiny_config, tiny_recipe


def twin_model(tokenizer, **config):
    """Languages de and fr with the same vocabulary and the same head weights: given the same labels, one task."""
    vocab = len(tokenizer["de"])
    torch.manual_seed(0)
    model = MTLTranslationModel(tiny_config(tokenizer, languages=["de", "fr"],
                                            target_vocab_sizes={"de": vocab, "fr": vocab}, **config))
    model.decoders["fr"].load_state_dict(model.decoders["de"].state_dict())
    return model


def twin_batch(tokenizer, fr_rows=slice(None)):
    """Four rows with German labels for de and, on `fr_rows` only, the same labels for fr."""
    batch = MultiTargetCollator(tokenizer, "en", ["de"])(corpus_rows()[:4])
    fr = torch.full_like(batch["labels"]["de"], -100)
    fr[fr_rows] = batch["labels"]["de"][fr_rows]
    batch["labels"]["fr"] = fr
    return batch


def conflict_of(model, batch, langs):
    out = model(**batch, output_encoder_states=True)
    return gradient_conflict(out, batch["labels"], langs)


def test_the_same_task_twice_has_cosine_one_and_equal_norms(tokenizer):
    values = conflict_of(twin_model(tokenizer), twin_batch(tokenizer), ["de", "fr"])
    assert list(values) == conflict_keys(["de", "fr"]) == ["grad_norm_de", "grad_norm_fr", "grad_cos_de_fr"]
    assert values["grad_cos_de_fr"] == pytest.approx(1.0, abs=1e-5)
    assert values["grad_norm_de"] == pytest.approx(values["grad_norm_fr"], rel=1e-5) and values["grad_norm_de"] > 0


def test_languages_on_disjoint_rows_have_cosine_zero_and_an_absent_one_no_key(tokenizer):
    batch = twin_batch(tokenizer, fr_rows=slice(2, 4))
    batch["labels"]["de"][2:] = -100  # de on rows 0-1, fr on rows 2-3: gradients on disjoint rows of h
    values = conflict_of(twin_model(tokenizer), batch, ["de", "fr"])
    assert values["grad_cos_de_fr"] == pytest.approx(0.0, abs=1e-7)
    del batch["labels"]["fr"]
    assert list(conflict_of(twin_model(tokenizer), batch, ["de", "fr"])) == ["grad_norm_de"]


def test_values_are_those_of_separate_backward_passes_and_pcgrad_does_not_alter_them(tokenizer):
    """Reference: one forward and backward per language, the gradient read at the encoder's output tensor."""
    batch = MultiTargetCollator(tokenizer, "en", LANGS)(corpus_rows()[8:14])  # rows with missing targets
    torch.manual_seed(0)
    model = MTLTranslationModel(tiny_config(tokenizer))
    held = {}

    def keep_output(module, args, output):
        output.last_hidden_state.retain_grad()
        held["h"] = output.last_hidden_state

    hook = model.encoder.register_forward_hook(keep_output)
    grads = {}
    for lang in LANGS:
        model(**batch).language_losses[lang].backward()
        grads[lang] = held["h"].grad.flatten()
    hook.remove()
    expected = {"grad_cos_de_fr": F.cosine_similarity(grads["de"], grads["fr"], dim=0).item(),
                "grad_cos_fr_es": F.cosine_similarity(grads["fr"], grads["es"], dim=0).item()}
    values = conflict_of(model, batch, ["de", "fr", "es"])
    assert values["grad_norm_es"] == pytest.approx(grads["es"].norm().item(), rel=1e-5)
    assert values["grad_cos_de_fr"] == pytest.approx(expected["grad_cos_de_fr"], abs=1e-5)
    assert values["grad_cos_fr_es"] == pytest.approx(expected["grad_cos_fr_es"], abs=1e-5)
    assert abs(values["grad_cos_de_fr"]) < 0.99  # different languages: a real, not a trivial, value
    surgery = MTLTranslationModel(tiny_config(tokenizer, loss_weighting="pcgrad"))
    surgery.load_state_dict(model.state_dict())
    assert conflict_of(surgery, batch, ["de", "fr", "es"]) == pytest.approx(values, abs=1e-6)


def test_the_key_needs_heads_that_read_one_encoder_output():
    with pytest.raises(ValueError, match=r"recipe key 'log_gradient_conflict' compares the languages' gradients at "
                                         r"one shared encoder output, which only sharing: hard has; got sharing: soft"):
        load_recipe(None, ["--log_gradient_conflict", "true", "--sharing", "soft"])


def test_training_logs_the_cosines_at_logging_steps_and_trains_the_same_model(corpus_dir, tiny_encoder_dir,
                                                                              tmp_path):
    def train(name, **keys):
        out = tmp_path / name
        run(load_recipe(None, base=tiny_recipe(corpus_dir, tiny_encoder_dir, out, max_steps=4, logging_steps=2,
                                               validation_split=None, test_split=None, **keys)))
        state = json.loads((out / "trainer_state.json").read_text())
        return [h for h in state["history"] if "train/loss" in h], load_file(out / "model.safetensors")

    logged, weights = train("on", log_gradient_conflict=True)
    assert [h["step"] for h in logged] == [1, 2, 4]
    for h in logged:
        assert {f"train/{k}" for k in conflict_keys(LANGS)} <= set(h)
        assert all(-1 <= h[f"train/grad_cos_{pair}"] <= 1 for pair in ("de_fr", "de_es", "fr_es"))
    plain, plain_weights = train("off")
    assert not any(k.startswith("train/grad_") for h in plain for k in h)
    assert [h["train/loss"] for h in plain] == [h["train/loss"] for h in logged]  # measuring changes nothing
    assert all(torch.equal(plain_weights[k], weights[k]) for k in weights)


def test_conflict_summary_reads_the_logged_steps_by_language_code():
    """Pairs are found by the run's language codes, so a code with an underscore (pt_BR) is not split; steps that
    logged no gradients (validation entries) are not counted; a run without any gives {}."""
    history = [{"step": 1, "train/grad_cos_pt_BR_de": -0.5, "train/grad_norm_pt_BR": 0.2, "train/grad_norm_de": 0.1},
               {"step": 2, "train/grad_cos_pt_BR_de": 0.1, "train/grad_norm_pt_BR": 0.4, "train/grad_norm_de": 0.3},
               {"step": 2, "validation": {"bleu": {}}}]
    summary = conflict_summary(history, ["pt_BR", "de"])
    assert summary["cosine"] == {"pt_BR/de": pytest.approx(-0.2)}
    assert summary["negative"] == {"pt_BR/de": 0.5}
    assert summary["norm"] == {"pt_BR": pytest.approx(0.3), "de": pytest.approx(0.2)}
    assert summary["logged_steps"] == 2
    assert conflict_summary([{"step": 1, "train/loss": 2.0}], ["pt_BR", "de"]) == {}
