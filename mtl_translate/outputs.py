"""Where commands write: only into what is theirs, never over what they read.

Two rules, used by every command that writes files. A folder is cleared only when everything in it was written by
a run of ours, recognised by the names a run writes (and, for names other tools use too, by their content): a wrong
`output_dir` must never delete a user's files. And an output that is one of the command's inputs, or a folder
holding one, is refused before anything is opened: `open(F, "w")` empties F before it is read.
"""

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

TRACKER_PROJECT = "mtl-translate"  # the project name of the run's trackers: TensorBoard logs to output_dir/<it>/
SCORES_FILE = "compare_scores.json"  # `compare` caches a run's scores on the comparison's rows in its folder
TRAIN_RESULTS_FILE = "train_results.json"  # a run's training time (train.train_results); `compare` reports it
# What a training run (and the commands that write model folders: add-language, average-checkpoints, compare, push's
# card) puts at the top of its folder: Translator.save_pretrained, the run's recipe, state, scores, card and plots,
# checkpoints, the best model's temporary folder, and the trackers Accelerate points at output_dir (TensorBoard's
# project folder, Aim's repository).
RUN_FILES = {"model.safetensors", "model.safetensors.index.json", "generation_config.json", "recipe.yaml",
             "trainer_state.json", "eval_results.json", "cross_stitch_alpha.png", "sluice_alpha.png",  # mixing_card's
             "averaged_from.txt", SCORES_FILE, TRAIN_RESULTS_FILE}
RUN_FOLDERS = {"tokenizers", "plots", ".tmp-best", TRACKER_PROJECT, ".aim"}
WEIGHT_SHARD = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")
CHECKPOINT = re.compile(r"(\.tmp-)?step_\d+")  # checkpointing.py's names, finished or not


def written_by_a_run(entry: Path) -> bool:
    """Whether a run of ours wrote `entry` (a top-level entry of an output folder). `config.json` and `README.md`
    are common names, so they count only with our model type and our card's `library_name`; `checkpoints/` only
    when it holds nothing but checkpoint folders (a `step_5.bak` may be a user's copy)."""
    name = entry.name
    if name in RUN_FILES or WEIGHT_SHARD.fullmatch(name):
        return entry.is_file()
    if name in RUN_FOLDERS:
        return entry.is_dir()
    if name == "config.json":
        return entry.is_file() and _json_field(entry, "model_type") == "mtl_translation"  # MTLConfig.model_type
    if name == "README.md":
        return entry.is_file() and "library_name: mtl-translate" in entry.read_text(encoding="utf-8", errors="replace")
    if name == "checkpoints":
        return entry.is_dir() and all(p.is_dir() and CHECKPOINT.fullmatch(p.name) for p in entry.iterdir())
    return False


def _json_field(path: Path, key: str):
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return value.get(key) if isinstance(value, dict) else None


def foreign_entries(folder) -> list[str]:
    """The entries of `folder` that no run of ours writes, sorted: a folder with any is not ours to clear."""
    return sorted(p.name for p in Path(folder).iterdir() if not written_by_a_run(p))


def refuse_output_over_input(output, inputs: Mapping[str, str | os.PathLike | None], what: str, fix: str) -> None:
    """A ValueError when `output` is one of `inputs` ({name: path}) or a folder holding one. Paths are compared
    resolved (`./a`, `a`, a symlink) and, when both exist, with os.path.samefile (hard links); an input that is not
    on this machine (a Hub id) is skipped."""
    if not output:
        return
    out = Path(output).expanduser()
    for name, path in inputs.items():
        source = Path(path).expanduser() if path else None
        if source is None or not source.exists():
            continue
        same = os.path.samefile(out, source) if out.exists() else out.resolve() == source.resolve()
        if same or out.resolve() in source.resolve().parents:
            relation = "is also" if same else "holds"
            raise ValueError(f"{what} {output} {relation} {name} {path}, which this command reads: writing there "
                             f"would destroy it. {fix}.")
