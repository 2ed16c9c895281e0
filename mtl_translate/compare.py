"""`mtl-translate compare RECIPE.yaml`: the multi-task model against one single-task model per language.

Every model starts from the same encoder checkpoint and trains with the recipe's settings. Equal compute per
language means: each single-task model runs the same optimizer steps at the same batch size as the multi-task model,
on the rows that have its language, so it sees at least as many examples of that language (the multi-task model
shares each batch's rows between languages; in total the single-task models spend N times the encoder compute).
All models are then scored on the same test rows (a seeded sample of the test split).
"""

import copy
import json
import time
from pathlib import Path

import yaml

from .configs import Recipe, load_recipe
from .data.loading import load_multitarget_dataset, sample_rows
from .evaluation import evaluate_translator
from .translate import Translator


# Keys that do not change the trained model: a finished run that differs from the asked recipe only in these is reused.
NON_MODEL_KEYS = {"output_dir", "push_to_hub", "hub_model_id", "hub_private_repo", "logging_steps", "eval_steps",
                  "save_steps", "save_total_limit", "report_to", "resume_from_checkpoint", "overwrite_output_dir"}


def recipe_changes(run_dir: Path, recipe: Recipe) -> dict[str, tuple]:
    """`{key: (value it was trained with, value asked)}` for the model-changing keys on which the run's saved
    `recipe.yaml` and `recipe` differ; a missing or unreadable recipe.yaml differs in every key."""
    try:
        saved = yaml.safe_load(Path(run_dir, "recipe.yaml").read_text())
    except (OSError, yaml.YAMLError):
        saved = None
    if not isinstance(saved, dict):
        return {"recipe.yaml": ("missing or unreadable", "present")}
    asked = recipe.to_dict()
    return {key: (saved.get(key, "(absent)"), asked.get(key, "(absent)"))
            for key in sorted((saved.keys() | asked.keys()) - NON_MODEL_KEYS) if saved.get(key) != asked.get(key)}


def single_task_recipe(recipe: Recipe, lang: str, output_dir: Path) -> Recipe:
    single = copy.deepcopy(recipe)
    single.data.target_langs = [lang]
    single.data.language_temperature = 1.0
    single.model.sharing, single.model.loss_weighting, single.model.loss_weights = "hard", "static", {}
    single.training.output_dir, single.training.push_to_hub = str(output_dir), False
    return single


def comparison_rows(recipe: Recipe) -> list[dict]:
    """The seeded test sample that training's own test evaluation uses, with every target language."""
    data = recipe.data
    rows = load_multitarget_dataset(data.dataset_name, data.source_lang, data.target_langs, split=data.test_split,
                                    dataset_config=data.dataset_config, column_mapping=data.column_mapping or None)
    return sample_rows(rows, data.max_test_samples, recipe.training.seed)


def run_comparison(recipe: Recipe, variants: dict[str, Recipe] | None = None, retrain: bool = False) -> dict:
    """Train every model, score all on the same rows, report. A run whose folder has results from the same recipe
    (up to `NON_MODEL_KEYS`) is reused; one trained with another recipe is retrained, saying which keys differ."""
    from .train import run

    if not recipe.data.test_split:
        raise ValueError("compare scores every model on the test split: set test_split (it is null).")
    root = Path(recipe.training.output_dir)
    runs = {f"single-{lang}": single_task_recipe(recipe, lang, root / f"single-{lang}") for lang in recipe.data.target_langs}
    for name, variant in {"mtl": recipe, **(variants or {})}.items():
        runs[name] = copy.deepcopy(variant)
        runs[name].training.output_dir, runs[name].training.push_to_hub = str(root / name), False
    seconds = {}
    for name, run_recipe in runs.items():
        folder = Path(run_recipe.training.output_dir)
        if not retrain and (folder / "eval_results.json").exists():
            changes = recipe_changes(folder, run_recipe)
            if not changes:
                continue
            print(f"compare: retraining {name}: {folder} was trained with another recipe ("
                  + "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items()) + ")")
        run_recipe.training.overwrite_output_dir = True  # the folder is this comparison's own
        start = time.monotonic()
        run(run_recipe)
        seconds[name] = round(time.monotonic() - start)
    rows = comparison_rows(recipe)
    scores = {}
    for name, run_recipe in runs.items():
        translator = Translator.from_pretrained(run_recipe.training.output_dir)
        scores[name] = evaluate_translator(translator, rows, recipe.data.source_lang,
                                           batch_size=recipe.training.per_device_eval_batch_size)
    report = {"languages": recipe.data.target_langs, "max_steps": recipe.training.max_steps,
              "batch_size": recipe.training.per_device_train_batch_size, "test_rows": len(rows),
              "train_seconds": seconds, "scores": scores, "output_dir": str(root)}
    write_report(report, root)
    return report


def table_rows(report: dict) -> list[dict]:
    """One dict per language (then the mean): BLEU and chrF of the single-task model and of each multi-task run."""
    scores, langs = report["scores"], report["languages"]
    multi = [name for name in scores if not name.startswith("single-")]
    out = []
    for lang in langs:
        single = scores[f"single-{lang}"]
        out.append({"lang": lang, "n": single["n"][lang], "single": (single["bleu"][lang], single["chrf"][lang]),
                    **{name: (scores[name]["bleu"][lang], scores[name]["chrf"][lang]) for name in multi}})
    mean = {key: tuple(round(sum(r[key][i] for r in out) / len(out), 2) for i in (0, 1))
            for key in ["single", *multi]}
    out.append({"lang": "mean", "n": sum(r["n"] for r in out), **mean})
    return out


def write_report(report: dict, root: Path) -> None:
    """comparison.json, comparison.md (table with deltas) and comparison.png (grouped bars of BLEU)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "comparison.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    rows = table_rows(report)
    multi = [k for k in rows[0] if k not in ("lang", "n", "single")]
    head = ["lang", "rows", "single BLEU", *(f"{m} BLEU (Δ)" for m in multi), "single chrF",
            *(f"{m} chrF (Δ)" for m in multi)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["lang"], str(r["n"]), f"{r['single'][0]:.2f}"]
        cells += [f"{r[m][0]:.2f} ({r[m][0] - r['single'][0]:+.2f})" for m in multi]
        cells += [f"{r['single'][1]:.2f}"] + [f"{r[m][1]:.2f} ({r[m][1] - r['single'][1]:+.2f})" for m in multi]
        lines.append("| " + " | ".join(cells) + " |")
    signature = next(iter(report["scores"].values()))["signature"]
    worse = [r["lang"] for r in rows[:-1] if r[multi[0]][0] < r["single"][0]]
    verdict = (f"Negative transfer (multi-task below single-task BLEU) for: {', '.join(worse)}." if worse
               else "The multi-task model matches or beats the single-task models on every language.")
    text = [
        "# Multi-task vs single-task\n",
        f"{report['max_steps']} optimizer steps of batch {report['batch_size']} for every model; each single-task "
        f"model trains on the rows that have its language. Test: the same {report['test_rows']} rows for all models "
        f"(a language is scored on its rows with a reference).\n",
        "\n".join(lines) + "\n",
        verdict + "\n",
        f"BLEU signature: `{signature}`\n",
        f"Training wall time (s): {json.dumps(report['train_seconds'])}\n" if report["train_seconds"] else "",
    ]
    (root / "comparison.md").write_text("\n".join(t for t in text if t))
    plot(rows, ["single", *multi], root / "comparison.png")


def plot(rows: list[dict], runs: list[str], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError('comparison.png needs matplotlib: pip install "mtl-translate[compare]"') from None
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(rows), 3.6))
    for i, name in enumerate(runs):
        xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(rows))]
        bars = ax.bar(xs, [r[name][0] for r in rows], width, label=name)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(rows)), [r["lang"] for r in rows])
    ax.set_ylabel("test BLEU")
    ax.set_title("multi-task vs single-task (same steps, same test rows)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def variant_recipes(paths: list[str], overrides: list[str]) -> dict[str, Recipe]:
    """`config_uncertainty.yaml` -> {"uncertainty": its recipe with the same CLI overrides}."""
    return {Path(p).stem.removeprefix("config_"): load_recipe(p, overrides) for p in paths}
