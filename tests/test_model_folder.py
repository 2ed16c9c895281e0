"""Loading a model folder: every broken folder is an error naming the path and what is missing; nothing in the folder
runs; Hub ids still go to the Hub. Training a target tokenizer that cannot work is an error naming the language."""

import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

from mtl_translate import MTLConfig, MTLTranslationModel, Translator
from mtl_translate.tokenization_mtl import MTLTokenizer, TargetTokenizer

from .conftest import CORPUS


@pytest.fixture
def folder(tiny_model, tokenizer, tmp_path):
    path = tmp_path / "model"
    Translator(tiny_model, tokenizer).save_pretrained(path)
    return path


def edit_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    for key, value in changes.items():
        config[key] = value(config[key]) if callable(value) else value
    (path / "config.json").write_text(json.dumps(config))


def to_pickle(path):
    torch.save(load_file(path / "model.safetensors"), path / "pytorch_model.bin")
    (path / "model.safetensors").unlink()


BROKEN = {
    "no config.json": (lambda p: (p / "config.json").unlink(), FileNotFoundError, r"has no config\.json"),
    "truncated config.json": (lambda p: (p / "config.json").write_text((p / "config.json").read_text()[:100]),
                              ValueError, r"config\.json is not valid JSON .*truncated or damaged"),
    "foreign model_type": (lambda p: edit_config(p, model_type="bert"), ValueError,
                           r"config\.json has model_type 'bert', not 'mtl_translation'"),
    "no weights": (lambda p: (p / "model.safetensors").unlink(), FileNotFoundError, r"has no model\.safetensors"),
    "pickle weights only": (to_pickle, ValueError, r"has pytorch_model\.bin but no model\.safetensors.*pickle"),
    "damaged weights": (lambda p: os.truncate(p / "model.safetensors", 1000), ValueError,
                        r"model\.safetensors does not load with its config\.json"),
    "no tokenizers/": (lambda p: shutil.rmtree(p / "tokenizers"), FileNotFoundError,
                       r"has no tokenizers/ folder .*\['de', 'fr', 'es'\]"),
    "no source tokenizer": (lambda p: shutil.rmtree(p / "tokenizers" / "source"), FileNotFoundError,
                            r"has no tokenizers/source/"),
    "one language's tokenizer missing": (lambda p: shutil.rmtree(p / "tokenizers" / "es"), FileNotFoundError,
                                         r"no tokenizer for language\(s\) \['es'\].*config\.json has languages "
                                         r"\['de', 'fr', 'es'\], tokenizers/ has \['de', 'fr'\]"),
    "damaged tokenizer": (lambda p: os.truncate(p / "tokenizers" / "fr" / "tokenizer.model", 100),
                          ValueError, r"cannot load the tokenizer in tokenizers/fr/"),
    "tokenizer of another vocabulary size": (
        lambda p: edit_config(p, target_vocab_sizes=lambda sizes: {**sizes, "es": 999}), ValueError,
        r"tokenizers/es/tokenizer\.model has 330 pieces but config\.json has target_vocab_sizes\['es'\] = 999"),
    "config language without weights": (
        lambda p: (edit_config(p, languages=lambda langs: [*langs, "it"],
                               target_vocab_sizes=lambda sizes: {**sizes, "it": sizes["es"]}),
                   shutil.copytree(p / "tokenizers" / "es", p / "tokenizers" / "it")),
        ValueError, r"model\.safetensors lacks \d+ weights that config\.json needs .*decoders\.it\."),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_folder_is_an_error_naming_the_path_and_the_problem(folder, case):
    break_folder, error, message = BROKEN[case]
    break_folder(folder)
    with pytest.raises(error, match=message) as info:
        Translator.from_pretrained(str(folder), device="cpu")
    assert str(folder) in str(info.value)


def test_tokenizer_alone_checks_the_folder_too(folder):
    assert MTLTokenizer.from_pretrained(folder).languages == ["de", "fr", "es"]
    shutil.rmtree(folder / "tokenizers" / "de")
    with pytest.raises(FileNotFoundError, match=r"no tokenizer for language\(s\) \['de'\]"):
        MTLTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("name", ["/no/such/model", "./no-such-model", "~/no-such-model", "runs/a/model",
                                  "no such model"])
def test_missing_path_is_named_and_never_looked_up_on_the_hub(name, monkeypatch):
    def hub(*args, **kwargs):
        raise AssertionError("looked up on the Hub")

    monkeypatch.setattr(MTLConfig, "get_config_dict", hub)
    with pytest.raises(FileNotFoundError, match=f"model folder '{name}' does not exist"):
        Translator.from_pretrained(name)


def test_a_file_is_not_a_model_folder(folder):
    with pytest.raises(ValueError, match=r"config\.json is a file; a model is a folder"):
        Translator.from_pretrained(str(folder / "config.json"))


def test_hub_id_goes_to_the_hub_and_its_failure_names_it(monkeypatch):
    asked = []

    def hub(name, **kwargs):
        asked.append(name)
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(MTLConfig, "get_config_dict", hub)
    with pytest.raises(FileNotFoundError, match=r"acme/mtl-ui is no local folder, and loading it as a Hub repo id "
                                                r"failed: We couldn't connect"):
        Translator.from_pretrained("acme/mtl-ui")
    assert asked == ["acme/mtl-ui"]


def test_loading_never_runs_code_from_the_folder(folder, tmp_path):
    """`auto_map` entries in config.json and the source tokenizer's config point at a module that would leave a
    marker file when imported: loading must use our own classes and never import it."""
    marker = tmp_path / "code-ran"
    evil = f"open({str(marker)!r}, 'w').write('ran')\nclass Evil:\n    pass\n"
    source = folder / "tokenizers" / "source"
    for where in (folder, source):
        (where / "evil.py").write_text(evil)
    edit_config(folder, auto_map={"AutoConfig": "evil.Evil", "AutoModel": "evil.Evil"})
    tok_config = json.loads((source / "tokenizer_config.json").read_text())
    tok_config["auto_map"] = {"AutoTokenizer": ["evil.Evil", None]}
    (source / "tokenizer_config.json").write_text(json.dumps(tok_config))
    translator = Translator.from_pretrained(str(folder), device="cpu")
    assert not marker.exists()
    assert type(translator.model) is MTLTranslationModel and translator.tokenizer.languages == ["de", "fr", "es"]


def test_a_valid_folder_loads_with_safetensors_also_from_home(folder, tiny_model, monkeypatch):
    monkeypatch.setenv("HOME", str(folder.parent))
    translator = Translator.from_pretrained("~/model", device="cpu")
    for name, tensor in tiny_model.state_dict().items():
        assert torch.equal(translator.model.state_dict()[name], tensor), name


GERMAN = [row[1] for row in CORPUS if row[1]]


def test_target_vocab_too_small_for_the_characters_names_language_and_minimum(tmp_path):
    with pytest.raises(ValueError, match=r"^de: target_vocab_size=50 is smaller than the 301 pieces .*raise "
                                         r"target_vocab_size to at least 301\.$"):
        TargetTokenizer.train(GERMAN, 50, str(tmp_path / "de"), "de")
    assert len(TargetTokenizer.train(GERMAN, 301, str(tmp_path / "de"), "de")) == 301  # the minimum it named works


@pytest.mark.parametrize("texts", [[], ["", "  "]])
def test_no_training_text_for_a_language_is_a_clear_error(encoder_path, tmp_path, texts):
    with pytest.raises(ValueError, match=r"^es: no non-empty training text .*targets for 'es'"):
        MTLTokenizer.train(encoder_path, {"de": GERMAN, "es": texts}, 400, str(tmp_path))
