"""A disk that fills up while a checkpoint or the best model is written, in-process on a tiny encoder: the writers
are made to fail as they do on a full disk, after writing part of their file. The run stops with one line naming
the path, the space needed and free; the partial folder is gone and what was saved before is intact."""

import errno
import re
import shutil
from pathlib import Path

import pytest
from safetensors import SafetensorError

from mtl_translate.checkpointing import TrainingError, complete_checkpoints

from .test_training_reliability import train

SIZE = r"about [\d,.]+ MB needed, [\d,.]+ MB free in "


def fail_in(monkeypatch, target: str, folder: str, error: Exception) -> None:
    """`target` (a writer `fn(obj, path, ...)`, as a dotted name) writes a few bytes and raises `error` for paths
    inside a folder named `folder`; other paths are written as usual."""
    module, _, name = target.rpartition(".")
    write = getattr(__import__(module, fromlist=[name]), name)

    def failing(obj, path, *args, **kwargs):
        if Path(path).parent.name != folder:
            return write(obj, path, *args, **kwargs)
        Path(path).write_bytes(b"\0" * 64)
        raise error

    monkeypatch.setattr(target, failing)


def little_space_left(monkeypatch, folder: str) -> None:
    """shutil.disk_usage reports 1 MB free for paths under `folder`: what follows a short write on a full disk."""
    usage = shutil.disk_usage

    def reported(path):
        return usage(path)._replace(free=10**6) if folder in Path(path).parts else usage(path)

    monkeypatch.setattr(shutil, "disk_usage", reported)


@pytest.mark.parametrize("writer", ["model", "optimizer"])
def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_previous_one(monkeypatch, corpus_dir,
                                                                                tiny_encoder_dir, tmp_path, writer):
    """safetensors says "No space left on device"; torch.save only "unexpected pos" (a short write), where the
    free space tells."""
    if writer == "model":
        fail_in(monkeypatch, "accelerate.utils.other.safe_save_file", ".tmp-step_4",
                SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"))
    else:
        fail_in(monkeypatch, "torch.save", ".tmp-step_4",
                RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"))
        little_space_left(monkeypatch, "checkpoints")
    out = tmp_path / "run"
    with pytest.raises(TrainingError) as stopped:
        train(corpus_dir, tiny_encoder_dir, out, tmp_path, max_steps=4, eval_steps=4, save_steps=2)
    root = re.escape(str(out / "checkpoints"))
    assert re.fullmatch(f"cannot save checkpoint {root}/step_4: no space left on device \\({SIZE}{root}\\); the "
                        f"previous checkpoint {root}/step_2 is intact. [^\n]+", str(stopped.value))
    assert not (out / "checkpoints" / ".tmp-step_4").exists() and [s for s, _ in complete_checkpoints(out)] == [2]
    monkeypatch.undo()
    train(corpus_dir, tiny_encoder_dir, out, tmp_path, max_steps=4, eval_steps=4, save_steps=2,
          resume_from_checkpoint="latest")  # the previous checkpoint loads, the run ends
    assert [s for s, _ in complete_checkpoints(out)] == [2, 4]


def test_a_full_disk_during_the_best_model_save_keeps_the_previous_best(monkeypatch, corpus_dir, tiny_encoder_dir,
                                                                        tmp_path):
    """Without validation the last model is the best: a 2-step run saves it, its extension to 4 steps cannot."""
    out = tmp_path / "run"
    train(corpus_dir, tiny_encoder_dir, out, tmp_path, max_steps=2, save_steps=2, validation_split=None)
    before = (out / "model.safetensors").read_bytes()
    fail_in(monkeypatch, "transformers.modeling_utils.safe_save_file", ".tmp-best",
            OSError(errno.ENOSPC, "No space left on device"))
    folder = re.escape(str(out))
    with pytest.raises(TrainingError, match=f"^cannot save the best model \\(step 4\\) to {folder}: no space left "
                                            f"on device \\({SIZE}{folder}\\); the best model saved before is intact"):
        train(corpus_dir, tiny_encoder_dir, out, tmp_path, max_steps=4, save_steps=2, validation_split=None,
              resume_from_checkpoint="latest")
    assert (out / "model.safetensors").read_bytes() == before and not (out / ".tmp-best").exists()
