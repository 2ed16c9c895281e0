"""Issue 12 §7: weights only as safetensors; the Hub token in no file, log or upload; no local paths uploaded.
Issue 25 §3: never destroy or mislabel a user's data (output folders, outputs over inputs, broken catalogs,
single-file datasets, saved generation settings, truncation on the demo page, clear errors)."""

import importlib.util
import io
import json
import logging
import os
import re
import shutil
import socket
from contextlib import contextmanager, redirect_stderr, redirect_stdout

import pytest
import yaml
from huggingface_hub import HfApi
from huggingface_hub.hf_api import RepoUrl
from transformers import pipeline

from mtl_translate import cli, hub
from mtl_translate import train as train_module
from mtl_translate.configs import load_recipe
from mtl_translate.data.loading import held_out_split, load_splits
from mtl_translate.demo import translate_request
from mtl_translate.encoders import load_encoder_tokenizer
from mtl_translate.evaluation import evaluate_translator
from mtl_translate.hub import public_model_name
from mtl_translate.outputs import foreign_entries
from mtl_translate.train import run
from mtl_translate.translate import Translator

from .conftest import CORPUS, tiny_recipe

TOKEN = "hf_FAKE_TOKEN_1234567890"
PICKLE_OR_WEIGHTS = (".bin", ".pt", ".pth", ".pkl", ".ckpt", ".safetensors")
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


def test_save_pretrained_writes_weights_only_as_safetensors(tiny_model, tokenizer, tmp_path):
    Translator(tiny_model, tokenizer).save_pretrained(tmp_path)
    weights = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.suffix in PICKLE_OR_WEIGHTS)
    assert weights == ["model.safetensors"]


@contextmanager
def capture_logs():
    """Every record of every logger at DEBUG, including libraries that stop propagation (transformers)."""
    records, handler = [], logging.Handler(logging.DEBUG)
    handler.emit = records.append
    loggers = [logging.getLogger(), *(x for x in logging.Logger.manager.loggerDict.values()
                                      if isinstance(x, logging.Logger))]
    levels = [x.level for x in loggers]
    sinks = [x for x in loggers if x is loggers[0] or not x.propagate]
    for x in loggers:
        x.setLevel(logging.DEBUG)
    for x in sinks:
        x.addHandler(handler)
    try:
        yield records
    finally:
        for x, level in zip(loggers, levels):
            x.setLevel(level)
        for x in sinks:
            x.removeHandler(handler)


@pytest.fixture(scope="module")
def trained_and_pushed(corpus_dir, encoder_path, tmp_path_factory):
    """A 4-step in-process training run with a Hub token, a tracker (tensorboard when installed) and a push to a
    faked Hub; returns the output folder, everything the run printed or logged, and what the push received."""
    tmp = tmp_path_factory.mktemp("safety")
    recipe_path = tmp / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump({
        "dataset_name": str(corpus_dir), "target_langs": ["de", "fr", "es"], "output_dir": str(tmp / "model"),
        "encoder_name_or_path": encoder_path, "trainable_encoder_layers": 0, "decoder_layers": 1,
        "decoder_hidden_size": 32, "decoder_ffn_dim": 64, "target_vocab_size": 400, "max_steps": 4, "eval_steps": 2,
        "save_steps": 2, "warmup_steps": 1, "per_device_train_batch_size": 8, "logging_steps": 1,
        "eval_max_new_tokens": 4, "report_to": ["tensorboard"] if HAS_TENSORBOARD else [],
        "push_to_hub": True, "hub_model_id": "acme/tiny-mtl", "hub_private_repo": True, "hub_token": TOKEN,
    }))
    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["token"] = self.token
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_commit(self, repo_id, operations, **kwargs):
        calls["files"] = {}
        for op in operations:
            with op.as_file() as f:
                calls["files"][op.path_in_repo] = f.read()

    console = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, capture_logs() as records, redirect_stdout(console), \
            redirect_stderr(console):  # print, accelerate's print, tqdm and warnings
        mp.setattr(HfApi, "create_repo", create_repo)
        mp.setattr(HfApi, "create_commit", create_commit)
        run(load_recipe(str(recipe_path)))
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.args}" for r in records)
    return tmp / "model", console.getvalue() + logs, calls


def test_hub_token_is_in_no_file_log_or_upload(trained_and_pushed):
    out, console, calls = trained_and_pushed
    assert calls["token"] == TOKEN  # the token did reach the Hub client
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"model.safetensors", "recipe.yaml", "README.md", "eval_results.json"} <= {p.name for p in files}
    assert any("checkpoints" in p.parts for p in files)
    if HAS_TENSORBOARD:
        assert any("tfevents" in p.name for p in files) and any(p.name == "hparams.yml" for p in files)
    leaks = [str(p) for p in files if TOKEN.encode() in p.read_bytes()]  # binary files too
    assert leaks == []
    assert "step 4 validation" in console and "Uploading" in console  # the capture did see the run
    assert TOKEN not in console
    assert all(TOKEN.encode() not in content for content in calls["files"].values())


def test_push_uploads_no_local_path_and_no_pickle(trained_and_pushed, corpus_dir, encoder_path):
    out, console, calls = trained_and_pushed
    uploaded = calls["files"]
    assert {"README.md", "config.json", "recipe.yaml", "generation_config.json", "eval_results.json",
            "model.safetensors", "tokenizers/de/tokenizer.model", "tokenizers/source/tokenizer_config.json"} <= set(
        uploaded)
    assert not [name for name in uploaded if name.endswith(PICKLE_OR_WEIGHTS) and name != "model.safetensors"]
    assert not [name for name in uploaded if name.startswith(("checkpoints/", "mtl-translate/"))]
    local = [str(out.parent), str(corpus_dir), encoder_path] + [os.path.expanduser("~")] * (
        len(os.path.expanduser("~")) > 1)
    leaks = [(name, path) for name, content in uploaded.items() for path in local if path.encode() in content]
    assert leaks == []
    recipe = yaml.safe_load(uploaded["recipe.yaml"])
    assert recipe["dataset_name"] == corpus_dir.name and recipe["output_dir"] == "model"
    assert "hub_token" not in recipe and recipe["hub_model_id"] == "acme/tiny-mtl"
    assert str(corpus_dir) in (out / "recipe.yaml").read_text()  # the local copy keeps what reproduces the run
    assert 'Translator.from_pretrained("acme/tiny-mtl")' in uploaded["README.md"].decode()


# Issue 25 §3: never destroy or mislabel a user's data.

def run_tiny(corpus, encoder, output_dir, **overrides) -> dict:
    return run(load_recipe(base=tiny_recipe(corpus, encoder, output_dir, **overrides)))


def listing(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_every_entry_a_run_writes_is_recognised_as_ours(trained_and_pushed):
    out, _, _ = trained_and_pushed  # tracker logs, checkpoints, plots, card: everything a run writes
    assert {"checkpoints", "tokenizers", "plots", "README.md", "config.json"} <= {p.name for p in out.iterdir()}
    assert foreign_entries(out) == []


def test_the_mixing_heatmaps_of_the_model_card_are_a_runs_files(tmp_path):
    from mtl_translate.mixing_card import CROSS_STITCH_PNG, SLUICE_PNG

    for name in (CROSS_STITCH_PNG, SLUICE_PNG):
        (tmp_path / name).write_bytes(b"\x89PNG")
    assert foreign_entries(tmp_path) == []


def test_overwrite_output_dir_refuses_a_folder_holding_anything_a_run_does_not_write(corpus_dir, tiny_encoder_dir,
                                                                                     tmp_path):
    out = tmp_path / "out"
    (out / "checkpoints" / "step_4").mkdir(parents=True)
    (out / "checkpoints" / "step_4" / "trainer_state.json").write_text("{}")
    (out / "trainer_state.json").write_text("{}")
    (out / "compare_scores.json").write_text("{}")  # compare's cache in a run folder (its retrains overwrite)
    (out / "config.json").write_text('{"model_type": "bert"}')  # not our model's: a user's file of a common name
    (out / "notes.txt").write_text("my notes")
    before = listing(out)
    with pytest.raises(ValueError, match=r"overwrite_output_dir: .*out holds config.json, notes.txt, which no "
                                         r"mtl-translate run writes.*nothing was removed"):
        run_tiny(corpus_dir, tiny_encoder_dir, out, overwrite_output_dir=True)
    assert listing(out) == before and (out / "notes.txt").read_text() == "my notes"


def test_a_run_never_writes_into_the_data_or_the_model_it_reads(corpus_dir, tiny_encoder_dir, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(corpus_dir, out / "data")
    before = listing(out)
    with pytest.raises(ValueError, match=rf"output_dir {out} holds dataset_name {out / 'data'}, which this command "
                                         r"reads: writing there would destroy it\. Keep what a run reads outside"):
        run_tiny(out / "data", tiny_encoder_dir, out, overwrite_output_dir=True)
    assert listing(out) == before
    model = tmp_path / "model"
    run_tiny(corpus_dir, tiny_encoder_dir, model, max_steps=1, eval_steps=1, save_steps=1, test_split=None)
    before = listing(model)
    with pytest.raises(ValueError, match=rf"output_dir {model} is also init_model {model}"):
        run_tiny(corpus_dir, tiny_encoder_dir, model, init_model=str(model), train_languages=["de"],
                 overwrite_output_dir=True)
    assert listing(model) == before


def cli_error(*args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(a) for a in args])
    return str(exit_info.value.code)


def test_an_output_that_is_one_of_the_commands_inputs_is_refused(tiny_model, tokenizer, tmp_path):
    Translator(tiny_model, tokenizer).save_pretrained(tmp_path / "model")
    text = tmp_path / "in.txt"
    text.write_text("Open file\nSave file\n")
    (tmp_path / "link.txt").symlink_to(text)
    assert cli_error("translate", "--model", tmp_path / "model", "--input", text, "--output", tmp_path / "link.txt") \
        == (f"mtl-translate translate: error: --output {tmp_path / 'link.txt'} is also --input {text}, which this "
            "command reads: writing there would destroy it. Pass another --output file.")
    assert text.read_text() == "Open file\nSave file\n"
    hyps = tmp_path / "hyps.jsonl"
    hyps.write_text('{"de": "Datei"}\n')
    assert cli_error("evaluate", "--hypotheses", hyps, "--source-lang", "en", "--data", tmp_path, "--output", hyps) \
        .startswith(f"mtl-translate evaluate: error: --output {hyps} is also --hypotheses {hyps}")
    assert hyps.read_text() == '{"de": "Datei"}\n'
    (tmp_path / "po").mkdir()
    catalog = tmp_path / "po" / "de.po"
    catalog.write_text('msgid "Open file"\nmsgstr "Datei öffnen"\n\nmsgid "Quit"\nmsgstr ""\n', encoding="utf-8")
    assert cli_error("translate-po", catalog, "--model", tmp_path / "model", "--langs", "de", "--out-dir",
                     tmp_path / "po").startswith(f"mtl-translate translate-po: error: the de catalog {catalog} is "
                                                 f"also the template {catalog}")
    assert "Datei öffnen" in catalog.read_text(encoding="utf-8")
    assert cli_error("build-data", "hub", "--layout", "pairs", "--dataset", tmp_path / "po", "--langs", "de", "--out",
                     tmp_path) == (f"mtl-translate build-data: error: --out {tmp_path} holds --dataset "
                                   f"{tmp_path / 'po'}, which this command reads: writing there would destroy it. Pass "
                                   "another --out folder.")
    assert cli_error("build-data", "gettext", "--langs", "de", "--roots", tmp_path / "po", "--out", tmp_path / "po") \
        .startswith(f"mtl-translate build-data: error: --out {tmp_path / 'po'} is also --roots {tmp_path / 'po'}")
    assert catalog.is_file()


BROKEN = 'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\nmsgid "Open file"\nmsgstr ""\n\n' \
         'msgid "Save the current document\nmsgstr "{}"\n'


def test_a_catalog_that_does_not_parse_is_an_error_naming_file_and_line_and_nothing_changes(tiny_model, tokenizer,
                                                                                              tmp_path):
    """polib reads `msgid "Save the current document` (no closing quote) as "Save the current documen": the human
    translation would go obsolete under the cut msgid and the entry be machine-translated."""
    Translator(tiny_model, tokenizer).save_pretrained(tmp_path / "model")
    template = tmp_path / "demo.pot"
    template.write_text(BROKEN.format("").replace('document\n', 'document"\n'))
    (tmp_path / "po").mkdir()
    catalog = tmp_path / "po" / "de.po"
    catalog.write_text(BROKEN.format("Das aktuelle Dokument speichern"), encoding="utf-8")
    before = catalog.read_bytes()
    args = ("translate-po", template, "--model", tmp_path / "model", "--langs", "de", "--out-dir", tmp_path / "po")
    assert cli_error(*args) == (
        f"mtl-translate translate-po: error: cannot read the de catalog {catalog}: line 7 is not valid gettext syntax "
        "(a string without its closing quote: 'msgid \"Save the current document'); it must be a gettext .po/.pot "
        f"file (check it with `msgfmt -c {catalog}`). Nothing was written.")
    assert catalog.read_bytes() == before
    template.write_text(BROKEN.format(""))
    catalog.unlink()
    assert cli_error(*args).startswith(f"mtl-translate translate-po: error: cannot read template {template}: line 7 ")
    assert list((tmp_path / "po").iterdir()) == []


@pytest.fixture(scope="module")
def single_file_run(corpus_dir, tiny_encoder_dir, tmp_path_factory):
    """A run on one file without splits (the tiny corpus), recording every evaluation call's rows and
    max_new_tokens; returns the output folder, the console and the calls."""
    tmp = tmp_path_factory.mktemp("single")
    shutil.copy(corpus_dir / "train.jsonl", tmp / "all.jsonl")
    calls = []

    def recording(translator, rows, *args, **kwargs):
        calls.append(([row["en"] for row in rows], kwargs.get("max_new_tokens")))
        return evaluate_translator(translator, rows, *args, **kwargs)

    console = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, redirect_stdout(console):
        mp.setattr(train_module, "evaluate_translator", recording)
        run_tiny(tmp / "all.jsonl", tiny_encoder_dir, tmp / "model", max_steps=2, eval_steps=2, save_steps=2,
                 eval_max_new_tokens=3, test_split_percentage=25, validation_split_percentage=25)
    return tmp / "model", console.getvalue(), calls


def test_a_single_file_is_split_so_that_test_scores_are_never_measured_on_training_rows(single_file_run,
                                                                                      corpus_dir):
    out, console, calls = single_file_run
    shares = {"test": 25.0, "validation": 25.0}
    split_of = {en: held_out_split(en, 42, shares) or "train" for en, *_ in CORPUS}
    (validation, _), (test, _) = calls
    assert sorted(test) == sorted(en for en, split in split_of.items() if split == "test") and test
    assert sorted(validation) == sorted(en for en, split in split_of.items() if split == "validation") and validation
    counts = {split: list(split_of.values()).count(split) for split in ("train", "validation", "test")}
    assert (f"all.jsonl is one file, without splits: {counts['train']} rows train, {counts['validation']} rows "
            f"validation, {counts['test']} rows test, drawn with seed 42") in console
    results = json.loads((out / "eval_results.json").read_text())
    assert results["held_out"] == {"test_split_percentage": 25.0, "seed": 42} and results["split"] == "test"
    assert ("Scored with sacrebleu on 25% of the rows of `all.jsonl`, a file without splits, held out from training "
            "by a hash of their source text with seed 42") in (out / "README.md").read_text()


def test_a_single_files_held_out_rows_do_not_depend_on_the_languages_read(corpus_dir, tiny_encoder_dir, tmp_path):
    """`compare`'s single-task models read one language of the file: they must hold out the multi-task test rows."""
    data = load_recipe(base=tiny_recipe(corpus_dir / "train.jsonl", tiny_encoder_dir, tmp_path,
                                        test_split_percentage=25, validation_split_percentage=25)).data
    every = load_splits(data, ["de", "fr", "es"], ["train", "test"], 42)
    only_fr = load_splits(data, ["fr"], ["train", "test"], 42)
    sources = {name: {row["en"] for row in split["translation"]} for name, split in every.items()}
    assert not sources["train"] & sources["test"]
    assert {row["en"] for row in only_fr["test"]["translation"]} == {
        row["translation"]["en"] for row in every["test"] if row["translation"]["fr"]}
    data.streaming = True
    with pytest.raises(ValueError, match=r"is one file: its test rows would be held out of it, which a stream "
                                         r"cannot do\. .*set validation_split and test_split to null"):
        load_splits(data, ["de"], ["test"], 42)
    assert load_splits(data, ["de"], [], 42) == {}  # nothing held out: the whole file streams
    data.streaming, data.test_split_percentage = False, 0.01
    with pytest.raises(ValueError, match=r"train.jsonl is one file of 15 rows, and the seeded share of it for test "
                                         r"drew no row: raise test_split_percentage"):
        load_splits(data, ["de"], ["test"], 42)
    with pytest.raises(ValueError, match=r"'test_split_percentage' \(60\) and 'validation_split_percentage' \(40\) "
                                         r"hold out 100% or more"):
        load_recipe(base={"test_split_percentage": 60, "validation_split_percentage": 40})


def test_eval_max_new_tokens_limits_this_runs_evaluations_never_the_saved_model(single_file_run):
    out, _, calls = single_file_run
    assert [tokens for _, tokens in calls] == [3, 3]  # validation and test, as transformers' generation_max_length
    saved = json.loads((out / "generation_config.json").read_text())
    assert saved["max_new_tokens"] == 65  # max_target_length 64 + EOS: the longest target it was trained for


def test_the_demo_page_says_when_a_text_was_truncated(tiny_model, tokenizer):
    translator = Translator(tiny_model, tokenizer, max_source_length=8)
    _, line = translate_request(translator, " ".join(["document"] * 300), ["de"], 1)  # one sentence, nowhere to cut
    assert re.fullmatch(r"\d+ ms for 1 language\n\n⚠ Truncated: 1 part of the text exceeded the 8 tokens the model "
                        r"reads at once \(max_source_length\) and only its start was translated: split the text at "
                        r"sentence ends or lines\.", line), line
    assert "Truncated" not in translate_request(translator, "Open file", ["de"], 1)[1]


def test_pipeline_and_translator_inputs_are_checked_and_max_source_length_is_taken(tiny_model, tokenizer, tmp_path):
    Translator(tiny_model, tokenizer).save_pretrained(tmp_path / "model")
    pipe = pipeline("multi-target-translation", model=str(tmp_path / "model"), device="cpu", max_new_tokens=3)
    for bad, name in ((None, "NoneType"), (5, "int")):
        with pytest.raises(ValueError, match=f"the input is {name}, not str; pass a str or a list of str"):
            pipe(bad)
    assert list(pipe("Open file", langs="de")) == ["de"]  # one language, not ['d', 'e']
    assert list(pipeline("multi-target-translation", model=str(tmp_path / "model"), device="cpu",
                         langs="fr")("Open file", max_new_tokens=3)) == ["fr"]
    with pytest.raises(ValueError, match="texts is one str; pass a list of str"):
        pipe.translator.translate("Open file")
    assert Translator.from_pretrained(str(tmp_path / "model"), device="cpu", max_source_length=5).max_source_length == 5
    with pytest.raises(ValueError, match=r"max_source_length must be an integer >= 1 \(source tokens kept per text\), "
                                         r"got 0\."):
        Translator.from_pretrained(str(tmp_path / "model"), device="cpu", max_source_length=0)


def test_translate_po_names_the_model_as_its_card_does_and_checks_out_dir_before_translating(tiny_model, tokenizer,
                                                                                             tmp_path, monkeypatch):
    model = tmp_path / "tiny-ui"
    Translator(tiny_model, tokenizer).save_pretrained(model)
    template = tmp_path / "demo.pot"
    template.write_text('msgid "Open file"\nmsgstr ""\n')
    cli.main(["translate-po", str(template), "--model", str(model), "--langs", "de", "--out-dir",
              str(tmp_path / "po"), "--max-new-tokens", "3"])
    written = (tmp_path / "po" / "de.po").read_text(encoding="utf-8")
    assert "# machine translation by tiny-ui, confidence 0." in written and str(tmp_path) not in written
    (model / "recipe.yaml").write_text("hub_model_id: acme/tiny-ui\n")
    assert public_model_name(str(model)) == "acme/tiny-ui" and public_model_name("acme/x") == "acme/x"
    (tmp_path / "po.txt").write_text("")
    monkeypatch.setattr(Translator, "translate", lambda *a, **k: pytest.fail("translated before checking out-dir"))
    assert cli_error("translate-po", template, "--model", model, "--out-dir", tmp_path / "po.txt" / "sub") == (
        f"mtl-translate translate-po: error: out-dir {tmp_path / 'po.txt' / 'sub'}: {tmp_path / 'po.txt'} is a file, "
        "not a folder; pass a folder for the catalogs (--out-dir).")


def test_messages_name_what_the_user_can_do(tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "recipe.yaml").write_text(yaml.safe_dump({"target_langs": ["de", "fr"]}))
    assert cli_error("add-language", "--model", tmp_path / "model", "--lang", "de", "--data", "DATA") == (
        f"mtl-translate add-language: error: {tmp_path / 'model'} already translates into 'de' (de, fr); to train it "
        f"again, everything else frozen: mtl-translate train {tmp_path / 'model' / 'recipe.yaml'} --init_model "
        f"{tmp_path / 'model'} --train_languages de --dataset_name DATA --output_dir NEW_DIR")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = cli_error("demo", "--model", tmp_path / "no-model", "--port", port)  # fails before loading
    assert message.startswith(f"mtl-translate demo: error: cannot serve the demo on 127.0.0.1:{port} (")
    assert message.endswith(f"Pass another one with --port (e.g. --port {port + 1}).")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # no retries against an unreachable Hub
    with pytest.raises(ValueError, match=r"encoder_name_or_path='minilm-packaged' could not be loaded: it is not a "
                                         r"local folder, not a packaged copy \(those load offline: "
                                         r"sentence-transformers/all-MiniLM-L6-v2\)"):
        load_encoder_tokenizer("minilm-packaged", "minilm-packaged")
