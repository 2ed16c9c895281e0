"""`pipeline("multi-target-translation", model=DIR)`: registered by `import mtl_translate`, same text as Translator."""

import pytest
from transformers import pipeline

from mtl_translate import Translator
from mtl_translate.pipelines import MultiTargetTranslationPipeline

from .conftest import LANGS

TEXTS = ["Save the file", "Open a new window", "%s files deleted"]


@pytest.fixture
def model_dir(tiny_model, tokenizer, tmp_path):
    Translator(tiny_model, tokenizer).save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def test_pipeline_from_a_folder_returns_every_language_as_the_translator_does(model_dir):
    pipe = pipeline("multi-target-translation", model=str(model_dir), device="cpu")
    assert isinstance(pipe, MultiTargetTranslationPipeline)
    expected = Translator.from_pretrained(str(model_dir), device="cpu").translate(TEXTS, max_new_tokens=6)
    one = pipe(TEXTS[0], max_new_tokens=6)
    assert one == {lang: expected[lang][0] for lang in LANGS}
    many = pipe(TEXTS, max_new_tokens=6, batch_size=2)
    assert many == [{lang: expected[lang][i] for lang in LANGS} for i in range(len(TEXTS))]


def test_pipeline_langs_and_defaults_given_at_construction(model_dir):
    pipe = pipeline("multi-target-translation", model=str(model_dir), device="cpu", langs=[LANGS[1]],
                    max_new_tokens=4)
    expected = Translator.from_pretrained(str(model_dir), device="cpu").translate(TEXTS[:2], [LANGS[1]],
                                                                                  max_new_tokens=4)
    assert pipe(TEXTS[:2]) == [{LANGS[1]: expected[LANGS[1]][i]} for i in range(2)]
    assert list(pipe(TEXTS[0], langs=[LANGS[0]])) == [LANGS[0]]  # a call's langs replace the default


def test_pipeline_errors_name_the_problem(model_dir):
    pipe = pipeline("multi-target-translation", model=str(model_dir), device="cpu")
    with pytest.raises(ValueError, match=r"'xx'"):
        pipe("Save", langs=["xx"])
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['temperature'\]"):
        pipe("Save", temperature=0.7)
    with pytest.raises(ValueError, match="input 1 is int, not str"):
        pipe(["Save", 3])
