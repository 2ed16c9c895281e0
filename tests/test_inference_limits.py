"""Inference tells the truth about its limits: the training source length travels with the model and truncation is
counted out loud, generation settings beyond the model are errors, blank lines stay blank, bad input and bad CLI
arguments are one-line errors."""

import io
import json
import logging
import sys

import pytest

from mtl_translate.cli import main
from mtl_translate.translate import Translator, read_lines

from .conftest import LANGS

LONG = " ".join(["Delete selected items"] * 6)  # 26 MiniLM tokens with [CLS] and [SEP]


@pytest.fixture
def folder(tiny_model, tokenizer, tmp_path):
    path = tmp_path / "model"
    Translator(tiny_model, tokenizer).save_pretrained(path)
    return path


def truncation_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "max_source_length" in r.getMessage()]


def test_training_max_source_length_is_saved_and_used(tiny_model, tokenizer, tmp_path):
    Translator(tiny_model, tokenizer).save_pretrained(tmp_path / "old")  # a folder from before: the old default
    assert Translator.from_pretrained(str(tmp_path / "old"), device="cpu").max_source_length == 128
    tiny_model.config.max_source_length = 8  # what training sets from recipe.model.max_source_length
    Translator(tiny_model, tokenizer).save_pretrained(tmp_path / "new")
    translator = Translator.from_pretrained(str(tmp_path / "new"), device="cpu")
    assert translator.max_source_length == 8 and Translator(tiny_model, tokenizer, 12).max_source_length == 12


def test_long_inputs_are_truncated_with_a_counted_warning(tiny_model, tokenizer, caplog, monkeypatch):
    tiny_model.config.max_source_length = 8
    translator = Translator(tiny_model, tokenizer)
    widths = []
    generate = tiny_model.generate
    monkeypatch.setattr(tiny_model, "generate", lambda input_ids, **kw: widths.append(input_ids.shape[1])
                        or generate(input_ids, **kw))
    with caplog.at_level(logging.WARNING):
        translator.translate(["Open file", LONG + " Quit", LONG + " Show help"], max_new_tokens=6)
    assert truncation_warnings(caplog) == ["2 of 3 inputs were longer than max_source_length=8 tokens and were "
                                           "truncated (the model was trained on sources of at most that length)."]
    assert widths == [8]  # the encoder read 8 tokens of the 27-token texts
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        translator.translate(["Open file", "Quit"], max_new_tokens=4)
    assert truncation_warnings(caplog) == []


def test_a_stream_warns_once_with_the_count_of_all_its_chunks(tiny_model, tokenizer, caplog):
    translator = Translator(tiny_model, tokenizer, max_source_length=8)
    lines = ["Quit\n", LONG + "\n", "Open file\n"] * 5  # 5 long lines over 4 chunks
    with caplog.at_level(logging.WARNING):
        records = list(translator.translate_stream(lines, ["de"], chunk_size=4, max_new_tokens=4))
    assert len(records) == 15
    assert truncation_warnings(caplog) == ["5 of 15 inputs were longer than max_source_length=8 tokens and were "
                                           "truncated (the model was trained on sources of at most that length)."]


def test_max_new_tokens_beyond_the_model_is_an_error_but_the_saved_default_is_capped(tiny_model, tokenizer):
    limit = tiny_model.config.max_target_positions  # 32
    with pytest.raises(ValueError, match=rf"max_new_tokens=33 is more than this model's max_target_positions={limit}"):
        Translator(tiny_model, tokenizer).translate(["Quit"], max_new_tokens=limit + 1)
    assert tiny_model.generation_settings("de", max_new_tokens=limit)["max_new_tokens"] == limit
    tiny_model.generation_config.max_new_tokens = 100
    tiny_model.generation_config.per_language = {"fr": {"max_new_tokens": 90}}
    assert tiny_model.generation_settings("de")["max_new_tokens"] == limit
    assert tiny_model.generation_settings("fr")["max_new_tokens"] == limit


@pytest.mark.parametrize("setting, message", [
    (dict(num_beams=0), r"num_beams must be an integer >= 1, got 0"),
    (dict(num_beams=-2), r"num_beams must be an integer >= 1, got -2"),
    (dict(max_new_tokens=0), r"max_new_tokens must be an integer >= 1, got 0"),
    (dict(no_repeat_ngram_size=-1), r"no_repeat_ngram_size must be an integer >= 0, got -1"),
    (dict(do_sample=True), r"unknown generation setting\(s\) \['do_sample'\]; the supported ones are \['num_beams'"),
])
def test_bad_generation_settings_are_errors_in_python(tiny_model, tokenizer, setting, message):
    import torch

    with pytest.raises(ValueError, match=message):
        tiny_model.generate(torch.tensor([[101, 7592, 102]]), **setting)
    with pytest.raises(ValueError, match=message):  # also when every text is blank and no model call is needed
        Translator(tiny_model, tokenizer).translate([""], **setting)


def test_generates_own_stacked_switch_is_no_generation_setting(tiny_model, tokenizer):
    translator = Translator(tiny_model, tokenizer)
    assert translator.translate(["Quit"], stacked=False, max_new_tokens=4) == translator.translate(["Quit"],
                                                                                                   max_new_tokens=4)


def test_bad_batch_size_is_an_error(tiny_model, tokenizer):
    translator = Translator(tiny_model, tokenizer)
    with pytest.raises(ValueError, match=r"batch_size must be an integer >= 1, got 0"):
        translator.translate(["Quit"], batch_size=0)
    with pytest.raises(ValueError, match=r"chunk_size must be an integer >= 1, got 0"):
        translator.translate_stream(["Quit"], chunk_size=0)


def test_a_non_string_text_is_named(tiny_model, tokenizer):
    with pytest.raises(ValueError, match=r"texts\[1\] is NoneType, not a string"):
        Translator(tiny_model, tokenizer).translate(["Quit", None])


def test_blank_texts_get_empty_translations_without_a_model_call(tiny_model, tokenizer, monkeypatch):
    translator = Translator(tiny_model, tokenizer)
    expected = translator.translate(["Open file", "Quit"], max_new_tokens=6)
    rows_decoded = []
    generate = tiny_model.generate
    monkeypatch.setattr(tiny_model, "generate", lambda input_ids, **kw: rows_decoded.append(len(input_ids))
                        or generate(input_ids, **kw))
    out = translator.translate(["", "Open file", "   ", "\t\r", "Quit"], max_new_tokens=6,
                               rows={"fr": [False, True, True, True, True]})
    assert rows_decoded == [2]  # only the two real texts reached the model
    assert out["de"] == ["", expected["de"][0], "", "", expected["de"][1]]
    assert out["fr"] == [None, expected["fr"][0], "", "", expected["fr"][1]]  # rows still limit a blank text
    rows_decoded.clear()
    assert translator.translate(["", " "]) == {lang: ["", ""] for lang in LANGS} and rows_decoded == []


def test_stream_strips_crlf(tiny_model, tokenizer):
    translator = Translator(tiny_model, tokenizer)
    records = list(translator.translate_stream(["Open file\r\n", "Quit\r\n", "\r\n"], ["de"], max_new_tokens=6))
    expected = translator.translate(["Open file", "Quit"], ["de"], max_new_tokens=6)["de"]
    assert records == [{"source": "Open file", "de": expected[0]}, {"source": "Quit", "de": expected[1]},
                       {"source": "", "de": ""}]


def test_read_lines_names_the_line_of_a_bad_byte():
    lines = read_lines(io.BytesIO(b"\xef\xbb\xbfOpen file\r\nQuit\nCaf\xe9\n"), "<stdin>")
    assert next(lines) == "Open file\r\n" and next(lines) == "Quit\n"  # the byte-order mark is dropped
    with pytest.raises(ValueError, match=r"^<stdin>: line 3 is not valid UTF-8 \(byte 0xe9 at byte 4 of the line\)"):
        next(lines)


def run_cli(*args, stdin: bytes | None = None, monkeypatch=None) -> None:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    main([str(a) for a in args])


def test_cli_translate_file_with_crlf_bom_and_blank_lines(folder, tmp_path):
    (tmp_path / "in.txt").write_bytes(b"\xef\xbb\xbfOpen file\r\n\r\nQuit\r\n")
    run_cli("translate", "--model", folder, "--langs", "de", "--input", tmp_path / "in.txt", "--output",
            tmp_path / "out.jsonl", "--max-new-tokens", "4")
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["source"] for r in records] == ["Open file", "", "Quit"] and records[1]["de"] == ""


def test_cli_translate_empty_input_gives_empty_output(folder, tmp_path):
    (tmp_path / "in.txt").write_bytes(b"")
    run_cli("translate", "--model", folder, "--input", tmp_path / "in.txt", "--output", tmp_path / "out.jsonl")
    assert (tmp_path / "out.jsonl").read_text() == ""


@pytest.mark.parametrize("from_stdin", [False, True])
def test_cli_translate_non_utf8_input_names_the_line(folder, tmp_path, monkeypatch, from_stdin):
    data = b"Open file\nQuit\nFichier ferm\xe9\n"
    (tmp_path / "in.txt").write_bytes(data)
    source = [] if from_stdin else ["--input", tmp_path / "in.txt"]
    with pytest.raises(SystemExit) as exit_:
        run_cli("translate", "--model", folder, *source, "--output", tmp_path / "out.jsonl",
                stdin=data if from_stdin else None, monkeypatch=monkeypatch)
    name = "<stdin>" if from_stdin else str(tmp_path / "in.txt")
    assert exit_.value.code == (f"mtl-translate translate: error: {name}: line 3 is not valid UTF-8 (byte 0xe9 at "
                                "byte 13 of the line); convert the input to UTF-8, e.g. with `iconv -f <its "
                                "encoding> -t utf-8`.")


def test_cli_max_new_tokens_beyond_the_model_fails_before_writing(folder, tmp_path):
    (tmp_path / "in.txt").write_text("Quit\n")
    with pytest.raises(SystemExit) as exit_:
        run_cli("translate", "--model", folder, "--input", tmp_path / "in.txt", "--output", tmp_path / "out.jsonl",
                "--max-new-tokens", "500")
    assert exit_.value.code.startswith("mtl-translate translate: error: max_new_tokens=500 is more than this "
                                       "model's max_target_positions=32")
    assert not (tmp_path / "out.jsonl").exists()


def test_cli_missing_model_folder_is_one_line(tmp_path):
    with pytest.raises(SystemExit) as exit_:
        run_cli("translate", "--model", tmp_path / "nope")
    assert exit_.value.code == f"mtl-translate translate: error: model folder '{tmp_path / 'nope'}' does not exist " \
                               f"(nor is it a Hub repo id ORG/NAME)."


@pytest.mark.parametrize("args, message", [
    (["translate", "--num-beams", "0"], "argument --num-beams: must be >= 1, got 0"),
    (["translate", "--num-beams", "-3"], "argument --num-beams: must be >= 1, got -3"),
    (["translate", "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    (["translate", "--max-new-tokens", "0"], "argument --max-new-tokens: must be >= 1, got 0"),
    (["translate", "--no-repeat-ngram-size", "-1"], "argument --no-repeat-ngram-size: must be >= 0, got -1"),
    (["translate", "--num-beams", "two"], "argument --num-beams: must be an integer >= 1, got 'two'"),
    (["evaluate", "--data", "x", "--max-samples", "0"], "argument --max-samples: must be >= 1, got 0"),
    (["evaluate", "--data", "x", "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    (["evaluate", "--data", "x", "--bleu-tokenize", "spm"], "argument --bleu-tokenize: invalid choice: 'spm'"),
])
def test_cli_bad_arguments_are_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--model", "unused"])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("choice, tokenizer_name", [(None, "13a"), ("char", "char")])
def test_cli_evaluate_bleu_tokenize(folder, corpus_dir, tmp_path, choice, tokenizer_name):
    extra = ["--bleu-tokenize", choice] if choice else []
    run_cli("evaluate", "--model", folder, "--data", corpus_dir / "test.jsonl", "--langs", "de", "--max-samples", 4,
            "--output", tmp_path / "r.json", *extra)
    results = json.loads((tmp_path / "r.json").read_text())
    assert f"|tok:{tokenizer_name}|" in results["signature"] and results["n"] == {"de": 4}
