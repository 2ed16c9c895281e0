"""`mtl-translate compare`: single-task models vs the multi-task model(s) on the same test rows."""

import json

import yaml

from mtl_translate.compare import table_rows, write_report

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
    assert set(report["scores"]["single-fr"]["bleu"]) == {"fr"}
    for lang in ("de", "fr", "es"):  # every model scored on the same rows
        assert report["scores"][f"single-{lang}"]["n"][lang] == report["scores"]["mtl"]["n"][lang] == 15
    assert yaml.safe_load((root / "single-de" / "recipe.yaml").read_text())["target_langs"] == ["de"]
    assert yaml.safe_load((root / "uncertainty" / "recipe.yaml").read_text())["max_steps"] == 2
    assert "| mean |" in proc.stdout and (root / "comparison.png").is_file()
    assert "| mean |" in cli(*args).stdout  # runs that have results are reused, not retrained
    assert json.loads((root / "comparison.json").read_text())["train_seconds"] == {}
