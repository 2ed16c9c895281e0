"""`mtl-translate average-checkpoints`: the mean of the weights of a run's last checkpoints, as one model folder.

Averaging the last few checkpoints of a run (fairseq's `average_checkpoints.py`, Vaswani et al. 2017) smooths the
noise of the last optimizer steps at no training cost. The checkpoints are the run's own (`<run>/checkpoints/step_N/`,
written by `accelerator.save_state`, the same weight names as the model folder); the tokenizers, config and
generation settings come from the run's model folder, so the result loads and evaluates like any model.
"""

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from .checkpointing import complete_checkpoints
from .translate import Translator

WEIGHTS = "model.safetensors"


def checkpoints_to_average(model_dir: str, last: int) -> list[Path]:
    found = complete_checkpoints(model_dir)
    if last < 2:
        raise ValueError(f"--last must be >= 2 (averaging one checkpoint is that checkpoint), got {last}.")
    if len(found) < last:
        raise ValueError(f"{model_dir}/checkpoints holds {len(found)} complete checkpoint(s) "
                         f"({', '.join(p.name for _, p in found) or 'none'}), fewer than --last {last}: train with a "
                         "smaller save_steps and a save_total_limit >= the number to average.")
    return [path for _, path in found[-last:]]


def average_state_dicts(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean in float64 (no rounding drift), cast back to each weight's dtype; every checkpoint must
    hold the same weights with the same shapes."""
    total, first = None, None
    for path in paths:
        state = load_file(str(path / WEIGHTS))
        if total is None:
            first, total = path, {k: v.double() for k, v in state.items()}
            dtypes = {k: v.dtype for k, v in state.items()}
            continue
        if state.keys() != total.keys() or any(state[k].shape != total[k].shape for k in total):
            raise ValueError(f"{path / WEIGHTS} and {first / WEIGHTS} hold different weights: they are not "
                             "checkpoints of one run.")
        for k, v in state.items():
            total[k] += v.double()
    return {k: (v / len(paths)).to(dtypes[k]) for k, v in total.items()}


def average_checkpoints(model_dir: str, last: int, output_dir: str) -> Path:
    """Write `output_dir`: the run's model folder (config, tokenizers, recipe) with the mean of the weights of its
    last `last` checkpoints."""
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"output_dir {output_dir} is not empty; choose a new folder.")
    paths = checkpoints_to_average(model_dir, last)
    translator = Translator.from_pretrained(model_dir, device="cpu")
    averaged = average_state_dicts(paths)
    own = translator.model.state_dict()
    unknown = sorted(set(averaged) - set(own))
    if unknown:
        raise ValueError(f"{paths[0] / WEIGHTS} holds weights the model in {model_dir} lacks (e.g. {unknown[:3]}).")
    translator.model.load_state_dict({**own, **averaged})
    translator.save_pretrained(str(out))
    recipe = Path(model_dir, "recipe.yaml")
    if recipe.is_file():
        shutil.copy(recipe, out / "recipe.yaml")
    (out / "averaged_from.txt").write_text("\n".join(str(p) for p in paths) + "\n")
    return out
