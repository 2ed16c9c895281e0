"""What a resume may change and what it refuses, in-process on a tiny encoder: new learning rates and weight decay
are applied from the resumed step, a value that would regroup the optimizer's parameters or reshape the schedule is
refused naming the key, and a new max_steps re-plans the rest of the schedule (a finished run goes on from its last
rate, never from a re-sized schedule's)."""

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mtl_translate import MTLTranslationModel
from mtl_translate.configs import load_recipe
from mtl_translate.optimization import schedule_shape, set_rates, settings_on_resume
from mtl_translate.train import build_optimizer

from .conftest import tiny_config
from .test_training_reliability import train, trainer_state

LR = 3e-3  # tiny_recipe's learning_rate: linear schedule, 2 warmup steps


@pytest.fixture(scope="module")
def run4(corpus_dir, tiny_encoder_dir, tmp_path_factory):
    """A finished 4-step run with a checkpoint at every step."""
    tmp = tmp_path_factory.mktemp("run4")
    train(corpus_dir, tiny_encoder_dir, tmp / "run", tmp, max_steps=4, eval_steps=2, save_steps=1, save_total_limit=4)
    return tmp / "run"


def resumed(run: Path, corpus_dir, encoder, tmp_path, step: str = "latest", **overrides) -> Path:
    """A copy of `run` resumed from its checkpoint `step` (or `latest`) with the recipe changed by `overrides`."""
    out = tmp_path / f"{run.name}_resumed"
    shutil.copytree(run, out)
    checkpoint = step if step == "latest" else str(out / "checkpoints" / f"step_{step}")
    train(corpus_dir, encoder, out, tmp_path, **{"eval_steps": 2, "save_steps": 2, "max_steps": 4,
                                                "resume_from_checkpoint": checkpoint, **overrides})
    return out


def logged_lr(output_dir) -> dict[int, float]:
    """`train/lr` by step: the rate the next optimizer step uses, logged after each step."""
    return {entry["step"]: entry["train/lr"] for entry in trainer_state(output_dir)["history"] if "train/lr" in entry}


def saved_groups(checkpoint: Path) -> set[tuple[float, float, float]]:
    """(base learning rate, current learning rate, weight decay) of the optimizer groups a checkpoint holds."""
    groups = torch.load(checkpoint / "optimizer.bin", weights_only=True)["param_groups"]
    return {(group["initial_lr"], group["lr"], group["weight_decay"]) for group in groups}


def test_a_new_learning_rate_and_weight_decay_apply_from_the_resumed_step(run4, corpus_dir, tiny_encoder_dir,
                                                                         tmp_path, capsys):
    out = resumed(run4, corpus_dir, tiny_encoder_dir, tmp_path, step="2", save_steps=1, learning_rate=1e-3,
                  weight_decay=0.05)
    assert "resume: learning_rate: 0.003 -> 0.001, weight_decay: 0.01 -> 0.05 applied from step 2 on; learning " \
           "rate now 0.001" in capsys.readouterr().out
    assert logged_lr(run4)[3] == LR / 2  # the same schedule (linear, halfway down at step 3) at the new peak rate
    assert logged_lr(out)[3] == pytest.approx(1e-3 / 2, rel=1e-12) and logged_lr(out)[4] == 0.0
    assert saved_groups(out / "checkpoints" / "step_3") == {(1e-3, 1e-3 / 2, 0.05), (1e-3, 1e-3 / 2, 0.0)}


@pytest.mark.parametrize("key, value, detail", [
    ("encoder_learning_rate", 1e-4, r"encoder_learning_rate: None -> 0.0001: .*\(2 groups -> 4"),
    ("weight_decay", 0.0, r"weight_decay: 0.01 -> 0.0: .*\(2 groups -> 1"),
])
def test_a_value_that_regroups_the_parameters_is_refused_naming_the_key(run4, corpus_dir, tiny_encoder_dir, tmp_path,
                                                                        key, value, detail):
    with pytest.raises(ValueError, match=f"cannot resume from .*step_4 with {detail}") as refused:
        resumed(run4, corpus_dir, tiny_encoder_dir, tmp_path, max_steps=6, **{key: value})
    assert "corrupt" not in str(refused.value) and "init_model" in str(refused.value)


def test_a_new_encoder_learning_rate_applies_to_the_encoder_groups(tokenizer):
    """Where the encoder has its own groups (encoder_learning_rate set and not learning_rate), a new value changes
    those groups only, at the schedule's current factor."""
    model = MTLTranslationModel(tiny_config(tokenizer))
    before = load_recipe(None, ["--learning_rate", "1e-3", "--encoder_learning_rate", "1e-5", "--warmup_steps", "0",
                                "--lr_scheduler_type", "linear"])
    optimizer, scheduler = build_optimizer(before, model, num_steps=10)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    after = load_recipe(None, ["--learning_rate", "1e-3", "--encoder_learning_rate", "2e-5", "--warmup_steps", "0",
                               "--lr_scheduler_type", "linear"])
    rates = settings_on_resume({"encoder_learning_rate": (1e-5, 2e-5)}, after.training, model, "step_5")
    set_rates(scheduler, optimizer, rates, None)
    encoder = {id(p) for p in model.encoder.parameters()}
    for group in optimizer.param_groups:
        base = 2e-5 if id(group["params"][0]) in encoder else 1e-3
        assert group["initial_lr"] == base and group["lr"] == pytest.approx(base / 2, rel=1e-12)


@pytest.mark.parametrize("key, value", [("warmup_steps", 5), ("lr_scheduler_type", "cosine")])
def test_a_new_warmup_or_schedule_type_is_refused_naming_the_key(run4, corpus_dir, tiny_encoder_dir, tmp_path,
                                                                 key, value):
    old = {"warmup_steps": 2, "lr_scheduler_type": "linear"}[key]
    with pytest.raises(ValueError, match=f"changes the shape of the learning-rate schedule .*\\({key}: {old!r} -> "
                                         f"{value!r}\\).*init_model"):
        resumed(run4, corpus_dir, tiny_encoder_dir, tmp_path, max_steps=6, **{key: value})


@pytest.mark.parametrize("step, max_steps, rates", [(3, 6, {4: 1 / 3, 5: 1 / 6, 6: 0.0}), (1, 3, {2: 0.75, 3: 0.0})])
def test_a_new_max_steps_mid_run_stretches_the_rest_of_the_schedule(run4, corpus_dir, tiny_encoder_dir, tmp_path,
                                                                    capsys, step, max_steps, rates):
    """The rest of the schedule from the resumed step is stretched (squeezed) to the new max_steps: from step 3
    (rate 1.5e-3, halfway down) linear to 0 at step 6, where a schedule re-sized for 6 steps would hold 1.5e-3 for
    one more step; from step 1 (warming up) the rest of the warmup and the decay squeezed into 2 steps."""
    out = resumed(run4, corpus_dir, tiny_encoder_dir, tmp_path, step=str(step), max_steps=max_steps)
    assert f"resume: max_steps 4 -> {max_steps}: the linear schedule goes on from its current rate and ends at step " \
           f"{max_steps}; learning rate now 0.0015" in capsys.readouterr().out
    logged = logged_lr(out)
    assert logged[step] == LR / 2 and {s: logged[s] for s in rates} == pytest.approx(
        {s: LR * r for s, r in rates.items()}, rel=1e-12)


def test_extending_a_finished_run_decays_from_its_last_rate_and_resumes_exactly(run4, corpus_dir, tiny_encoder_dir,
                                                                                tmp_path, capsys):
    """The finished run's last step trained at 1.5e-3 (logged at step 3; 0 logged at step 4): the extension goes on
    at 1.5e-3 and decays linearly to 0 at the new max_steps, never back up to a re-sized schedule's rate. The plan
    is saved with the checkpoints: the extended run resumed from its step 6 ends bit for bit where it ends."""
    out = resumed(run4, corpus_dir, tiny_encoder_dir, tmp_path, max_steps=8)
    assert "resume: max_steps 4 -> 8: the linear schedule goes on from the rate of its last step (the run had " \
           "finished) and ends at step 8; learning rate now 0.0015" in capsys.readouterr().out
    logged = logged_lr(out)
    assert [logged[step] for step in range(3, 9)] == pytest.approx(
        [LR / 2, 0.0, LR * 0.375, LR * 0.25, LR * 0.125, 0.0], rel=1e-12)
    shutil.copytree(out, tmp_path / "again")
    shutil.rmtree(tmp_path / "again" / "checkpoints" / "step_8")
    again = resumed(tmp_path / "again", corpus_dir, tiny_encoder_dir, tmp_path, step="6", max_steps=8)
    assert "resume: max_steps" not in capsys.readouterr().out
    assert [logged_lr(again)[step] for step in (7, 8)] == [logged[7], logged[8]]
    a, b = (load_file(run / "checkpoints" / "step_8" / "model.safetensors") for run in (out, again))
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_a_schedule_that_ignores_max_steps_goes_on_unchanged(corpus_dir, tiny_encoder_dir, tmp_path, capsys):
    """inverse_sqrt (the default) does not depend on max_steps: extending a run keeps its rates."""
    train(corpus_dir, tiny_encoder_dir, tmp_path / "short", tmp_path, max_steps=2, eval_steps=2, save_steps=2,
          lr_scheduler_type="inverse_sqrt")
    out = resumed(tmp_path / "short", corpus_dir, tiny_encoder_dir, tmp_path, lr_scheduler_type="inverse_sqrt")
    assert "resume: max_steps 2 -> 4: the inverse_sqrt schedule does not depend on max_steps and goes on as it was" \
           in capsys.readouterr().out
    shape = schedule_shape(load_recipe(None, ["--lr_scheduler_type", "inverse_sqrt", "--warmup_steps", "2"]).training,
                           4, 1)
    assert [logged_lr(out)[step] for step in (2, 3, 4)] == [LR * shape(step) for step in (2, 3, 4)]
