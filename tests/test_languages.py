"""Languages after training, for every sharing mode: add a language (trained), remove one, retrain one; every other
language keeps its weights bit for bit and its generated ids."""

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from mtl_translate import Translator
from mtl_translate.configs import load_recipe
from mtl_translate.languages import add_language, remove_language
from mtl_translate.lifelong import add_language_to_folder, remove_language_from_folder
from mtl_translate.train import run

from .conftest import tiny_config, tiny_recipe

TEXTS = ["Open file", "Permission denied", "Delete selected items", "Search the web"]
MODES = {  # mode -> (extra base recipe keys, extra add-language keys)
    "hard": ({}, []),
    "soft": ({}, []),
    "adapters": ({}, []),
    "partial-own-group": ({"sharing": "partial", "shared_layers": 1}, []),
    "partial-join-group": ({"sharing": "partial", "shared_layers": 1, "language_groups": {"romance": ["fr"]}},
                           ["--language_groups", "{romance: [fr, es]}"]),
}


def ids(folder, langs) -> dict:
    translator = Translator.from_pretrained(str(folder), device="cpu")
    enc = translator.tokenizer.source(TEXTS, padding=True, return_tensors="pt", return_token_type_ids=False)
    return {lang: x.tolist() for lang, x in translator.model.generate(**enc, langs=langs, max_new_tokens=6).items()}


def assert_kept(old_folder, new_folder, langs) -> None:
    """Every weight of `old_folder` that is not another language's head is bitwise equal in `new_folder`."""
    old, new = load_file(old_folder / "model.safetensors"), load_file(new_folder / "model.safetensors")
    model = Translator.from_pretrained(str(old_folder), device="cpu").model
    others = [prefix for lang in model.config.languages if lang not in langs
              for prefix in [f"decoders.{lang}.", *model.sharing_mode.owned_prefixes(model, lang)]]  # theirs
    checked = [k for k in old if not k.startswith((*others, "loss_weighting.")) and k in new]
    assert checked and all(torch.equal(old[k], new[k]) for k in checked)
    assert ids(old_folder, langs) == ids(new_folder, langs)


def mixing_base_and_added(corpus_dir, tiny_encoder_dir, tmp_path, sharing) -> tuple:
    """A de, fr model with `sharing` (cross-stitch or sluice) trained 4 steps, and es added to it and trained 3 steps:
    (its folder, the added one's, their weights)."""
    base, added = tmp_path / "base", tmp_path / "added"
    run(load_recipe(base=tiny_recipe(corpus_dir, tiny_encoder_dir, base, target_langs=["de", "fr"], sharing=sharing,
                                     trainable_encoder_layers=1, max_steps=4, eval_steps=4, save_steps=4)))
    add_language_to_folder(str(base), "es", str(corpus_dir), str(added),
                           ["--max_steps", "3", "--eval_steps", "3", "--save_steps", "3"])
    return base, added, load_file(base / "model.safetensors"), load_file(added / "model.safetensors")


def remove_refuse_and_retrain(old, added, tmp_path) -> dict:
    """Removing the added es gives the base weights `old` back bit for bit; removing fr, whose copy de and es read, is
    refused; retraining de alone keeps fr and es bit for bit. Returns the retrained weights."""
    removed = remove_language_from_folder(str(added), "es", str(tmp_path / "removed"))
    back = load_file(removed / "model.safetensors")
    assert back.keys() == old.keys() and all(torch.equal(value, back[k]) for k, value in old.items())
    with pytest.raises(ValueError, match=r"cannot remove 'fr': \['de', 'es'\] read its encoder copy"):
        remove_language_from_folder(str(added), "fr", str(tmp_path / "refused"))
    recipe = yaml.safe_load((added / "recipe.yaml").read_text())
    recipe.update(init_model=str(added), train_languages=["de"], output_dir=str(tmp_path / "retrained"), max_steps=2,
                  eval_steps=2, save_steps=2, resume_from_checkpoint=None)
    run(load_recipe(base=recipe))
    assert_kept(added, tmp_path / "retrained", ["fr", "es"])  # for sluice, de's α rows included: not its own
    return load_file(tmp_path / "retrained/model.safetensors")


@pytest.fixture(scope="module", params=list(MODES))
def base(request, corpus_dir, tiny_encoder_dir, tmp_path_factory):
    keys, add_keys = MODES[request.param]
    tmp = tmp_path_factory.mktemp(request.param)
    keys = {"sharing": request.param, **keys}
    run(load_recipe(base=tiny_recipe(corpus_dir, tiny_encoder_dir, tmp / "base", target_langs=["de", "fr"],
                                     trainable_encoder_layers=1, max_steps=4, eval_steps=4, save_steps=4, **keys)))
    return tmp, add_keys


@pytest.mark.slow
def test_add_then_remove_then_retrain_one_keep_every_other_language(base, corpus_dir):
    tmp, add_keys = base
    added = tmp / "added"
    results = add_language_to_folder(str(tmp / "base"), "es", str(corpus_dir), str(added),
                                     ["--max_steps", "3", "--eval_steps", "3", "--save_steps", "3", *add_keys])
    config = json.loads((added / "config.json").read_text())
    assert config["languages"] == ["de", "fr", "es"] and (added / "tokenizers/es/tokenizer.model").is_file()
    assert results["carried_over"]["languages"] == ["de", "fr"] and set(results["bleu"]) == {"de", "fr", "es"}
    assert_kept(tmp / "base", added, ["de", "fr"])
    new_weights = load_file(added / "model.safetensors")
    assert any(k.startswith("decoders.es.") for k in new_weights)

    removed = remove_language_from_folder(str(added), "fr", str(tmp / "removed"))
    weights = load_file(removed / "model.safetensors")
    assert not any(k.startswith("decoders.fr.") for k in weights) and len(weights) < len(new_weights)
    assert (removed / "model.safetensors").stat().st_size < (added / "model.safetensors").stat().st_size
    assert json.loads((removed / "config.json").read_text())["languages"] == ["de", "es"]
    assert yaml.safe_load((removed / "recipe.yaml").read_text())["target_langs"] == ["de", "es"]
    assert_kept(added, removed, ["de", "es"])

    recipe = yaml.safe_load((added / "recipe.yaml").read_text())
    recipe.update(init_model=str(added), train_languages=["de"], output_dir=str(tmp / "retrained"), max_steps=2,
                  eval_steps=2, save_steps=2, overwrite_output_dir=False, resume_from_checkpoint=None)
    run(load_recipe(base=recipe))
    assert_kept(added, tmp / "retrained", ["fr", "es"])
    before, after = load_file(added / "model.safetensors"), load_file(tmp / "retrained/model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoders.de."))


def test_adding_and_removing_in_memory_keeps_the_other_parameters(tokenizer):
    torch.manual_seed(0)
    from mtl_translate import MTLTranslationModel

    model = MTLTranslationModel(tiny_config(tokenizer, sharing="soft", languages=["de", "fr"],
                                            loss_weighting="uncertainty"))
    with torch.no_grad():
        model.loss_weighting.log_vars.copy_(torch.tensor([0.5, -0.5]))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    add_language(model, "es", len(tokenizer["es"]))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("loss_weighting."))
    assert model.loss_weighting.log_vars.tolist() == [0.5, -0.5, 0.0]  # carried over, the new one at its init
    mean = (before["encoders.de.embeddings.word_embeddings.weight"] + before["encoders.fr.embeddings.word_embeddings."
                                                                            "weight"]) / 2
    assert torch.allclose(after["encoders.es.embeddings.word_embeddings.weight"], mean)  # the mean of the copies
    remove_language(model, "de")
    assert list(model.encoders) == ["fr", "es"] and list(model.decoders) == ["fr", "es"]
    assert model.config.languages == ["fr", "es"] and model.loss_weighting.log_vars.tolist() == [-0.5, 0.0]


def test_bad_language_changes_are_clear_errors(tiny_model, tokenizer, tmp_path):
    with pytest.raises(ValueError, match=r"'de' is already a language of this model"):
        add_language(tiny_model, "de", 10)
    with pytest.raises(ValueError, match=r"'it' is not a language of this model"):
        remove_language(tiny_model, "it")
    with pytest.raises(ValueError, match="has no recipe.yaml"):
        add_language_to_folder(str(tmp_path), "it", "data", str(tmp_path / "out"))


@pytest.mark.slow
def test_cross_stitch_add_remove_and_retrain_one_keep_the_others(corpus_dir, tiny_encoder_dir, tmp_path):
    """Older languages do not read an added copy (their α weight on it is 0, frozen while it trains), so adding a
    language keeps their ids, and removing it again gives the model back bit for bit. A language whose copy others
    read owns only its head (its α row sets what its copy passes on): retraining it alone keeps the others bit for bit
    and its row as it was; removing it is refused."""
    base, added, old, new = mixing_base_and_added(corpus_dir, tiny_encoder_dir, tmp_path, "cross_stitch")
    assert all(torch.equal(value, new[k][..., :value.shape[-1]]) for k, value in old.items())  # α rows: + a 0 column
    assert ids(base, ["de", "fr"]) == ids(added, ["de", "fr"])
    retrained = remove_refuse_and_retrain(old, added, tmp_path)
    assert torch.equal(new["cross_stitch.de.alpha"], retrained["cross_stitch.de.alpha"])  # read via its copy: frozen


@pytest.mark.slow
def test_sluice_add_remove_and_retrain_one_keep_the_others(corpus_dir, tiny_encoder_dir, tmp_path):
    """As cross-stitch, older rows read an added copy with weight 0: adding a language keeps the older ids, removing
    it gives the model back bit for bit. A language whose copy others read owns only its β (and head): its α rows also
    set what its copy passes on, so retraining it alone trains β and keeps every other language bit for bit."""
    base, added, old, new = mixing_base_and_added(corpus_dir, tiny_encoder_dir, tmp_path, "sluice")
    for k, value in old.items():  # α rows (blocks, K, N, K): + a 0 copy
        assert torch.equal(value, new[k][:, :, :2] if k.endswith(".alpha") else new[k])
        assert not k.endswith(".alpha") or not new[k][:, :, 2].any()
    assert ids(base, ["de", "fr"]) == ids(added, ["de", "fr"])
    retrained = remove_refuse_and_retrain(old, added, tmp_path)  # de's α rows kept too: not its own
    assert torch.equal(new["sluice.de.alpha"], retrained["sluice.de.alpha"])
    assert not torch.equal(new["sluice.de.beta"], retrained["sluice.de.beta"])  # de's β trained
