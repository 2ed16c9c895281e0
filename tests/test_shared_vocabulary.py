"""`shared_vocabularies: [[fr, es]]`: the grouped languages get one SentencePiece vocabulary trained on their
targets together (a copy in each language's tokenizers/<lang>/), the others their own; heads stay separate. Checked
through a real training run, the saved model, a resume, and the recipe errors."""

import json
from pathlib import Path

import pytest
import yaml
from accelerate import Accelerator

from mtl_translate import Translator
from mtl_translate import train as train_module
from mtl_translate.compare import single_task_recipe
from mtl_translate.configs import load_recipe

from .conftest import tiny_recipe


def recipe_file(tmp_path, corpus_dir, encoder, out, **overrides) -> str:
    path = tmp_path / f"recipe_{out.name}.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(corpus_dir, encoder, out, **overrides)))
    return str(path)


def pieces(model_dir, lang) -> set[str]:
    tok = Translator.from_pretrained(str(model_dir), device="cpu").tokenizer[lang]
    return {tok.sp_model.id_to_piece(i) for i in range(len(tok))}


def has(vocabulary: set[str], char: str) -> bool:
    return any(char in piece for piece in vocabulary)


def test_grouped_languages_share_one_vocabulary_trained_on_both(corpus_dir, tiny_encoder_dir, tmp_path):
    out = tmp_path / "run"
    recipe = load_recipe(recipe_file(tmp_path, corpus_dir, tiny_encoder_dir, out, shared_vocabularies=[["fr", "es"]]))
    train_module.run(recipe)
    models = {lang: Path(out, "tokenizers", lang, "tokenizer.model").read_bytes() for lang in ("de", "fr", "es")}
    assert models["fr"] == models["es"] != models["de"]
    shared, german = pieces(out, "fr"), pieces(out, "de")
    assert has(shared, "ê") and has(shared, "ó")  # fenêtre (French only), Conexión (Spanish only)
    assert not has(german, "ó")
    config = json.loads(Path(out, "config.json").read_text())
    assert config["target_vocab_sizes"]["fr"] == config["target_vocab_sizes"]["es"] == len(shared)
    translated = Translator.from_pretrained(str(out), device="cpu").translate(["Open file"], max_new_tokens=4)
    assert set(translated) == {"de", "fr", "es"}

    again = load_recipe(recipe_file(tmp_path, corpus_dir, tiny_encoder_dir, out, shared_vocabularies=[]))
    again.training.resume_from_checkpoint = "latest"
    with pytest.raises(ValueError, match="tokenizers were trained on other data or languages"):
        train_module.build_tokenizer(again, *train_module.load_data(again, Accelerator(cpu=True))[:1],
                                     str(tiny_encoder_dir), Accelerator(cpu=True))


def test_without_groups_every_language_has_its_own_vocabulary(corpus_dir, tiny_encoder_dir, tmp_path):
    recipe = load_recipe(recipe_file(tmp_path, corpus_dir, tiny_encoder_dir, tmp_path / "own"))
    rows, _ = train_module.load_data(recipe, Accelerator(cpu=True))
    tokenizer = train_module.build_tokenizer(recipe, rows, str(tiny_encoder_dir), Accelerator(cpu=True))
    fr = {tokenizer["fr"].sp_model.id_to_piece(i) for i in range(len(tokenizer["fr"]))}
    assert has(fr, "ê") and not has(fr, "ó")


@pytest.mark.parametrize("groups, message", [
    ([["fr", "it"]], r"'shared_vocabularies\[0\]' names \['it'\], not in target_langs"),
    ([["fr", "es"], ["es", "de"]], r"\['es'\] are in more than one"),
    ([["fr"]], r"\[\['fr'\]\] has fewer than two"),
])
def test_recipe_errors_name_the_key(groups, message, corpus_dir, tiny_encoder_dir, tmp_path):
    with pytest.raises(ValueError, match=message):
        load_recipe(base=tiny_recipe(corpus_dir, tiny_encoder_dir, tmp_path / "x", shared_vocabularies=groups))


def test_a_group_with_a_language_of_the_init_model_is_refused(corpus_dir, tiny_encoder_dir, tmp_path):
    first = load_recipe(base=tiny_recipe(corpus_dir, tiny_encoder_dir, tmp_path / "first", target_langs=["de", "fr"],
                                         max_steps=2, eval_steps=2, save_steps=2))
    train_module.run(first)
    more = load_recipe(base=tiny_recipe(corpus_dir, tiny_encoder_dir, tmp_path / "more", init_model=str(tmp_path /
                                        "first"), shared_vocabularies=[["fr", "es"]]))
    with pytest.raises(ValueError, match=r"groups \['fr'\], which keep the vocabulary of init_model"):
        train_module.run(more)


def test_single_task_models_of_a_comparison_have_their_own_vocabulary(corpus_dir, tiny_encoder_dir, tmp_path):
    recipe = load_recipe(base=tiny_recipe(corpus_dir, tiny_encoder_dir, tmp_path / "x",
                                          shared_vocabularies=[["fr", "es"]]))
    single = single_task_recipe(recipe, "fr", tmp_path / "single-fr")
    assert single.model.shared_vocabularies == [] and single.validate()
