"""Issue 15 §3: tensorboard and trackio hold loss and BLEU per language, offline; every run writes its plots as PNGs,
which the model card embeds and the upload includes."""

import importlib.util
import json
import logging
import os
import sqlite3
import subprocess
import sys

import pytest
import yaml

from mtl_translate.hub import build_model_card, save_model_card, upload_operations
from mtl_translate.plots import write_run_plots

from .conftest import LANGS, tiny_recipe

pytest.importorskip("matplotlib")
TRACKERS = [name for name in ("tensorboard", "trackio") if importlib.util.find_spec(name)]
PLOTS = ["plots/training_loss.png", "plots/validation_bleu.png", "plots/test_scores.png"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tracked_run(corpus_dir, tiny_encoder_dir, tmp_path_factory):
    """`mtl-translate train` for 4 steps (validation at 2 and 4) with every installed tracker, offline, trackio's
    store in a temporary folder (TRACKIO_DIR is read when trackio is imported: hence a process of its own)."""
    tmp = tmp_path_factory.mktemp("plots")
    recipe = tmp / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(corpus_dir, tiny_encoder_dir, tmp / "model", max_steps=4,
                                                 eval_steps=2, save_steps=4, report_to=TRACKERS)))
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRACKIO_")}  # no Space, no server
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", TRACKIO_DIR=str(tmp / "trackio"),
               TRACKIO_STORAGE_MODE="sqlite")
    proc = subprocess.run([sys.executable, "-m", "mtl_translate.cli", "train", str(recipe)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, f"training failed:\n{proc.stdout}\n{proc.stderr}"
    return tmp


def expected_scalars() -> dict[str, list[int]]:
    """Tag -> the steps it is logged at: loss every step (logging_steps 1), scores at each validation."""
    train = {tag: [1, 2, 3, 4] for tag in ["train/loss", *(f"train/{lang}" for lang in LANGS)]}
    scores = {f"eval/{metric}_{lang}": [2, 4] for metric in ("bleu", "chrf") for lang in LANGS}
    return {**train, **scores, "eval/mean_bleu": [2, 4]}


def test_tensorboard_event_files_hold_loss_and_scores_per_language(tracked_run):
    if "tensorboard" not in TRACKERS:
        pytest.skip("tensorboard is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((tracked_run / "model").rglob("*tfevents*")).parent)).Reload()
    steps = {tag: [event.step for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert {tag: steps.get(tag) for tag in expected_scalars()} == expected_scalars()


def test_trackio_store_holds_loss_and_scores_per_language(tracked_run):
    if "trackio" not in TRACKERS:
        pytest.skip("trackio is not installed")
    with sqlite3.connect(tracked_run / "trackio" / "mtl-translate.db") as db:  # trackio's local store, one per project
        rows = db.execute("SELECT step, metrics FROM metrics ORDER BY step").fetchall()
    steps = {}
    for step, metrics in rows:
        for tag in json.loads(metrics):
            steps.setdefault(tag, []).append(step)
    assert {tag: steps.get(tag) for tag in expected_scalars()} == expected_scalars()


def test_run_writes_png_plots_that_the_card_embeds_and_the_upload_includes(tracked_run):
    from matplotlib.image import imread

    model = tracked_run / "model"
    for name in PLOTS:
        assert (model / name).read_bytes().startswith(PNG_SIGNATURE)
        height, width, channels = imread(model / name).shape
        assert height > 200 and width > 300 and channels == 4
    card = (model / "README.md").read_text()
    assert "## Plots\n\n![training loss per language over steps](plots/training_loss.png)\n\n" \
           "![validation BLEU per language over steps](plots/validation_bleu.png)\n\n" \
           "![final BLEU and chrF per language](plots/test_scores.png)\n" in card
    uploaded = [op.path_in_repo for op in upload_operations(model)]
    assert sorted(name for name in uploaded if name.endswith(".png")) == sorted(PLOTS)


def write_folder(path, history, results=None):
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"languages": LANGS, "source_lang": "en"}))
    (path / "trainer_state.json").write_text(json.dumps({"history": history}))
    if results is not None:
        (path / "eval_results.json").write_text(json.dumps(results))


def test_plots_without_validation_or_test_are_skipped_and_logged(tmp_path, caplog):
    history = [{"step": s, "train/loss": 3.0 / s, **{f"train/{lang}": 3.0 / s for lang in LANGS}} for s in (1, 2)]
    write_folder(tmp_path / "model", history)
    with caplog.at_level(logging.INFO, logger="mtl_translate.plots"):
        written = write_run_plots(tmp_path / "model")
    assert [p.relative_to(tmp_path / "model").as_posix() for p in written] == ["plots/training_loss.png"]
    assert caplog.messages == [
        "validation_bleu.png: no validation in trainer_state.json (no validation_split), not plotted",
        "test_scores.png: no scores in eval_results.json (no test_split), not plotted",
    ]
    card = build_model_card(tmp_path / "model").content
    assert "plots/training_loss.png" in card and "plots/validation_bleu.png" not in card


def test_card_of_a_folder_with_only_test_scores_embeds_only_their_chart(tmp_path):
    write_folder(tmp_path / "model", [], {"bleu": {"de": 10.0}, "chrf": {"de": 30.0}})
    save_model_card(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model" / "plots").iterdir()) == ["test_scores.png"]
    assert "## Plots\n\n![final BLEU and chrF per language](plots/test_scores.png)\n" in \
           (tmp_path / "model" / "README.md").read_text()


def test_a_broken_trainer_state_is_named(tmp_path):
    write_folder(tmp_path / "model", [])
    (tmp_path / "model" / "trainer_state.json").write_text('{"history": [')
    with pytest.raises(ValueError, match=r"trainer_state\.json is not valid JSON \(.*\): fix or remove it"):
        write_run_plots(tmp_path / "model")


def test_a_folder_that_is_no_training_output_gets_no_plots(tmp_path, caplog):
    write_folder(tmp_path / "model", [], {"bleu": {"de": 10.0}, "chrf": {"de": 30.0}})
    (tmp_path / "model" / "trainer_state.json").unlink()
    with caplog.at_level(logging.INFO, logger="mtl_translate.plots"):
        assert write_run_plots(tmp_path / "model") == []
    assert caplog.messages == [
        f"{tmp_path / 'model'} has no trainer_state.json (not a training run's output): no plots"]
    assert not (tmp_path / "model" / "plots").exists()
