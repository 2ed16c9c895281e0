"""`evaluate` has training's data options (--column-mapping, --source-lang), --max-new-tokens, and scores an existing
hypotheses file (--hypotheses) without running a model."""

import json
import random
import re

import pytest

from mtl_translate import Translator
from mtl_translate.cli import main
from mtl_translate.data.loading import load_multitarget_dataset, sample_rows

from .conftest import CORPUS


@pytest.fixture
def model_dir(tiny_model, tokenizer, tmp_path):
    Translator(tiny_model, tokenizer).save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def evaluate(tmp_path, *args) -> dict:
    main(["evaluate", *map(str, args), "--output", str(tmp_path / "results.json")])
    return json.loads((tmp_path / "results.json").read_text())


def error(*args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", *map(str, args)])
    return str(exit_info.value.code)


def write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def test_column_mapping_and_source_lang_reach_the_loader_as_in_training(model_dir, tmp_path):
    write_jsonl(tmp_path / "flat.jsonl", [{"english": en, "german": de, "french": fr} for en, de, fr, _ in CORPUS])
    common = ["--model", model_dir, "--data", tmp_path / "flat.jsonl", "--langs", "de,fr", "--source-lang", "eng",
              "--max-new-tokens", "3"]
    results = evaluate(tmp_path, *common, "--column-mapping", "eng=english,de=german,fr=french")
    assert results["n"] == {"de": 15, "fr": 15}
    results = evaluate(tmp_path, *common, "--column-mapping", '{"eng": "english", "de": "german", "fr": "french"}')
    assert results["n"] == {"de": 15, "fr": 15}
    assert error(*common[:-2], "--max-new-tokens", "33", "--column-mapping", "eng=english,de=german,fr=french") == (
        "mtl-translate evaluate: error: max_new_tokens=33 is more than this model's max_target_positions=32 (the "
        "longest target it was trained for, EOS included); use at most 32.")


def test_bad_column_mapping_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--hypotheses", "h.jsonl", "--data", "d.jsonl", "--column-mapping", "en:english"])
    assert exit_info.value.code == 2
    assert "argument --column-mapping: must be LANG=COLUMN pairs separated by commas" in capsys.readouterr().err


def test_translate_output_is_scored_by_source_without_a_model(corpus_dir, tmp_path):
    records = [{"source": en, "de": de or "", "fr": fr or ""} for en, de, fr, _ in CORPUS]
    random.Random(0).shuffle(records)
    records.append({"source": "Not in the test set", "de": "x", "fr": "x"})
    write_jsonl(tmp_path / "hyps.jsonl", records)
    results = evaluate(tmp_path, "--hypotheses", tmp_path / "hyps.jsonl", "--data", corpus_dir / "test.jsonl",
                       "--source-lang", "en")
    assert results["bleu"] == {"de": 100.0, "fr": 100.0} and results["n"] == {"de": 15, "fr": 15}  # file's langs
    assert results["placeholder_n"] == {"de": 0, "fr": 0}


def test_per_row_hypotheses_follow_the_same_seeded_sample(model_dir, corpus_dir, tmp_path):
    rows = sample_rows(load_multitarget_dataset(str(corpus_dir / "test.jsonl"), "en", ["es"], split="test"), 6, 7)
    write_jsonl(tmp_path / "hyps.jsonl", [{"es": row["es"] or ""} for row in rows])
    results = evaluate(tmp_path, "--hypotheses", tmp_path / "hyps.jsonl", "--model", model_dir, "--data",
                       corpus_dir / "test.jsonl", "--max-samples", 6, "--seed", 7)  # the model gives only "en"
    assert results["bleu"] == {"es": 100.0} and results["n"] == {"es": sum(bool(row["es"]) for row in rows)}
    results = evaluate(tmp_path, "--hypotheses", tmp_path / "hyps.jsonl", "--model", model_dir, "--data",
                       corpus_dir / "test.jsonl", "--max-samples", 6, "--seed", 8)
    assert results["bleu"]["es"] < 100  # another sample: the lines no longer match their rows


def test_hypotheses_that_do_not_fit_the_rows_are_errors_naming_the_row(corpus_dir, tmp_path):
    data = ["--data", corpus_dir / "test.jsonl", "--source-lang", "en"]
    assert error("--data", corpus_dir / "test.jsonl") == (
        "mtl-translate evaluate: error: pass --model (to translate the rows) or --hypotheses FILE (to score "
        "translations made before).")
    write_jsonl(tmp_path / "h.jsonl", [{"source": en, "de": de or ""} for en, de, *_ in CORPUS[1:]])
    assert error("--hypotheses", tmp_path / "h.jsonl", "--data", corpus_dir / "test.jsonl") == (
        "mtl-translate evaluate: error: --hypotheses without --model needs --source-lang (the language of the rows' "
        "sources).")
    assert error("--hypotheses", tmp_path / "h.jsonl", *data) == (
        f"mtl-translate evaluate: error: {tmp_path / 'h.jsonl'} has no line whose \"source\" is 'Open file', a row "
        f"being scored: translate every source of those rows (same --max-samples and --seed).")
    write_jsonl(tmp_path / "h.jsonl", [{"de": "x"}] * 3)
    assert error("--hypotheses", tmp_path / "h.jsonl", *data).endswith(
        "h.jsonl has 3 hypotheses for 15 rows; without a \"source\" field the lines must be the rows in order (the "
        "same --max-samples and --seed as when translated).")
    write_jsonl(tmp_path / "h.jsonl", [{"source": en, "de": de or ""} for en, de, *_ in CORPUS])
    found = re.search(r"h\.jsonl: line (\d+) has no 'fr' hypothesis \(a string\) for the row '(.+)', which has a "
                      r"'fr' reference\.$", error("--hypotheses", tmp_path / "h.jsonl", *data, "--langs", "de,fr"))
    assert CORPUS[int(found[1]) - 1][0] == found[2]  # the line named is that row's line
