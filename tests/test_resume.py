"""A run killed with SIGKILL (between steps, or in the middle of writing a checkpoint), or stopped by SIGTERM, and
resumed with `resume_from_checkpoint: latest` ends bit for bit where the uninterrupted run ends, dropout and learned
loss weights included."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml
from .conftest import tiny_recipe
from safetensors.torch import load_file

from mtl_translate.checkpointing import latest_checkpoint

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


def signal_when(cmd, env: dict, ready, sig: int, log=subprocess.DEVNULL, target=lambda proc: proc.pid) -> int:
    """Start `cmd` (its output to `log`), send `sig` to it (or to the process `target(proc)` names) as soon as
    `ready()` holds (checked every 50 ms); its exit status."""
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env={**ENV, **env})
    deadline = time.monotonic() + 300
    while not ready():
        assert proc.poll() is None, "the run ended before it could be signalled"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(target(proc), sig)
    return proc.wait(timeout=300)


def kill_when(cmd, env: dict, ready) -> None:
    assert signal_when(cmd, env, ready, signal.SIGKILL) == -signal.SIGKILL


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


def stopped_at(output: str, output_dir: Path) -> int:
    """The step of the checkpoint that the run said it saved on SIGTERM: the latest one."""
    said = re.findall(r"received SIGTERM: saved checkpoint (\S+), exiting; resume with resume_from_checkpoint: latest",
                      output)
    assert len(said) == 1 and Path(said[0]) == latest_checkpoint(output_dir), output[-3000:]
    return int(said[0].rpartition("_")[2])


def test_sigterm_saves_a_checkpoint_at_the_next_step_exits_and_resume_is_bit_identical(reference, corpus_dir,
                                                                                       tiny_encoder_dir, tmp_path):
    """SIGTERM (what torchrun, SLURM and spot machines send before they stop a job) mid-run: a checkpoint at the
    next optimizer step boundary, a line that says so, exit status 143 (128 + SIGTERM: an interrupted job)."""
    out = tmp_path / "terminated"
    cmd = command(recipe_for(corpus_dir, tiny_encoder_dir, out), tmp_path)
    with open(tmp_path / "terminated.log", "w+") as log:
        status = signal_when(cmd, {"MTL_TRANSLATE_TEST_STEP_SECONDS": "0.5"},
                             lambda: (out / "checkpoints" / "step_3").is_dir(), signal.SIGTERM, log)
        log.seek(0)
        output = log.read()
    assert status == 128 + signal.SIGTERM and "Traceback" not in output, output[-3000:]
    stopped = stopped_at(output, out)
    assert 3 <= stopped < 8  # signalled after step 3's save, before the end
    proc = run_to_end(cmd + ["--resume_from_checkpoint", "latest"])
    assert f"at step {stopped}" in proc.stdout
    assert_same_run(out, reference, stopped)


def test_sigterm_to_one_of_two_processes_stops_both_after_the_same_step(corpus_dir, tiny_encoder_dir, tmp_path):
    """Launchers signal the processes one by one: SIGTERM reaching process 1 only stops both after the same step
    (saving is collective: one process saving alone would hang the run), with both RNG states saved; resuming
    finishes the run."""
    out = tmp_path / "ddp"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd = [*torchrun, *command({**recipe_for(corpus_dir, tiny_encoder_dir, out), "ddp_timeout": 120}, tmp_path)[1:]]
    env = {"MTL_TRANSLATE_TEST_STEP_SECONDS": "0.5", "OMP_NUM_THREADS": "1"}

    def rank_1(proc) -> int:
        return next(p.pid for p in psutil.Process(proc.pid).children() if p.environ().get("RANK") == "1")

    with open(tmp_path / "ddp.log", "w+") as log:
        signal_when(cmd, env, lambda: (out / "checkpoints" / "step_3").is_dir(), signal.SIGTERM, log, rank_1)
        log.seek(0)
        stopped = stopped_at(log.read(), out)
    assert {p.name for p in latest_checkpoint(out).iterdir()} >= {"random_states_0.pkl", "random_states_1.pkl"}
    proc = run_to_end(cmd + ["--resume_from_checkpoint", "latest"], env={"OMP_NUM_THREADS": "1"})
    assert f"at step {stopped}" in proc.stdout and json.loads((out / "trainer_state.json").read_text())["step"] == 8
