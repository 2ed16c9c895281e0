"""`mtl-translate compare`: single-task models vs the multi-task model(s) on the same test rows."""

import json
from pathlib import Path

import pytest
import yaml

from mtl_translate import compare, train
from mtl_translate.compare import recipe_changes, run_comparison, table_rows, write_report
from mtl_translate.configs import load_recipe

from .test_cli import cli


def scores(bleu: dict, chrf: dict) -> dict:
    return {"bleu": bleu, "chrf": chrf, "n": {lang: 10 for lang in bleu}, "signature": "nrefs:1|sig"}


def test_report_table_deltas_and_negative_transfer(tmp_path):
    report = {"languages": ["de", "fr"], "max_steps": 5, "batch_size": 8, "test_rows": 10, "train_seconds": {},
              "scores": {"single-de": scores({"de": 10.0}, {"de": 30.0}), "single-fr": scores({"fr": 20.0}, {"fr": 40.0}),
                         "mtl": scores({"de": 12.0, "fr": 18.5}, {"de": 33.0, "fr": 39.0})}}
    rows = table_rows(report)
    assert [r["lang"] for r in rows] == ["de", "fr", "mean"]
    assert rows[0]["single"] == (10.0, 30.0) and rows[0]["mtl"] == (12.0, 33.0)
    assert rows[2]["single"] == (15.0, 35.0) and rows[2]["mtl"] == (15.25, 36.0)
    write_report(report, tmp_path)
    md = (tmp_path / "comparison.md").read_text()
    assert "| de | 10 | 10.00 | 12.00 (+2.00) | 30.00 | 33.00 (+3.00) |" in md
    assert "| fr | 10 | 20.00 | 18.50 (-1.50) |" in md
    assert "Negative transfer (multi-task below single-task BLEU) for: fr." in md
    assert (tmp_path / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_cli_trains_scores_and_reuses_runs(corpus_dir, encoder_path, tmp_path):
    base = {"dataset_name": str(corpus_dir), "target_langs": ["de", "fr", "es"], "output_dir": str(tmp_path / "cmp"),
            "trainable_encoder_layers": 1, "decoder_layers": 1, "decoder_hidden_size": 32, "decoder_ffn_dim": 64,
            "decoder_attention_heads": 2, "target_vocab_size": 400, "max_steps": 100, "eval_steps": 100,
            "warmup_steps": 1, "per_device_train_batch_size": 8, "eval_max_new_tokens": 4, "max_eval_samples": 4}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "config_uncertainty.yaml").write_text("base: config.yaml\nloss_weighting: uncertainty\n")
    args = ("compare", tmp_path / "config.yaml", "--variant", tmp_path / "config_uncertainty.yaml", "--max_steps", "2")
    proc = cli(*args)
    root = tmp_path / "cmp"
    report = json.loads((root / "comparison.json").read_text())
    assert set(report["scores"]) == {"single-de", "single-fr", "single-es", "mtl", "uncertainty"}
    assert set(report["train_seconds"]) == set(report["scores"]) and report["max_steps"] == 2
    assert set(report["seconds_per_step"]) == set(report["scores"])  # each run's train_results.json
    assert all(seconds > 0 for seconds in report["seconds_per_step"].values())
    assert set(report["scores"]["single-fr"]["bleu"]) == {"fr"}
    for lang in ("de", "fr", "es"):  # every model scored on the same rows
        assert report["scores"][f"single-{lang}"]["n"][lang] == report["scores"]["mtl"]["n"][lang] == 15
    assert yaml.safe_load((root / "single-de" / "recipe.yaml").read_text())["target_langs"] == ["de"]
    assert yaml.safe_load((root / "uncertainty" / "recipe.yaml").read_text())["max_steps"] == 2
    assert "| mean |" in proc.stdout and (root / "comparison.png").is_file()
    assert all((root / name / compare.SCORES_FILE).is_file() for name in report["scores"])  # scores cached
    assert "| mean |" in cli(*args).stdout  # runs that have results are reused, not retrained
    assert json.loads((root / "comparison.json").read_text())["train_seconds"] == {}


def test_recipe_changes_ignore_keys_that_do_not_change_the_model(tmp_path):
    args = ["--target_langs", "de,fr", "--output_dir", str(tmp_path)]
    recipe = load_recipe(None, args)
    assert recipe_changes(tmp_path, recipe) == {"recipe.yaml": ("missing or unreadable", "present")}
    recipe.save(tmp_path / "recipe.yaml")
    assert recipe_changes(tmp_path, recipe) == {}
    same_model = load_recipe(None, [*args, "--output_dir", "elsewhere", "--eval_steps", "7", "--logging_steps", "3",
                                    "--save_steps", "9", "--report_to", "tensorboard", "--push_to_hub", "true",
                                    "--hub_model_id", "me/x", "--overwrite_output_dir", "true"])
    assert recipe_changes(tmp_path, same_model) == {}
    other = load_recipe(None, [*args, "--learning_rate", "1e-3", "--loss_weights", "{de: 2}"])
    assert recipe_changes(tmp_path, other) == {"learning_rate": (5e-4, 1e-3), "loss_weights": ({}, {"de": 2})}
    saved = yaml.safe_load((tmp_path / "recipe.yaml").read_text())
    del saved["max_bad_steps"]  # a run saved before the key existed
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(saved))
    assert recipe_changes(tmp_path, recipe) == {}  # it trained with the key's default (new keys keep old behaviour)
    fewer = load_recipe(None, [*args, "--max_bad_steps", "3"])
    assert recipe_changes(tmp_path, fewer) == {"max_bad_steps": (10, 3)}
    (tmp_path / "recipe.yaml").write_text("[unclosed")
    assert list(recipe_changes(tmp_path, recipe)) == ["recipe.yaml"]


def test_finished_runs_are_reused_only_with_the_same_recipe(tmp_path, monkeypatch, capsys):
    """Training and scoring replaced by fakes: which runs train, with which message."""
    trained = []

    def fake_run(recipe):
        out = Path(recipe.training.output_dir)
        trained.append((out.name, recipe.training.overwrite_output_dir))
        out.mkdir(parents=True, exist_ok=True)
        recipe.save(out / "recipe.yaml")
        (out / "eval_results.json").write_text("{}")

    monkeypatch.setattr(train, "run", fake_run)
    monkeypatch.setattr(compare, "comparison_rows", lambda recipe: [])
    monkeypatch.setattr(compare.Translator, "from_pretrained", lambda path: path)
    monkeypatch.setattr(compare, "evaluate_translator", lambda *args, **kwargs: {})
    monkeypatch.setattr(compare, "write_report", lambda report, root: None)
    args = ["--target_langs", "de,fr", "--output_dir", str(tmp_path)]

    def runs(extra=(), variants=None, retrain=False):
        trained.clear()
        variants = {name: load_recipe(None, [*args, *v]) for name, v in (variants or {}).items()}
        report = run_comparison(load_recipe(None, [*args, *extra]), variants, retrain)
        assert set(report["train_seconds"]) == {name for name, _ in trained}
        return sorted(trained)

    assert runs() == [("mtl", True), ("single-de", True), ("single-fr", True)]
    assert runs(["--eval_steps", "7", "--report_to", "tensorboard"]) == []  # nothing that changes a model
    assert runs(variants={"dwa": ["--loss_weighting", "dwa"]}) == [("dwa", True)]
    capsys.readouterr()
    assert runs(variants={"dwa": ["--loss_weighting", "dwa", "--dwa_temperature", "3.0"]}) == [("dwa", True)]
    message = f"compare: retraining dwa: {tmp_path / 'dwa'} was trained with another recipe ("
    assert message + "dwa_temperature: 2.0 -> 3.0)" in capsys.readouterr().out
    assert runs(["--max_steps", "7"], {"dwa": ["--loss_weighting", "dwa", "--dwa_temperature", "3.0"]}) == [
        ("mtl", True), ("single-de", True), ("single-fr", True)]  # the variant's own recipe did not change
    assert runs(["--max_steps", "7"], retrain=True) == [("mtl", True), ("single-de", True), ("single-fr", True)]
    for name in ("mtl", "single-de", "single-fr"):  # saved by a version without the `streaming` key
        saved = yaml.safe_load((tmp_path / name / "recipe.yaml").read_text())
        del saved["streaming"]
        (tmp_path / name / "recipe.yaml").write_text(yaml.safe_dump(saved))
    assert runs(["--max_steps", "7"]) == []  # the key's default is what those runs trained with
    assert runs(["--max_steps", "7", "--shuffle_buffer_size", "5"]) == [("mtl", True), ("single-de", True),
                                                                         ("single-fr", True)]


def test_compare_needs_a_test_split():
    with pytest.raises(ValueError, match=r"compare scores every model on the test split: set test_split \(it is nul"):
        run_comparison(load_recipe(None, ["--test_split", "null"]))


def test_scores_are_cached_per_run_for_the_same_rows_and_model_files(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(compare.Translator, "from_pretrained", lambda path: path)
    monkeypatch.setattr(compare, "evaluate_translator",
                        lambda path, rows, src, batch_size: calls.append(path) or {"bleu": {"de": len(calls)}})
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(b"weights")
    rows = [{"translation": {"en": "Open file", "de": "Datei öffnen"}}]
    first = compare.scores_of(run, rows, "en", 8)
    assert compare.scores_of(run, rows, "en", 8) == first == {"bleu": {"de": 1}} and len(calls) == 1
    assert compare.scores_of(run, rows[:0], "en", 8) == {"bleu": {"de": 2}}  # other rows: scored again
    (run / "model.safetensors").write_bytes(b"retrained weights")
    assert compare.scores_of(run, rows[:0], "en", 8) == {"bleu": {"de": 3}}  # the model changed
    (run / compare.SCORES_FILE).write_text("{damaged")
    assert compare.scores_of(run, rows[:0], "en", 8) == {"bleu": {"de": 4}}
    assert compare.scores_of(run, rows[:0], "en", 8) == {"bleu": {"de": 4}} and len(calls) == 4
    empty = tmp_path / "no-model-files"  # nothing to tell a retrained model by: never cached
    empty.mkdir()
    compare.scores_of(empty, rows, "en", 8), compare.scores_of(empty, rows, "en", 8)
    assert len(calls) == 6 and not (empty / compare.SCORES_FILE).exists()
