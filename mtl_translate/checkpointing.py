"""Training checkpoints that are either complete or absent, and the checks that make a resume exact.

A checkpoint is `output_dir/checkpoints/step_<N>/`: Accelerate's `save_state` (model, optimizer, scheduler, RNG
state of every process) plus `recipe.yaml` and `trainer_state.json`. It is written to `checkpoints/.tmp-step_<N>/`
and renamed into place once every file is there, with `trainer_state.json` written last, so a process killed while
saving leaves at most a `.tmp-*` folder, which nothing ever resumes from (and the next run removes). A save that
fails for lack of space removes its `.tmp-*` folder and says, in one line, where and how much space it needed.
"""

import errno
import json
import logging
import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import yaml

from .outputs import foreign_entries, written_by_a_run

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
RECIPE_FILE = "recipe.yaml"
STEP_NAME = re.compile(r"step_(\d+)")

# Recipe keys that change what a training step computes: resuming with another value would silently train a
# different run. The others (max_steps, eval/save/logging steps, output and Hub settings, ...) may change on resume.
STEP_DEFINING_KEYS = (
    "encoder_name_or_path", "decoder_layers", "decoder_hidden_size", "decoder_attention_heads", "decoder_ffn_dim",
    "shared_decoder_layers", "share_group_embeddings", "target_vocab_size", "max_source_length", "max_target_length",
    "trainable_encoder_layers", "sharing",
    "shared_layers", "language_groups", "cross_stitch_init", "adapter_size", "sluice_subspaces",
    "sluice_orthogonality_weight", "loss_weighting",
    "dataset_name", "dataset_config", "source_lang", "target_langs", "column_mapping", "train_split",
    "max_train_samples", "language_temperature", "language_batches", "max_rows_per_language", "protect_placeholders",
    "streaming", "shuffle_buffer_size",
    "seed", "per_device_train_batch_size", "gradient_accumulation_steps", "group_by_length", "init_model",
    "train_languages", "test_split_percentage", "validation_split_percentage",
)
# Recipe keys that shape the learning-rate schedule a checkpoint's optimizer is following; refused on resume (the
# rates themselves and max_steps may change: optimization.py applies them).
SCHEDULE_KEYS = ("warmup_steps", "lr_scheduler_type")


class TiedEmbeddingsSavedOnce(logging.Filter):
    """Accelerate's save_state warns that it saved a shared tensor under one name only. For the embeddings that an
    `embedding_groups` group ties that is the intent (they are tied again on load, and a resume is exact:
    test_group_embeddings.py), so that warning is dropped; one about any other shared tensor still shows."""

    TIED = re.compile(r"(\[RANK \d+\] )?Removed shared tensor "
                      r"\{('decoders\.[\w-]+\.embed_tokens\.weight'(, )?)+\} while saving")

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.TIED.match(record.getMessage())


logging.getLogger("accelerate.utils.other").addFilter(TiedEmbeddingsSavedOnce())


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite losses, processes that do not form one group); the CLI prints it as one
    line, like bad input."""


def injected_delay(name: str) -> None:
    """Sleeps `MTL_TRANSLATE_TEST_<name>_SECONDS` seconds: lets the test suite kill a run at a chosen point."""
    seconds = float(os.environ.get(f"MTL_TRANSLATE_TEST_{name}_SECONDS", 0))
    if seconds:
        time.sleep(seconds)


def complete_checkpoints(output_dir) -> list[tuple[int, Path]]:
    """(step, folder) of every complete checkpoint, by step. Foreign names (`step_abc`, `step_5.bak`), files and
    folders without `trainer_state.json` (an empty `step_999`) are ignored, never resumed from, never deleted."""
    root = Path(output_dir, "checkpoints")
    found = []
    for path in root.iterdir() if root.is_dir() else ():
        match = STEP_NAME.fullmatch(path.name)
        if match and path.is_dir() and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(output_dir) -> Path | None:
    found = complete_checkpoints(output_dir)
    return found[-1][1] if found else None


def resolve_checkpoint(name: str, output_dir) -> Path:
    """`latest` or a folder -> a complete checkpoint folder, or a ValueError that says what exists."""
    if name == "latest":
        path = latest_checkpoint(output_dir)
        if path is None:
            raise ValueError(f"resume_from_checkpoint=latest but {Path(output_dir, 'checkpoints')} holds no complete "
                             "step_<N> checkpoint; start a fresh run (drop resume_from_checkpoint).")
        return path
    path = Path(name)
    if not (path / STATE_FILE).is_file():
        raise ValueError(f"resume_from_checkpoint={name} is not a complete checkpoint folder (no {STATE_FILE}); "
                         f"complete ones in {output_dir}: {[str(p) for _, p in complete_checkpoints(output_dir)]}.")
    return path


def save_checkpoint(accelerator, output_dir, step: int, state: dict, recipe, keep: int, best_step: int | None,
                    needed: int) -> Path:
    """Every process calls this (save_state writes each process's RNG state). Returns the checkpoint folder.
    `needed`: about the bytes it takes, for the message if the disk is full."""
    root = Path(output_dir, "checkpoints")
    tmp, final = root / f".tmp-step_{step}", root / f"step_{step}"
    previous = latest_checkpoint(output_dir)
    kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
    with space_checked(tmp, f"checkpoint {final}", needed, f"{kept}. Free some space (or lower save_total_limit), "
                                                           "then resume with resume_from_checkpoint: latest"):
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            recipe.save(tmp / RECIPE_FILE)
            injected_delay("SAVE")
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
    if accelerator.is_main_process:
        if final.exists():  # a run resumed from an earlier checkpoint passes this step again
            shutil.rmtree(final)
        os.replace(tmp, final)
        rotate_checkpoints(output_dir, keep, best_step)
    accelerator.wait_for_everyone()
    return final


def tensor_bytes(tree) -> int:
    """Bytes of the tensors in a (nested) state dict: about what saving it writes."""
    if torch.is_tensor(tree):
        return tree.numel() * tree.element_size()
    if isinstance(tree, dict):
        return sum(tensor_bytes(item) for item in tree.values())
    return sum(tensor_bytes(item) for item in tree) if isinstance(tree, (list, tuple)) else 0


def out_of_space(err: Exception, folder: Path, needed: int) -> bool:
    """A failed write that ran out of space: ENOSPC or EDQUOT, or safetensors' text for it. torch.save reports only
    a short write ("unexpected pos"), so a failure with less space free than the save needs counts too."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "No space left on device" in str(err) or shutil.disk_usage(folder).free < needed


@contextmanager
def space_checked(tmp: Path, what: str, needed: int, then: str):
    """A save into the folder `tmp`: if it fails, `tmp` is removed (whatever it replaces stays as it was), and a
    lack of space becomes one line (a TrainingError) naming `what`, the bytes `needed` and free, and `then`, instead
    of a library's traceback."""
    try:
        yield
    except Exception as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if not out_of_space(err, tmp.parent, needed):
            raise
        free = shutil.disk_usage(tmp.parent).free
        raise TrainingError(f"cannot save {what}: no space left on device (about {needed / 1e6:,.1f} MB needed, "
                            f"{free / 1e6:,.1f} MB free in {tmp.parent}); {then}.") from None


def rotate_checkpoints(output_dir, keep: int, best_step: int | None) -> None:
    """Keeps the last `keep` complete checkpoints plus the one of the best validation step."""
    found = complete_checkpoints(output_dir)
    for step, path in found[:-keep]:
        if step != best_step:
            shutil.rmtree(path)


def remove_unfinished_saves(output_dir) -> None:
    """`.tmp-*` folders are saves that a killed process never finished."""
    for path in Path(output_dir).glob("checkpoints/.tmp-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in Path(output_dir).glob(".tmp-best"):
        shutil.rmtree(path, ignore_errors=True)


def saved_recipe(checkpoint: Path) -> dict:
    """The recipe a checkpoint was written with (flat keys)."""
    path = checkpoint / RECIPE_FILE
    saved = yaml.safe_load(path.read_text()) if path.is_file() else None
    if saved is None:
        raise ValueError(f"{checkpoint} has no {RECIPE_FILE}: it was not written by this version of mtl-translate, "
                         "so a resume cannot be checked to be exact; start a fresh run.")
    return saved


def recipe_changes(saved: dict, now: dict, keys) -> dict[str, tuple]:
    """{key: (checkpoint's value, recipe's value)} of the `keys` that differ; a key the checkpoint lacks (written by
    an older version) counts as unchanged."""
    return {key: (saved[key], now.get(key)) for key in keys if key in saved and saved[key] != now.get(key)}


def describe(changes: dict[str, tuple]) -> str:
    return ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())


def check_resume_compatible(checkpoint: Path, recipe, num_processes: int) -> None:
    """A resume must compute the same steps as the run that wrote the checkpoint: same step-defining recipe keys,
    the same learning-rate schedule and the same number of processes (which multiplies the global batch)."""
    saved, now = saved_recipe(checkpoint), recipe.to_dict()
    changes = recipe_changes(saved, now, STEP_DEFINING_KEYS)
    if changes:
        raise ValueError(f"cannot resume from {checkpoint}: the recipe changes what a training step means "
                         f"({describe(changes)}). Put the checkpoint's values back, or start a fresh run in another "
                         "output_dir.")
    changes = recipe_changes(saved, now, SCHEDULE_KEYS)
    if changes:
        raise ValueError(f"cannot resume from {checkpoint}: the recipe changes the shape of the learning-rate schedule "
                         f"that the checkpoint's optimizer is following ({describe(changes)}). Put the checkpoint's "
                         "values back (a new learning_rate, encoder_learning_rate, weight_decay or max_steps is "
                         f"applied on resume), or start a new run from the trained model (init_model: "
                         f"{now['output_dir']}) in another output_dir.")
    saved_processes = json.loads((checkpoint / STATE_FILE).read_text()).get("num_processes", 1)
    if saved_processes != num_processes:
        raise ValueError(f"cannot resume from {checkpoint}: it was written by {saved_processes} process(es), this "
                         f"run has {num_processes}; the global batch (per_device_train_batch_size x processes) would "
                         f"change. Launch {saved_processes} process(es).")


def check_output_dir(output_dir, resume: bool, overwrite: bool) -> bool:
    """A fresh run never mixes with an old one: a non-empty `output_dir` (old tokenizers, old checkpoints that
    rotation and `latest` would pick up) is refused unless resuming or `overwrite_output_dir`, and that clears only a
    folder that holds nothing but what a run writes (outputs.py), never a user's files. Read-only, so that every
    process can check before any writes; True when the contents must be removed (`clear_folder`)."""
    path = Path(output_dir)
    entries = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    if not entries or resume:
        return False
    if not overwrite:
        raise ValueError(f"output_dir {output_dir} is not empty ({', '.join(entries[:5])}"
                         f"{', ...' if len(entries) > 5 else ''}). Pass --overwrite_output_dir true to replace its "
                         "contents, --resume_from_checkpoint latest to continue that run, or choose another output_dir.")
    foreign = foreign_entries(path)
    if foreign:
        raise ValueError(f"overwrite_output_dir: {output_dir} holds {', '.join(foreign[:5])}"
                         f"{', ...' if len(foreign) > 5 else ''}, which no mtl-translate run writes, so it is not a "
                         "run's folder to replace; nothing was removed. Move those out, or choose another output_dir.")
    return True


def clear_folder(path) -> None:
    """Removes what a run wrote (`check_output_dir` has refused a folder holding anything else)."""
    logger.warning("overwrite_output_dir: removing the previous run in %s", path)
    for entry in Path(path).iterdir():
        if written_by_a_run(entry):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def replace_folder_contents(tmp: Path, target: Path) -> None:
    """Moves every file of `tmp` into `target` with `os.replace` (atomic per file), weights last, then removes `tmp`.
    Between best models only `model.safetensors` differs (config and tokenizers are fixed for a run), so the best
    model in `target` is at every moment one complete model."""
    files = sorted((p for p in tmp.rglob("*") if p.is_file()), key=lambda p: p.name == "model.safetensors")
    for src in files:
        dst = target / src.relative_to(tmp)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    shutil.rmtree(tmp)
