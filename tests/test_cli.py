"""The CLI as a user runs it: train (a few steps) -> evaluate -> translate -> push (upload patched), via subprocess."""

import json
import os
import subprocess
import sys

import pytest
import yaml

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def cli(*args, input=None, check=True):
    proc = subprocess.run([sys.executable, "-m", "mtl_translate.cli", *map(str, args)], input=input,
                          capture_output=True, text=True, env=ENV, timeout=600)
    if check and proc.returncode:
        raise AssertionError(f"mtl-translate {args[0]} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def trained(corpus_dir, encoder_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "model"
    recipe = out.parent / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "dataset_name": str(corpus_dir), "target_langs": ["de", "fr", "es"], "output_dir": str(out),
        "trainable_encoder_layers": 0, "decoder_layers": 1, "decoder_hidden_size": 64, "decoder_ffn_dim": 128,
        "target_vocab_size": 400, "max_steps": 6, "eval_steps": 3, "save_steps": 3, "warmup_steps": 2,
        "per_device_train_batch_size": 8, "logging_steps": 2, "eval_max_new_tokens": 8,
    }))
    proc = cli("train", recipe, "--learning_rate", "2e-3", "--hub_model_id", "acme/tiny-mtl")
    return out, proc


def test_train_writes_best_model_results_recipe_card_and_checkpoints(trained):
    out, proc = trained
    assert "step 3 validation" in proc.stdout and "step 6 validation" in proc.stdout
    for name in ("config.json", "model.safetensors", "generation_config.json", "eval_results.json", "recipe.yaml",
                 "README.md", "tokenizers/de/tokenizer.model", "tokenizers/source/tokenizer_config.json"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_3", "step_6"]
    results = json.loads((out / "eval_results.json").read_text())
    assert set(results["bleu"]) == {"de", "fr", "es"} and results["n"] == {"de": 15, "fr": 15, "es": 15}
    assert results["split"] == "test" and results["signature"].startswith("nrefs:1|case:mixed")
    generation = json.loads((out / "generation_config.json").read_text())
    assert set(generation["metavariables"]) == {"de", "fr", "es"}  # mined from the corpus (metavariables.py)
    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    assert recipe["learning_rate"] == 2e-3 and recipe["hub_model_id"] == "acme/tiny-mtl"  # CLI override won


def test_resume_from_checkpoint_continues_at_the_saved_step(trained):
    out, _ = trained
    proc = cli("train", out / "recipe.yaml", "--max_steps", "8", "--resume_from_checkpoint", "latest",
               "--eval_steps", "100", "--save_steps", "100")
    assert "resumed from" in proc.stdout and "at step 6" in proc.stdout
    assert "step 8 validation" in proc.stdout and "step 3 validation" not in proc.stdout
    assert (out / "checkpoints" / "step_8").is_dir()


def test_evaluate_prints_table_and_writes_json(trained, corpus_dir, tmp_path):
    out, _ = trained
    proc = cli("evaluate", "--model", out, "--data", corpus_dir / "test.jsonl", "--output", tmp_path / "r.json",
               "--langs", "de,fr")
    assert "BLEU signature: nrefs:1" in proc.stdout
    results = json.loads((tmp_path / "r.json").read_text())
    assert set(results) >= {"bleu", "chrf", "n", "mean_bleu", "signature"}
    assert set(results["bleu"]) == {"de", "fr"}


def test_translate_reads_lines_and_writes_json_in_order(trained):
    out, _ = trained
    lines = ["Open file", "Quit", "Show help"]
    proc = cli("translate", "--model", out, "--langs", "de,es", input="\n".join(lines) + "\n")
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["source"] for r in records] == lines
    assert all(set(r) == {"source", "de", "es"} and isinstance(r["de"], str) for r in records)


def test_translate_unknown_language_is_a_clear_error(trained):
    out, _ = trained
    proc = cli("translate", "--model", out, "--langs", "de,it", input="Quit\n", check=False)
    assert proc.returncode != 0
    assert "unknown target language(s) ['it']" in proc.stderr and "['de', 'fr', 'es']" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_translate_bad_model_folder_or_argument_is_one_line_without_traceback(trained, tmp_path):
    out, _ = trained
    proc = cli("translate", "--model", tmp_path / "missing", input="Quit\n", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"mtl-translate translate: error: model folder '{tmp_path / 'missing'}' does not " \
                                  f"exist (nor is it a Hub repo id ORG/NAME)."
    proc = cli("translate", "--model", out, "--num-beams", "0", input="Quit\n", check=False)
    assert proc.returncode == 2 and "argument --num-beams: must be >= 1, got 0" in proc.stderr


def test_push_uploads_folder_with_card_and_never_prints_the_token(trained, tmp_path):
    out, _ = trained
    script = f"""
import sys, json, huggingface_hub
calls = {{}}
def create_repo(self, repo_id, **kw):
    calls["create"] = dict(repo_id=repo_id, **kw)
    return "https://huggingface.co/" + repo_id
def create_commit(self, repo_id, operations, **kw):
    calls["upload"] = dict(repo_id=repo_id, **kw)
    calls["files"] = sorted({{op.path_in_repo.split("/")[0] for op in operations}})
huggingface_hub.HfApi.create_repo = create_repo
huggingface_hub.HfApi.create_commit = create_commit
from mtl_translate.cli import main
main(["push", "--model", {str(out)!r}, "--repo-id", "acme/tiny-mtl", "--private", "--token", "hf_SECRET123"])
json.dump(calls, open({str(tmp_path / "calls.json")!r}, "w"))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    calls = json.loads((tmp_path / "calls.json").read_text())
    assert calls["create"]["repo_id"] == "acme/tiny-mtl" and calls["create"]["private"] is True
    assert calls["upload"]["repo_id"] == "acme/tiny-mtl"
    assert {"README.md", "model.safetensors", "config.json", "tokenizers"} <= set(calls["files"])
    assert "hf_SECRET123" not in proc.stdout + proc.stderr


def test_unknown_recipe_key_lists_valid_keys(trained):
    out, _ = trained
    proc = cli("train", out / "recipe.yaml", "--learning_rat", "1e-3", check=False)
    assert proc.returncode != 0 and "unknown key(s) ['learning_rat']" in proc.stderr
    assert "learning_rate" in proc.stderr and "Traceback" not in proc.stderr
