"""`mtl-translate compare RECIPE.yaml`: the multi-task model against one single-task model per language.

Every model starts from the same encoder checkpoint and trains with the recipe's settings. Equal compute per
language means: each single-task model runs the same optimizer steps at the same batch size as the multi-task model,
on the rows that have its language, so it sees at least as many examples of that language (the multi-task model
shares each batch's rows between languages; in total the single-task models spend N times the encoder compute).
A multi-task recipe with `language_batches: true` sees exactly as many: B rows of every language per step.
All models are then scored on the same test rows (a seeded sample of the test split).

With `seeds`, every model is trained once per seed and the table gives mean ± std over seeds, so that a delta can
be told from seed noise: the delta of a language is taken per seed (multi-task minus single-task trained with the
same seed, hence on the same `max_rows_per_language` sample) before its mean and std.
"""

import copy
import hashlib
import json
import statistics
import time
from pathlib import Path

import yaml

from .configs import Recipe, key_defaults, load_recipe
from .conflict import conflict_summary
from .data.loading import load_splits, sample_rows
from .evaluation import evaluate_translator
from .outputs import SCORES_FILE, TRAIN_RESULTS_FILE  # in each run folder: its scores on the comparison's rows
# (`scores_of`), its training time (train.train_results)
from .translate import Translator


# Keys that do not change the trained model: a finished run that differs from the asked recipe only in these is reused.
NON_MODEL_KEYS = {"output_dir", "push_to_hub", "hub_model_id", "hub_private_repo", "logging_steps", "eval_steps",
                  "save_steps", "save_total_limit", "report_to", "resume_from_checkpoint", "overwrite_output_dir",
                  "log_gradient_conflict"}
METRICS = ("bleu", "chrf")  # the order of the (BLEU, chrF) pairs of `table_rows`


def recipe_changes(run_dir: Path, recipe: Recipe) -> dict[str, tuple]:
    """`{key: (value it was trained with, value asked)}` for the model-changing keys on which the run's saved
    `recipe.yaml` and `recipe` differ; a missing or unreadable recipe.yaml differs in every key."""
    try:
        saved = yaml.safe_load(Path(run_dir, "recipe.yaml").read_text())
    except (OSError, yaml.YAMLError):
        saved = None
    if not isinstance(saved, dict):
        return {"recipe.yaml": ("missing or unreadable", "present")}
    saved, asked = {**key_defaults(), **saved}, recipe.to_dict()  # a key newer than the run: it had the default
    return {key: (saved.get(key, "(absent)"), asked.get(key, "(absent)"))
            for key in sorted((saved.keys() | asked.keys()) - NON_MODEL_KEYS) if saved.get(key) != asked.get(key)}


def listed(changes: dict[str, tuple]) -> str:
    """`recipe_changes` as "key: old -> new; ..."."""
    return "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())


def single_task_recipe(recipe: Recipe, lang: str, output_dir: Path) -> Recipe:
    single = copy.deepcopy(recipe)
    single.data.target_langs = [lang]
    single.data.language_temperature, single.data.language_batches = 1.0, False  # one language: a plain batch
    single.model.sharing, single.model.loss_weighting, single.model.loss_weights = "hard", "static", {}
    single.model.shared_decoder_layers = 0  # one language: shared layers are its own (the same model, other names)
    single.model.shared_vocabularies, single.model.share_group_embeddings = [], False  # its own vocabulary
    single.data.max_rows_per_language = {k: n for k, n in recipe.data.max_rows_per_language.items() if k == lang}
    single.training.output_dir, single.training.push_to_hub = str(output_dir), False
    return single


def comparison_rows(recipe: Recipe) -> list[dict]:
    """The seeded test sample that training's own test evaluation uses, with every target language."""
    data = recipe.data
    rows = load_splits(data, data.target_langs, [data.test_split], recipe.training.seed)[data.test_split]
    return sample_rows(rows, data.max_test_samples, recipe.training.seed)


def run_comparison(recipe: Recipe, variants: dict[str, Recipe] | None = None, retrain: bool = False,
                   seeds: list[int] | None = None, baselines: list[str] | None = None) -> dict:
    """Train every model, score all on the same rows, report. A run whose folder has results from the same recipe
    (up to `NON_MODEL_KEYS`) is reused; one trained with another recipe is retrained, saying which keys differ.
    `seeds`: every model once per seed, in `<output_dir>/seed_<s>/`, and a table of mean ± std over seeds.
    `baselines`: other comparisons' output_dirs whose single-task models are used where they were trained with the
    same recipe (their `single-<lang>/`, per seed `seed_<s>/single-<lang>/`; the first that has one), read there,
    never written over."""
    if not recipe.data.test_split:
        raise ValueError("compare scores every model on the test split: set test_split (it is null).")
    if seeds is not None and (len(seeds) < 2 or len(set(seeds)) < len(seeds)):
        raise ValueError(f"seeds {seeds}: give at least 2 different seeds (a std needs two), e.g. --seeds 1,2,3; "
                         "for one run with another seed, set --seed instead.")
    for folder in baselines or []:
        if not Path(folder).is_dir():
            raise ValueError(f"--baselines {folder}: no such folder; give the output_dir of an earlier comparison")
    rows = comparison_rows(recipe)  # the recipe's seed draws them: every seed's models are scored on the same rows
    if seeds is None:
        return compare_once(recipe, variants or {}, retrain, rows, [Path(b) for b in baselines or []])
    root = Path(recipe.training.output_dir)
    reports = [compare_once(*with_seed(recipe, variants or {}, seed, root / f"seed_{seed}"), retrain, rows,
                            [Path(b, f"seed_{seed}") for b in baselines or []]) for seed in seeds]
    first = reports[0]
    report = {"seeds": seeds, "languages": first["languages"], "max_steps": first["max_steps"],
              "batch_size": first["batch_size"], "test_rows": first["test_rows"],
              "signature": next(iter(first["scores"].values()))["signature"],
              "train_seconds": {str(seed): r["train_seconds"] for seed, r in zip(seeds, reports)},
              "reused": {str(seed): r["reused"] for seed, r in zip(seeds, reports) if r["reused"]},
              "seconds_per_step": seed_step_times([r["seconds_per_step"] for r in reports]),
              "gradient_conflict": seed_conflicts([r["gradient_conflict"] for r in reports]),
              "table": seed_table([table_rows(r) for r in reports]), "output_dir": str(root)}
    write_seed_report(report, root)
    return report


def with_seed(recipe: Recipe, variants: dict[str, Recipe], seed: int, folder: Path) -> tuple:
    """Copies of the recipe and the variants with `seed` in place of theirs, their runs under `folder`."""
    recipe, variants = copy.deepcopy(recipe), copy.deepcopy(variants)
    for one in (recipe, *variants.values()):
        one.training.seed = seed
    recipe.training.output_dir = str(folder)
    return recipe, variants


def compare_once(recipe: Recipe, variants: dict[str, Recipe], retrain: bool, rows: list[dict],
                 baselines: list[Path] = ()) -> dict:
    """One model per variant and language, trained (or reused) under the recipe's output_dir and scored on `rows`;
    a single-task model not there yet is taken from the first of `baselines` that trained it with the same recipe."""
    from .train import run

    root = Path(recipe.training.output_dir)
    runs = {f"single-{lang}": single_task_recipe(recipe, lang, root / f"single-{lang}") for lang in recipe.data.target_langs}
    for name, variant in {"mtl": recipe, **variants}.items():
        runs[name] = copy.deepcopy(variant)
        runs[name].training.output_dir, runs[name].training.push_to_hub = str(root / name), False
    seconds, reused = {}, {}
    for name, run_recipe in runs.items():
        folder = Path(run_recipe.training.output_dir)
        if not retrain and name.startswith("single-") and not (folder / "eval_results.json").exists():
            others = [b / name for b in baselines if (b / name / "eval_results.json").exists()]
            same = [other for other in others if not recipe_changes(other, run_recipe)]
            if same:
                run_recipe.training.output_dir = reused[name] = str(same[0])  # scored and timed there
                continue
            for other in others:
                print(f"compare: training {name} here: {other} was trained with another recipe "
                      f"({listed(recipe_changes(other, run_recipe))})")
        if not retrain and (folder / "eval_results.json").exists():
            changes = recipe_changes(folder, run_recipe)
            if not changes:
                continue
            print(f"compare: retraining {name}: {folder} was trained with another recipe ({listed(changes)})")
        run_recipe.training.overwrite_output_dir = True  # the folder is this comparison's own
        start = time.monotonic()
        run(run_recipe)
        seconds[name] = round(time.monotonic() - start)
    scores = {name: scores_of(Path(run_recipe.training.output_dir), rows, recipe.data.source_lang,
                              recipe.training.per_device_eval_batch_size, write=name not in reused)
              for name, run_recipe in runs.items()}
    report = {"languages": recipe.data.target_langs, "max_steps": recipe.training.max_steps,
              "batch_size": recipe.training.per_device_train_batch_size, "test_rows": len(rows),
              "train_seconds": seconds, "scores": scores, "output_dir": str(root), "reused": reused,
              "seconds_per_step": {name: step_time(Path(run.training.output_dir)) for name, run in runs.items()}}
    conflicts = {name: conflict_summary(history(Path(run.training.output_dir)), recipe.data.target_langs)
                 for name, run in runs.items() if not name.startswith("single-")}
    report["gradient_conflict"] = {name: summary for name, summary in conflicts.items() if summary}
    write_report(report, root)
    return report


def scores_of(folder: Path, rows: list[dict], source_lang: str, batch_size: int, write: bool = True) -> dict:
    """The model's scores on `rows`: from its `compare_scores.json` when that holds them for the same rows, settings
    and model files (sizes and modification times), else scored now and written there (`write`: not in another
    comparison's folder). Adding a variant or a seed to a comparison then scores only the models it trains."""
    patterns = ("*.safetensors", "generation_config.json", "config.json")
    files = [path for pattern in patterns for path in folder.glob(pattern)]
    stamp = sorted([path.name, path.stat().st_size, path.stat().st_mtime_ns] for path in files)
    key = {"rows": hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest(),
           "source_lang": source_lang, "batch_size": batch_size, "model_files": stamp}
    cache = folder / SCORES_FILE
    try:
        saved = json.loads(cache.read_text())
        if stamp and saved["key"] == key:
            return saved["scores"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache or a damaged one: score again
    scores = evaluate_translator(Translator.from_pretrained(str(folder)), rows, source_lang, batch_size=batch_size)
    if stamp and write:
        cache.write_text(json.dumps({"key": key, "scores": scores}, ensure_ascii=False))
    return scores


def step_time(folder: Path) -> float | None:
    """The run's mean seconds per optimizer step from its train_results.json; None for a run without one (trained
    before train_results.json existed) or with an unreadable one."""
    try:
        return float(json.loads((folder / TRAIN_RESULTS_FILE).read_text())["seconds_per_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def history(folder: Path) -> list[dict]:
    """The run's logged steps (trainer_state.json); [] when it has none readable."""
    try:
        return list(json.loads((folder / "trainer_state.json").read_text())["history"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def seed_conflicts(per_seed: list[dict]) -> dict:
    """Each seed's {run: conflict_summary} -> {run: per pair the mean cosine's spread over the seeds that logged it
    and the mean share of negative steps, per language the norm's spread}."""
    out = {}
    for name in dict.fromkeys(name for conflicts in per_seed for name in conflicts):
        logged = [conflicts[name] for conflicts in per_seed if name in conflicts]
        pairs = list(dict.fromkeys(pair for one in logged for pair in one["cosine"]))
        out[name] = {
            "cosine": {pair: spread([one["cosine"][pair] for one in logged if pair in one["cosine"]], 3)
                       for pair in pairs},
            "negative": {pair: round(statistics.mean(one["negative"][pair] for one in logged
                                                     if pair in one["negative"]), 3) for pair in pairs},
            "norm": {lang: spread([one["norm"][lang] for one in logged if lang in one["norm"]], 4)
                     for lang in dict.fromkeys(lang for one in logged for lang in one["norm"])},
            "seeds": len(logged)}
    return out


def seed_step_times(per_seed: list[dict]) -> dict:
    """{run: mean seconds per step over the seeds whose run has one, or None}."""
    out = {}
    for name in per_seed[0]:
        known = [times[name] for times in per_seed if times.get(name) is not None]
        out[name] = round(statistics.mean(known), 4) if known else None
    return out


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
    """comparison.json, comparison.md (table with deltas) and comparison.png (grouped bars of BLEU); with more than
    `WIDE_RUNS` multi-task runs, comparison.md has a row per run and comparison_delta.png draws their deltas."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "comparison.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    rows = table_rows(report)
    multi = [k for k in rows[0] if k not in ("lang", "n", "single")]
    if len(multi) > WIDE_RUNS:
        runs = seed_table([rows])  # one seed: no std
        tables = run_seed_tables(runs, multi, report["seconds_per_step"])
        plot_deltas(runs, multi, root / "comparison_delta.png")
    else:
        head = ["lang", "rows", "single BLEU", *(f"{m} BLEU (Δ)" for m in multi), "single chrF",
                *(f"{m} chrF (Δ)" for m in multi)]
        body = []
        for r in rows:
            cells = [r["lang"], str(r["n"]), f"{r['single'][0]:.2f}"]
            cells += [f"{r[m][0]:.2f} ({r[m][0] - r['single'][0]:+.2f})" for m in multi]
            cells += [f"{r['single'][1]:.2f}"] + [f"{r[m][1]:.2f} ({r[m][1] - r['single'][1]:+.2f})" for m in multi]
            body.append(cells)
        tables = [markdown(head, body)]
    tables += conflict_tables(seed_conflicts([report.get("gradient_conflict", {})]))
    signature = next(iter(report["scores"].values()))["signature"]
    worse = [r["lang"] for r in rows[:-1] if r[multi[0]][0] < r["single"][0]]
    verdict = (f"Negative transfer (multi-task below single-task BLEU) for: {', '.join(worse)}." if worse
               else "The multi-task model matches or beats the single-task models on every language.")
    if len(multi) > 1:
        verdict = f"{multi[0]}: {verdict}"
    text = [
        "# Multi-task vs single-task\n",
        f"{report['max_steps']} optimizer steps of batch {report['batch_size']} for every model; each single-task "
        f"model trains on the rows that have its language. Test: the same {report['test_rows']} rows for all models "
        f"(a language is scored on its rows with a reference).\n",
        *tables,
        verdict + "\n",
        f"BLEU signature: `{signature}`\n",
        f"Training wall time (s): {json.dumps(report['train_seconds'])}\n" if report["train_seconds"] else "",
        reused_note(list(report.get("reused", {}).values())),
    ]
    (root / "comparison.md").write_text("\n".join(t for t in text if t))
    plot(rows, ["single", *multi], root / "comparison.png")


def reused_note(folders: list[str]) -> str:
    """The line naming the single-task models taken from another comparison (`baselines`); "" when none."""
    return ("Single-task models of another comparison, trained with the same recipe (`--baselines`): "
            + ", ".join(f"`{folder}`" for folder in folders) + "\n") if folders else ""


def spread(values: list[float], digits: int = 2) -> dict:
    """Mean and sample standard deviation (n - 1; None for one seed) of per-seed values, and the values, in seed
    order, rounded to `digits`."""
    return {"mean": round(statistics.mean(values), digits),
            "std": round(statistics.stdev(values), digits) if len(values) > 1 else None,
            "per_seed": [round(v, digits) for v in values]}


def mean_std(value: dict, sign: str = "", digits: int = 2) -> str:
    """`spread`'s mean ± std ("12.30 ± 0.40"; one seed: "12.30"); sign "+": signed, for deltas."""
    return f"{value['mean']:{sign}.{digits}f}" + (f" ± {value['std']:.{digits}f}" if value["std"] is not None else "")


def seed_table(tables: list[list[dict]]) -> list[dict]:
    """`table_rows` of every seed -> one row per language (then the mean): each run's BLEU and chrF spread over
    seeds, and under `delta` each multi-task run minus the single-task model, paired by seed."""
    out = []
    for rows in zip(*tables):  # one language, every seed
        runs = [key for key in rows[0] if key not in ("lang", "n")]
        row = {"lang": rows[0]["lang"], "n": rows[0]["n"]}
        row.update({name: {m: spread([r[name][i] for r in rows]) for i, m in enumerate(METRICS)} for name in runs})
        row["delta"] = {name: {m: spread([r[name][i] - r["single"][i] for r in rows]) for i, m in enumerate(METRICS)}
                        for name in runs if name != "single"}
        out.append(row)
    return out


def write_seed_report(report: dict, root: Path) -> None:
    """comparison.json (the table with per-seed values), comparison.md (mean ± std, paired deltas), comparison.png
    (mean BLEU with std bars), comparison_delta.png (Δ BLEU of every run per language); each seed's own report stays
    in its `seed_<s>/` folder. Up to `WIDE_RUNS` multi-task runs, one table with a column per run; with more (a
    methods study), a row per run: its scores, then its deltas."""
    (root / "comparison.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    rows, n = report["table"], len(report["seeds"])
    multi = list(rows[0]["delta"])
    tables = wide_seed_table(rows, multi) if len(multi) <= WIDE_RUNS else run_seed_tables(rows, multi,
                                                                                         report["seconds_per_step"])
    tables += conflict_tables(report.get("gradient_conflict", {}))
    worse = [(r["lang"], r["delta"][multi[0]]["bleu"]) for r in rows[:-1] if r["delta"][multi[0]]["bleu"]["mean"] < 0]
    verdict = f"The multi-task model matches or beats the single-task models on every language (mean over {n} seeds)."
    if worse:
        verdict = "Negative transfer (mean Δ BLEU below 0) for: " + "; ".join(
            f"{lang} ({d['mean']:+.2f} ± {d['std']:.2f}, below in {sum(v < 0 for v in d['per_seed'])} of {n} seeds)"
            for lang, d in worse) + "."
    if len(multi) > 1:
        verdict = f"{multi[0]}: {verdict}"
    text = [
        f"# Multi-task vs single-task, {n} seeds ({', '.join(map(str, report['seeds']))})\n",
        f"Every model trained once per seed (`seed_<s>/`, the seed replacing the recipe's): {report['max_steps']} "
        f"optimizer steps of batch {report['batch_size']}; each single-task model trains on the rows that have its "
        f"language. Test: the same {report['test_rows']} rows for every model and seed. Each cell: mean ± sample "
        f"std over the {n} seeds; Δ: multi-task minus single-task of the same seed, mean ± std of those {n} "
        "differences.\n",
        *tables,
        verdict + "\n",
        f"BLEU signature: `{report['signature']}`\n",
        reused_note([folder for one in report.get("reused", {}).values() for folder in one.values()]),
    ]
    (root / "comparison.md").write_text("\n".join(t for t in text if t))
    runs = ["single", *multi]
    plot([{"lang": r["lang"], **{name: (r[name]["bleu"]["mean"],) for name in runs}} for r in rows], runs,
         root / "comparison.png", errors={name: [r[name]["bleu"]["std"] for r in rows] for name in runs})
    plot_deltas(rows, multi, root / "comparison_delta.png")


WIDE_RUNS = 3  # multi-task runs up to which comparison.md has one column per run


def markdown(head: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      *("| " + " | ".join(cells) + " |" for cells in rows)]) + "\n"


def wide_seed_table(rows: list[dict], multi: list[str]) -> list[str]:
    """One row per language; for each metric the single-task model, every run, every run's Δ."""
    head = ["lang", "rows"]
    for metric in ("BLEU", "chrF"):
        head += [f"single {metric}", *(f"{m} {metric}" for m in multi), *(f"Δ {m} {metric}" for m in multi)]
    body = []
    for r in rows:
        cells = [r["lang"], str(r["n"])]
        for metric in METRICS:
            cells += [mean_std(r[name][metric]) for name in ("single", *multi)]
            cells += [mean_std(r["delta"][m][metric], "+") for m in multi]
        body.append(cells)
    return [markdown(head, body)]


def run_seed_tables(rows: list[dict], multi: list[str], seconds: dict) -> list[str]:
    """Scores: one row per model (single-task first), BLEU and chrF per language, and its seconds per optimizer step
    (mean over the seeds whose run saved one; × = relative to the first multi-task run). Deltas: one row per
    multi-task run, Δ BLEU and Δ chrF per language, and the languages whose mean Δ BLEU is below 0."""
    langs = [r["lang"] for r in rows]
    base = seconds.get(multi[0])
    head = ["model", *(f"BLEU {lang}" for lang in langs), *(f"chrF {lang}" for lang in langs), "s/step", "× step"]
    body = []
    for name in ("single", *multi):
        cells = [name] + [mean_std(r[name][m]) for m in METRICS for r in rows]
        if name == "single":  # one model per language: its step is a one-language step
            cells += ["–", "–"]
        else:
            step = seconds.get(name)
            cells += [f"{step:.3f}" if step is not None else "–",
                      f"{step / base:.2f}×" if step is not None and base else "–"]
        body.append(cells)
    scores = markdown(head, body)
    head = ["run", *(f"Δ BLEU {lang}" for lang in langs), *(f"Δ chrF {lang}" for lang in langs), "below single"]
    body = []
    for name in multi:
        cells = [name] + [mean_std(r["delta"][name][m], "+") for m in METRICS for r in rows]
        below = [r["lang"] for r in rows[:-1] if r["delta"][name]["bleu"]["mean"] < 0]
        body.append(cells + [", ".join(below) or "none"])
    return [scores, markdown(head, body)]


def conflict_tables(conflicts: dict) -> list[str]:
    """A row per run that logged its gradients (`log_gradient_conflict`): per pair of languages the cosine at the
    shared encoder output, mean over training (± std over seeds), and how often it was below 0; each language's
    gradient norm. [] when no run logged them."""
    if not conflicts:
        return []
    pairs = list(dict.fromkeys(pair for one in conflicts.values() for pair in one["cosine"]))
    langs = list(dict.fromkeys(lang for one in conflicts.values() for lang in one["norm"]))
    head = ["run", *(f"cos {pair}" for pair in pairs), *(f"norm {lang}" for lang in langs)]
    body = [[name, *(f"{mean_std(one['cosine'][pair], '+', 3)} ({one['negative'][pair]:.0%} < 0)"
                     if pair in one["cosine"] else "–" for pair in pairs),
             *(mean_std(one["norm"][lang], digits=4) if lang in one["norm"] else "–" for lang in langs)]
            for name, one in conflicts.items()]
    note = ("Gradients at the shared encoder output (`log_gradient_conflict`): per pair of languages the cosine "
            "between their loss gradients, averaged over the logged steps (mean ± std over the seeds; in brackets "
            "the share of logged steps where it was below 0, the two pulling the encoder apart), then each "
            "language's gradient norm.\n")
    return [note, markdown(head, body)]


def plot_deltas(rows: list[dict], runs: list[str], path: Path) -> None:
    """One panel per language (then the mean): each run's mean Δ BLEU vs single-task, with its std over seeds."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(rows), sharey=True, figsize=(2.2 * len(rows) + 1.2, 1.8 + 0.22 * len(runs)))
    ys = range(len(runs))
    for ax, r in zip(axes, rows):
        means = [r["delta"][name]["bleu"]["mean"] for name in runs]
        stds = [r["delta"][name]["bleu"]["std"] for name in runs]
        ax.barh(ys, means, xerr=None if None in stds else stds, capsize=2,
                color=["tab:green" if m >= 0 else "tab:red" for m in means])
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(r["lang"])
        ax.set_xlabel("Δ BLEU")
    axes[0].set_yticks(ys, runs)
    axes[0].invert_yaxis()  # the runs top to bottom in the order given
    seeds = len(rows[0]["delta"][runs[0]]["bleu"]["per_seed"])
    fig.suptitle("multi-task minus single-task BLEU" + (f", mean ± std over {seeds} seeds" if seeds > 1 else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot(rows: list[dict], runs: list[str], path: Path, errors: dict[str, list[float]] | None = None) -> None:
    """Grouped bars of BLEU (`rows[i][run][0]`) per language; `errors`: {run: std per row}, drawn as error bars."""
    plt = pyplot()
    width = 0.8 / len(runs)
    many = len(runs) > 4  # labels turned upright and the legend moved beside the bars, off them
    fig, ax = plt.subplots(figsize=(1.6 + (0.8 + 0.15 * len(runs)) * len(rows) + 1.6 * many, 3.6))
    for i, name in enumerate(runs):
        xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(rows))]
        bars = ax.bar(xs, [r[name][0] for r in rows], width, label=name, yerr=errors[name] if errors else None,
                      capsize=2)
        ax.bar_label(bars, fmt="%.1f", fontsize=6 if many else 7, rotation=90 if many else 0, padding=2)
    ax.set_xticks(range(len(rows)), [r["lang"] for r in rows])
    ax.set_ylabel("test BLEU")
    ax.set_title("multi-task vs single-task (same steps, same test rows)" + (", mean ± std" if errors else ""))
    ax.legend(fontsize=8, **({"loc": "upper left", "bbox_to_anchor": (1.0, 1.0)} if many else {}))
    ax.margins(y=0.15)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError('the comparison\'s figures need matplotlib: pip install matplotlib') from None
    return plt


def variant_recipes(paths: list[str], overrides: list[str]) -> dict[str, Recipe]:
    """`config_uncertainty.yaml` -> {"uncertainty": its recipe with the same CLI overrides}."""
    return {Path(p).stem.removeprefix("config_"): load_recipe(p, overrides) for p in paths}
