"""A run killed with SIGKILL (between steps, or in the middle of writing a checkpoint) and resumed with
`resume_from_checkpoint: latest` ends bit for bit where the uninterrupted run ends, dropout and learned loss weights
included."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from .conftest import tiny_recipe
from safetensors.torch import load_file

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
pytestmark = pytest.mark.slow


def command(recipe: dict, tmp_path, *overrides) -> list[str]:
    path = tmp_path / f"recipe_{Path(recipe['output_dir']).name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return [sys.executable, "-m", "mtl_translate.cli", "train", str(path), *overrides]


def run_to_end(cmd, env=None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**ENV, **(env or {})}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def kill_when(cmd, env: dict, ready) -> None:
    """Start `cmd`, SIGKILL it as soon as `ready()` holds (checked every 50 ms)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**ENV, **env})
    deadline = time.monotonic() + 300
    while not ready():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def losses_after(output_dir, step: int) -> list[dict]:
    history = json.loads(Path(output_dir, "trainer_state.json").read_text())["history"]
    return [entry for entry in history if entry["step"] > step]


def recipe_for(corpus_dir, encoder, output_dir) -> dict:
    """Dropout on (the RNG stream must resume), DWA loss weights (state that must resume), a trained encoder layer;
    4 steps per epoch and a checkpoint every 3, so that runs resume in the middle of an epoch."""
    return tiny_recipe(corpus_dir, encoder, output_dir, decoder_dropout=0.1, trainable_encoder_layers=1,
                       loss_weighting="dwa", dwa_window=3, max_steps=8, save_steps=3, eval_steps=4)


@pytest.fixture(scope="module")
def reference(corpus_dir, tiny_encoder_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    run_to_end(command(recipe_for(corpus_dir, tiny_encoder_dir, tmp / "ref"), tmp))
    return tmp / "ref"


def assert_same_run(resumed: Path, reference: Path, resumed_at: int) -> None:
    for name in ("checkpoints/step_8/model.safetensors", "model.safetensors"):
        a, b = load_file(resumed / name), load_file(reference / name)
        assert a.keys() == b.keys(), name
        for key in a:  # bit for bit (DWA's loss history starts as NaN: NaN equals NaN here)
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, equal_nan=True, msg=f"{name}: {key}")
    assert losses_after(resumed, resumed_at) == losses_after(reference, resumed_at)  # losses, lr, BLEU, weights


def test_sigkill_between_steps_then_resume_is_bit_identical(reference, corpus_dir, tiny_encoder_dir, tmp_path):
    out = tmp_path / "killed"
    cmd = command(recipe_for(corpus_dir, tiny_encoder_dir, out), tmp_path)
    kill_when(cmd, {"MTL_TRANSLATE_TEST_STEP_SECONDS": "0.5"}, lambda: (out / "checkpoints" / "step_3").is_dir())
    proc = run_to_end(cmd + ["--resume_from_checkpoint", "latest"])
    resumed_at = int(proc.stdout.split("at step ")[1].split()[0])
    assert resumed_at in (3, 6)
    assert_same_run(out, reference, resumed_at)


def test_sigkill_during_a_save_leaves_no_checkpoint_and_resume_is_bit_identical(reference, corpus_dir,
                                                                                 tiny_encoder_dir, tmp_path):
    out = tmp_path / "killed_saving"
    cmd = command(recipe_for(corpus_dir, tiny_encoder_dir, out), tmp_path)
    tmp_save = out / "checkpoints" / ".tmp-step_6"
    kill_when(cmd, {"MTL_TRANSLATE_TEST_SAVE_SECONDS": "3"},
              lambda: (tmp_save / "model.safetensors").is_file() and (tmp_save / "recipe.yaml").is_file())
    assert not (out / "checkpoints" / "step_6").exists() and (out / "checkpoints" / "step_3").is_dir()
    proc = run_to_end(cmd + ["--resume_from_checkpoint", "latest"])
    assert "resumed from" in proc.stdout and "at step 3" in proc.stdout
    assert not tmp_save.exists()  # the unfinished save was removed
    assert_same_run(out, reference, 3)
