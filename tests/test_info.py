"""`mtl-translate info`: sizes from the config (no weights read), recipe and scores when the folder has them."""

import json

import pytest
import torch
import yaml

from mtl_translate import MTLTranslationModel, Translator
from mtl_translate.cli import main

from .conftest import LANGS, tiny_config


def info(capsys, *args) -> str:
    main(["info", *map(str, args)])
    return capsys.readouterr().out


def test_info_of_a_bare_folder_gives_languages_sizes_and_settings(tiny_model, tokenizer, tmp_path, capsys):
    Translator(tiny_model, tokenizer).save_pretrained(tmp_path / "model")
    data = json.loads(info(capsys, "--model", tmp_path / "model", "--json"))
    assert data["languages"] == LANGS and data["source_lang"] == "en"
    heads = {lang: sum(p.numel() for p in tiny_model.decoders[lang].parameters()) for lang in LANGS}
    assert data["parameters"] == {"total": tiny_model.num_parameters(),
                                  "encoder": tiny_model.num_parameters() - sum(heads.values()), "heads": heads,
                                  "shared_decoder": 0, "encoder_owned_by_language": dict.fromkeys(LANGS, 0)}
    assert data["vocab_sizes"] == {"source": tokenizer.source.vocab_size,
                                   **{lang: len(tokenizer.targets[lang]) for lang in LANGS}}
    assert data["sharing"] == {"mode": "hard"} and data["max_target_positions"] == 32
    assert data["generation"]["num_beams"] == 1 and data["recipe"] is None and data["scores"] is None
    text = info(capsys, "--model", tmp_path / "model")
    assert "languages: en -> de, fr, es" in text and "sharing: hard" in text
    assert f"parameters: {tiny_model.num_parameters():,} total" in text
    assert "scores: none (no eval_results.json)" in text and "recipe: none (no recipe.yaml)" in text


def test_info_counts_the_encoder_parts_each_language_owns(tokenizer, tmp_path, capsys):
    model = MTLTranslationModel(tiny_config(tokenizer, sharing="adapters", adapter_size=8))
    Translator(model, tokenizer).save_pretrained(tmp_path / "model")
    data = json.loads(info(capsys, "--model", tmp_path / "model", "--json"))
    owned = {lang: sum(p.numel() for name, p in model.named_parameters() if name.startswith(f"adapters.{lang}."))
             for lang in LANGS}
    assert data["parameters"]["encoder_owned_by_language"] == owned and all(owned.values())
    assert data["sharing"] == {"mode": "adapters", "adapter_size": 8}
    assert f"de {data['parameters']['heads']['de']:,} (+{owned['de']:,} own encoder)" in info(
        capsys, "--model", tmp_path / "model")


def test_info_shows_the_recipe_and_the_scores_training_wrote(tiny_model, tokenizer, tmp_path, capsys):
    folder = tmp_path / "model"
    Translator(tiny_model, tokenizer).save_pretrained(folder)
    (folder / "recipe.yaml").write_text(yaml.safe_dump({"learning_rate": 0.002, "target_langs": LANGS}))
    scores = {"bleu": {"de": 11.5, "fr": 20.25}, "chrf": {"de": 30.0, "fr": 40.0}, "n": {"de": 9, "fr": 8},
              "signatures": {"de": "nrefs:1|tok:13a", "fr": "nrefs:1|tok:13a"}, "mean_bleu": 15.88,
              "mean_chrf": 35.0, "split": "test", "dataset": "data/gettext"}
    (folder / "eval_results.json").write_text(json.dumps(scores))
    text = info(capsys, "--model", folder)
    assert "scores (dataset data/gettext, split test):" in text
    assert "de         11.50   30.00       9" in text and "mean       15.88   35.00      17" in text
    assert "recipe:\nlearning_rate: 0.002\n" in text
    data = json.loads(info(capsys, "--model", folder, "--json"))
    assert data["scores"] == scores and data["recipe"] == {"learning_rate": 0.002, "target_langs": LANGS}


def test_info_of_a_damaged_file_or_a_missing_folder_is_one_line(tiny_model, tokenizer, tmp_path):
    folder = tmp_path / "model"
    Translator(tiny_model, tokenizer).save_pretrained(folder)
    (folder / "eval_results.json").write_text('{"bleu": ')
    with pytest.raises(SystemExit) as exit_info:
        main(["info", "--model", str(folder)])
    assert str(exit_info.value.code).startswith(
        f"mtl-translate info: error: {folder / 'eval_results.json'} is not valid JSON (")
    with pytest.raises(SystemExit) as exit_info:
        main(["info", "--model", str(tmp_path / "missing")])
    assert str(exit_info.value.code) == (f"mtl-translate info: error: model folder '{tmp_path / 'missing'}' does not "
                                         f"exist (nor is it a Hub repo id ORG/NAME).")


@pytest.mark.parametrize("sharing, settings", [
    ("cross_stitch", {"cross_stitch_init": 0.9}),
    ("sluice", {"sluice_subspaces": 2, "sluice_orthogonality_weight": 0.001}),
])
def test_info_of_mixing_modes_reads_alpha_for_what_each_language_owns(tokenizer, tmp_path, capsys, sharing, settings):
    model = MTLTranslationModel(tiny_config(tokenizer, sharing=sharing, **settings))
    with torch.no_grad():
        for lang, row in getattr(model, sharing).items():  # every copy read by the others but de's
            row.alpha.uniform_(0.1, 1.0).select(model.sharing_mode.copy_axis, 0).fill_(float(lang == "de"))
    Translator(model, tokenizer).save_pretrained(tmp_path / "model")
    data = json.loads(info(capsys, "--model", tmp_path / "model", "--json"))
    assert data["sharing"] == {"mode": sharing, **settings}
    owned = {lang: sum(p.numel() for name, p in model.named_parameters()
                       if name.startswith(tuple(model.sharing_mode.owned_prefixes(model, lang)))) for lang in LANGS}
    assert data["parameters"]["encoder_owned_by_language"] == owned
    assert owned["de"] > 10 * owned["fr"]  # de owns its copy; fr and es, read by others, their mixing weights
    assert f"sharing: {sharing}, " + ", ".join(f"{k}={v}" for k, v in settings.items()) in info(
        capsys, "--model", tmp_path / "model")
