"""The training loop's guards, in-process on a tiny encoder: output folders, checkpoint names, resume checks,
non-finite losses, learning-rate groups, training without a validation split."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from .conftest import tiny_config, tiny_recipe

from mtl_translate import MTLTranslationModel
from mtl_translate.checkpointing import TrainingError, complete_checkpoints, latest_checkpoint, rotate_checkpoints
from mtl_translate.configs import load_recipe
from mtl_translate.train import build_optimizer, run


def train(corpus_dir, encoder, output_dir, tmp_path, **overrides) -> dict:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(corpus_dir, encoder, output_dir, **overrides)))
    return run(load_recipe(str(path)))


def trainer_state(output_dir) -> dict:
    return json.loads(Path(output_dir, "trainer_state.json").read_text())


@pytest.fixture(scope="module")
def finished(corpus_dir, tiny_encoder_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finished")
    train(corpus_dir, tiny_encoder_dir, tmp / "run", tmp, max_steps=4, eval_steps=2, save_steps=2)
    return tmp / "run"


def test_fresh_run_into_a_non_empty_output_dir_is_refused_unless_overwrite(finished, corpus_dir, tiny_encoder_dir,
                                                                           tmp_path):
    with pytest.raises(ValueError, match="is not empty .*--overwrite_output_dir true.*--resume_from_checkpoint latest"):
        train(corpus_dir, tiny_encoder_dir, finished, tmp_path)
    out = tmp_path / "old"
    (out / "checkpoints" / "step_999").mkdir(parents=True)
    (out / "checkpoints" / "step_999" / "trainer_state.json").write_text("{}")  # an old run's checkpoint
    train(corpus_dir, tiny_encoder_dir, out, tmp_path, max_steps=2, eval_steps=2, save_steps=2,
          overwrite_output_dir=True)
    assert [step for step, _ in complete_checkpoints(out)] == [2]  # the old run is gone, `latest` is this run's


def test_resuming_a_finished_run_trains_nothing(finished, corpus_dir, tiny_encoder_dir, tmp_path, capsys):
    before = (finished / "checkpoints" / "step_4" / "model.safetensors").read_bytes()
    train(corpus_dir, tiny_encoder_dir, finished, tmp_path, max_steps=4, eval_steps=2, save_steps=2,
          resume_from_checkpoint="latest")
    assert "nothing to train" in capsys.readouterr().out
    assert trainer_state(finished)["step"] == 4
    assert (finished / "checkpoints" / "step_4" / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize("key, value", [("per_device_train_batch_size", 2), ("gradient_accumulation_steps", 2),
                                        ("target_langs", ["de", "fr"]), ("decoder_layers", 2), ("seed", 7)])
def test_resume_with_a_recipe_that_changes_a_step_names_the_key(finished, corpus_dir, tiny_encoder_dir, tmp_path,
                                                                key, value):
    with pytest.raises(ValueError, match=f"changes what a training step means \\({key}: "):
        train(corpus_dir, tiny_encoder_dir, finished, tmp_path, max_steps=6, eval_steps=2, save_steps=2,
              resume_from_checkpoint="latest", **{key: value})


def test_resume_with_another_number_of_processes_is_refused(finished, corpus_dir, tiny_encoder_dir, tmp_path):
    state_file = finished / "checkpoints" / "step_4" / "trainer_state.json"
    saved = state_file.read_text()
    state_file.write_text(json.dumps({**json.loads(saved), "num_processes": 2}))
    try:
        with pytest.raises(ValueError, match="written by 2 process"):
            train(corpus_dir, tiny_encoder_dir, finished, tmp_path, max_steps=6, eval_steps=2, save_steps=2,
                  resume_from_checkpoint="latest")
    finally:
        state_file.write_text(saved)


def test_corrupt_checkpoint_is_a_clear_error(finished, corpus_dir, tiny_encoder_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(finished / "checkpoints" / "step_4", broken)
    optimizer = broken / "optimizer.bin"
    optimizer.write_bytes(optimizer.read_bytes()[:100])  # truncated
    with pytest.raises(ValueError, match=f"checkpoint {broken} cannot be loaded .*corrupt or incomplete"):
        train(corpus_dir, tiny_encoder_dir, finished, tmp_path, max_steps=6, eval_steps=2, save_steps=2,
              resume_from_checkpoint=str(broken))


def test_stray_names_under_checkpoints_are_never_picked_nor_deleted(tmp_path):
    root = tmp_path / "checkpoints"
    for name in ("step_2", "step_4", "step_6"):
        (root / name).mkdir(parents=True)
        (root / name / "trainer_state.json").write_text("{}")
    (root / "step_abc").mkdir()
    (root / "step_5.bak").mkdir()
    (root / "step_999").mkdir()  # empty: an unfinished or foreign folder
    (root / "step_1000").write_text("a file")
    (root / ".tmp-step_8").mkdir()
    assert latest_checkpoint(tmp_path) == root / "step_6"
    rotate_checkpoints(tmp_path, keep=1, best_step=2)  # keeps the last one plus the best
    assert sorted(p.name for p in root.iterdir()) == [".tmp-step_8", "step_1000", "step_2", "step_5.bak", "step_6",
                                                      "step_999", "step_abc"]


def test_no_validation_split_saves_the_final_model(corpus_dir, tiny_encoder_dir, tmp_path):
    out = tmp_path / "noval"
    results = train(corpus_dir, tiny_encoder_dir, out, tmp_path, max_steps=3, save_steps=3, validation_split=None)
    assert results["best_step"] == 3 and (out / "model.safetensors").is_file()
    assert set(results["bleu"]) == {"de", "fr", "es"}
    assert not any("validation" in entry for entry in trainer_state(out)["history"])


def nan_at(monkeypatch, bad_calls: set[int]):
    """Makes the model's loss NaN on the given forward calls (1-based, training calls only)."""
    forward, calls = MTLTranslationModel.forward, [0]

    def patched(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        if self.training:
            calls[0] += 1
            if calls[0] in bad_calls:
                out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(MTLTranslationModel, "forward", patched)


def test_a_nan_loss_skips_the_step_and_is_counted(monkeypatch, corpus_dir, tiny_encoder_dir, tmp_path, capsys):
    nan_at(monkeypatch, {3})
    out = tmp_path / "nan_once"
    train(corpus_dir, tiny_encoder_dir, out, tmp_path, max_steps=5, eval_steps=5, save_steps=5)
    assert "step 3: non-finite loss or gradient, optimizer step skipped" in capsys.readouterr().out
    state = trainer_state(out)
    assert state["skipped_steps"] == 1 and state["step"] == 5
    logs = {entry["step"]: entry for entry in state["history"] if "train/lr" in entry}
    assert logs[2]["train/skipped_steps"] == 0 and logs[3]["train/skipped_steps"] == 1
    assert logs[2]["train/lr"] == logs[3]["train/lr"] != logs[4]["train/lr"]  # the schedule did not step at step 3
    from safetensors.torch import load_file

    assert all(torch.isfinite(w).all() for w in load_file(out / "model.safetensors").values())


def test_nan_losses_in_a_row_stop_training_with_the_last_checkpoint_intact(monkeypatch, corpus_dir,
                                                                           tiny_encoder_dir, tmp_path):
    nan_at(monkeypatch, set(range(3, 100)))
    out = tmp_path / "nan_forever"
    with pytest.raises(TrainingError, match=r"not finite for 3 steps in a row \(max_bad_steps=3\); the last checkpoint "
                                           r"is .*step_4"):
        train(corpus_dir, tiny_encoder_dir, out, tmp_path, max_steps=20, eval_steps=2, save_steps=2, max_bad_steps=3)
    assert [step for step, _ in complete_checkpoints(out)] == [2, 4]  # skipped steps left the weights as they were
    from safetensors.torch import load_file

    good, last = (load_file(out / f"checkpoints/step_{n}/model.safetensors") for n in (2, 4))
    assert all(torch.equal(good[k], last[k]) for k in good) and all(torch.isfinite(w).all() for w in last.values())


@pytest.mark.parametrize("sharing, extra", [("hard", {}), ("soft", {}), ("partial", {"shared_layers": 0}),
                                            ("cross_stitch", {}), ("adapters", {}), ("sluice", {})])
def test_encoder_learning_rate_reaches_every_encoder_parameter(tokenizer, sharing, extra):
    model = MTLTranslationModel(tiny_config(tokenizer, sharing=sharing, loss_weighting="uncertainty", **extra))
    recipe = load_recipe(None, ["--learning_rate", "1e-3", "--encoder_learning_rate", "1e-5"])
    optimizer, _ = build_optimizer(recipe, model, num_steps=10)
    lr_of = {id(p): group["initial_lr"] for group in optimizer.param_groups for p in group["params"]}
    for name, param in model.named_parameters():
        pretrained = name.startswith(("encoder.", "encoders.", "encoder_groups."))
        assert lr_of[id(param)] == (1e-5 if pretrained else 1e-3), name
    assert any(name.startswith(("encoders.", "encoder_groups.")) for name, _ in model.named_parameters()) \
        or sharing in ("hard", "adapters")  # the modes whose encoder is one module


def test_tokenizers_are_reused_only_for_the_data_they_were_trained_on(corpus_dir, tiny_encoder_dir, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(corpus_dir, data)
    out = tmp_path / "run"
    train(data, tiny_encoder_dir, out, tmp_path, max_steps=2, eval_steps=2, save_steps=2)
    rows = (data / "train.jsonl").read_text().replace("Datei öffnen", "Datei aufmachen")
    (data / "train.jsonl").write_text(rows)  # same dataset_name, other content
    with pytest.raises(ValueError, match="tokenizers were trained on other data or languages"):
        train(data, tiny_encoder_dir, out, tmp_path, max_steps=4, eval_steps=2, save_steps=2,
              resume_from_checkpoint="latest")
