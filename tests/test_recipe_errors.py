"""Bad recipes fail at load time, before any data is read, with a message that names the key."""

import os
import re

import pytest
import yaml

from mtl_translate.configs import load_recipe
from mtl_translate.encoders import resolve_encoder


def recipe_file(tmp_path, text: str, name: str = "r.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("key, value, rule", [
    ("learning_rate", "0", "> 0"), ("learning_rate", "-1e-4", "> 0"), ("encoder_learning_rate", "0", "> 0"),
    ("max_steps", "0", ">= 1"), ("eval_steps", "0", ">= 1"), ("save_steps", "0", ">= 1"),
    ("logging_steps", "-5", ">= 1"), ("per_device_train_batch_size", "0", ">= 1"),
    ("per_device_eval_batch_size", "0", ">= 1"), ("gradient_accumulation_steps", "0", ">= 1"),
    ("save_total_limit", "0", ">= 1"), ("warmup_steps", "-1", ">= 0"), ("target_vocab_size", "8", ">= 261"),
    ("max_bad_steps", "0", ">= 1"), ("max_grad_norm", "0", "> 0"), ("num_beams", "0", ">= 1"),
    ("max_target_length", "1", ">= 2"), ("language_temperature", "0", "> 0"),
    ("decoder_dropout", "1.0", "in [0, 1)"), ("label_smoothing", "-0.1", "in [0, 1)"),
    ("famo_lr", "0", "> 0"), ("famo_gamma", "-1e-3", ">= 0"),
])
def test_out_of_range_number_names_key_and_rule(key, value, rule):
    with pytest.raises(ValueError, match=rf"^recipe key '{key}' must be {re.escape(rule)}, got "):
        load_recipe(None, [f"--{key}", value])


def test_edge_values_and_nulls_that_are_allowed():
    recipe = load_recipe(None, ["--warmup_steps", "0", "--max_steps", "1", "--encoder_learning_rate", "null",
                                "--validation_split", "null", "--test_split", "null", "--trainable_encoder_layers", "0",
                                "--loss_weights", "{de: 0}", "--no_repeat_ngram_size", "0"])
    assert recipe.data.validation_split is None and recipe.data.test_split is None
    assert recipe.training.warmup_steps == 0 and recipe.model.loss_weights == {"de": 0}


def test_new_training_keys_have_defaults_and_parse():
    t = load_recipe(None).training
    assert (t.overwrite_output_dir, t.max_bad_steps, t.bleu_tokenize) == (False, 10, None)
    args = ["--overwrite_output_dir", "true", "--max_bad_steps", "3", "--bleu_tokenize", "flores200"]
    t = load_recipe(None, args).training
    assert (t.overwrite_output_dir, t.max_bad_steps, t.bleu_tokenize) == (True, 3, "flores200")


@pytest.mark.parametrize("args, message", [
    (["--bleu_tokenize", "spacy"], r"'bleu_tokenize' is 'spacy', not a sacrebleu tokenizer: use one of .*13a.*flores"),
    (["--lr_scheduler_type", "cosin"], r"'lr_scheduler_type' is 'cosin'; use one of .*cosine"),
    (["--push_to_hub", "true"], r"'push_to_hub' is true but 'hub_model_id' is not set: add hub_model_id: ORG/NAME"),
])
def test_bad_choices_and_push_without_repo(args, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(None, args)


def test_push_to_hub_with_repo_id_is_fine():
    assert load_recipe(None, ["--push_to_hub", "true", "--hub_model_id", "me/model"]).training.push_to_hub


# --------------------------------------------------------------------------------- languages


@pytest.mark.parametrize("args, message", [
    (["--target_langs", "de,fr,de"], r"'target_langs' lists \['de'\] more than once \(\['de', 'fr', 'de'\]\)"),
    (["--target_langs", "de,en"], r"'source_lang' \('en'\) is also in target_langs \['de', 'en'\]; remove it"),
    (["--target_langs", "[]"], r"'target_langs' is empty"),
    (["--target_langs", "de,fr", "--loss_weights", "{de: 2, dee: 1}"],
     r"'loss_weights' names \['dee'\], not in target_langs \['de', 'fr'\]"),
    (["--target_langs", "de,fr", "--loss_weights", "{de: -1}"], r"'loss_weights' must be >= 0 .*\{'de': -1"),
    (["--target_langs", "de,fr,es", "--sharing", "partial", "--shared_layers", "2",
      "--language_groups", "{romance: [fr, es, it]}"], r"\"language_groups\['romance'\]\" names \['it'\], not in"),
])
def test_language_lists_are_consistent(args, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(None, args)


@pytest.mark.parametrize("text, key, got", [
    ("target_langs: [de, no]", r"target_langs\[1\]", "False"),  # Norwegian
    ("target_langs: [de, NO, 'no']", r"target_langs\[1\]", "False"),
    ("target_langs: [yes, de]", r"target_langs\[0\]", "True"),
    ("target_langs: [de, on]", r"target_langs\[1\]", "True"),
    ("target_langs: [de, Off]", r"target_langs\[1\]", "False"),
    ("source_lang: no\ntarget_langs: [de]", "source_lang", "False"),
    ("target_langs: [de, fr]\nloss_weights: {de: 1.0, no: 2.0}", r"loss_weights\[False\]", "False"),
    ("target_langs: [de, nb]\nsharing: partial\nshared_layers: 1\nlanguage_groups: {nordic: [nb, no]}",
     r"language_groups\['nordic'\]\[1\]", "False"),
])
def test_yaml_boolean_where_a_language_code_was_meant(tmp_path, text, key, got):
    with pytest.raises(ValueError, match=rf"recipe key .{key}. must be str, got {got}\. YAML reads an unquoted "
                                         r"no/yes/off/on/false/true as a boolean: quote it, e.g. 'no'"):
        load_recipe(recipe_file(tmp_path, text))


def test_quoted_no_and_yaml_y_n_are_language_codes(tmp_path):
    recipe = load_recipe(recipe_file(tmp_path, "target_langs: [de, 'no', n, y]"))
    assert recipe.data.target_langs == ["de", "no", "n", "y"]  # PyYAML keeps y/n as strings
    assert load_recipe(None, ["--target_langs", "de,no"]).data.target_langs == ["de", "no"]  # CLI commas: strings


@pytest.mark.parametrize("text, key, got", [
    ("target_langs: [de, 3]", r"target_langs\[1\]", "3"),
    ("target_langs: [de, ~]", r"target_langs\[1\]", "None"),
    ("target_langs: [de]\nloss_weights: {de: high}", r"loss_weights\['de'\]", "'high'"),
    ("column_mapping: {en: [a, b]}", r"column_mapping\['en'\]", r"\['a', 'b'\]"),
    ("target_langs: [de]\nlanguage_groups: {g: [de, [fr]]}", r"language_groups\['g'\]\[1\]", r"\['fr'\]"),
])
def test_items_of_lists_and_dicts_are_type_checked(tmp_path, text, key, got):
    with pytest.raises(ValueError, match=rf"recipe key .{key}. must be \w+, got {got}\."):
        load_recipe(recipe_file(tmp_path, text))


def test_non_string_yaml_key_is_reported_not_a_crash(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key\(s\) \[1, 'learning_rat'\]"):
        load_recipe(recipe_file(tmp_path, "1: x\nlearning_rat: 0.1\n"))


# ------------------------------------------------------------------------------------ base:


def test_base_cycle_names_the_chain(tmp_path):
    a = recipe_file(tmp_path, "base: b.yaml\nmax_steps: 3\n", "a.yaml")
    recipe_file(tmp_path, "base: a.yaml\n", "b.yaml")
    with pytest.raises(ValueError, match=r"recipe base cycle: \S+/a\.yaml -> \S+/b\.yaml -> \S+/a\.yaml; remove one"):
        load_recipe(a)
    own = recipe_file(tmp_path, "base: ./self.yaml\n", "self.yaml")
    with pytest.raises(ValueError, match=r"recipe base cycle: \S+/self\.yaml -> \S+/self\.yaml"):
        load_recipe(own)


def test_missing_base_names_the_recipe_that_asked_for_it(tmp_path):
    child = recipe_file(tmp_path, "base: nope.yaml\n", "child.yaml")
    with pytest.raises(ValueError, match=r"recipe file \S+/nope\.yaml \(the base of \S+/child\.yaml\) does not exist"):
        load_recipe(child)
    with pytest.raises(ValueError, match=r"base must be a file name, got \['x'\]"):
        load_recipe(recipe_file(tmp_path, "base: [x]\n"))


def test_saved_recipe_with_nulls_loads_again(tmp_path):
    """recipe.yaml as training writes it (every key, nulls included) must load again: compare and resume read it."""
    recipe = load_recipe(None, ["--validation_split", "null", "--bleu_tokenize", "char"])
    recipe.save(tmp_path / "recipe.yaml")
    assert yaml.safe_load((tmp_path / "recipe.yaml").read_text())["validation_split"] is None
    assert load_recipe(str(tmp_path / "recipe.yaml")).to_dict() == recipe.to_dict()


# ---------------------------------------------------------------------------------- encoders


@pytest.mark.parametrize("name", ["./no_such_encoder", "/no/such/encoder", "~/no_such_encoder", "models/a/b"])
def test_missing_local_encoder_path_is_an_error_not_a_hub_lookup(name):
    with pytest.raises(ValueError, match=rf"encoder_name_or_path '{name}' looks like a local path, and \S+ does not "
                                         r"exist; give the folder that holds the encoder's config\.json, or a Hub id"):
        resolve_encoder(name)


def test_local_encoder_path_resolution(tmp_path, monkeypatch):
    (tmp_path / "enc").mkdir()
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_encoder("~/enc") == str(tmp_path / "enc")  # expanded: transformers does not expand ~
    assert resolve_encoder(str(tmp_path / "enc")) == str(tmp_path / "enc")
    with pytest.raises(ValueError, match=r"is a file, not a checkpoint folder"):
        resolve_encoder(str(tmp_path / "file"))
    assert resolve_encoder("org/some-model") == "org/some-model"  # a Hub id: left to transformers
    assert resolve_encoder("bert-base-uncased") == "bert-base-uncased"
    monkeypatch.chdir(tmp_path)
    assert os.path.isdir(resolve_encoder("./enc"))
