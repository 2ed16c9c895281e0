"""Figures for reports and model cards. matplotlib (a dependency) is imported inside each function, so that commands
that draw nothing do not pay for its import; should it be missing, the ImportError is the caller's to handle."""

import json
import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

PLOTS_DIR = "plots"  # inside a model folder; the card links the files there and they are uploaded with it
RUN_PLOTS = {  # file name -> what it shows (the card's alt text), in the card's order
    "training_loss.png": "training loss per language over steps",
    "validation_bleu.png": "validation BLEU per language over steps",
    "test_scores.png": "final BLEU and chrF per language",
}


def plot_cross_stitch(alpha: np.ndarray, labels: list[str], path: str | Path, title: str = "cross-stitch α") -> None:
    """α (blocks, R, R) as one heatmap per block (row: the copy, or copy's subspace, that reads; column: what it
    reads; `labels` name them), so a card shows at a glance where in the encoder the languages share (off-diagonal)
    or keep apart (diagonal)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    blocks, n = alpha.shape[:2]
    fig = Figure(figsize=(0.6 + (1.0 + 0.45 * n) * blocks, 1.2 + 0.45 * n))
    axes = fig.subplots(1, blocks, squeeze=False)[0]
    for b, ax in enumerate(axes):
        image = ax.imshow(alpha[b], cmap="viridis", vmin=min(0.0, alpha.min()), vmax=max(1.0, alpha.max()))
        for (i, j), value in np.ndenumerate(alpha[b]):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="w" if value < 0.5 else "k")
        ax.set_xticks(range(n), labels, fontsize=8)
        ax.set_yticks(range(n), labels if b == 0 else [], fontsize=8)
        ax.set_title(f"block {b + 1}", fontsize=9)
    fig.colorbar(image, ax=list(axes), shrink=0.8)
    fig.suptitle(f"{title}: row reads column", fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def _line_plot(series: dict[str, list[tuple[int, float]]], ylabel: str, title: str, path: str | Path) -> None:
    """One line per label over training steps ("mean" dashed black, so the languages stand out), y from 0."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.subplots()
    for label, points in series.items():
        style = {"color": "k", "linestyle": "--"} if label == "mean" else {}
        ax.plot(*zip(*points), marker="o" if len(points) < 20 else None, markersize=3, label=label, **style)
    ax.set(xlabel="step", ylabel=ylabel, title=title)
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def _series(entries: list[dict], keys: dict[str, str]) -> dict[str, list[tuple[int, float]]]:
    """{label: [(step, entry[key])]} for each label whose key some entry holds; labels without points are left out."""
    series = {label: [(e["step"], e[key]) for e in entries if key in e] for label, key in keys.items()}
    return {label: points for label, points in series.items() if points}


def plot_training_loss(history: list[dict], langs: list[str], path: str | Path) -> None:
    """Each head's own loss (the combined one, a weighted sum, would dwarf them): shows which language learns
    slowest and whether one diverges while the others still fall."""
    series = _series(history, {lang: f"train/{lang}" for lang in langs})
    _line_plot(series, "training loss (cross-entropy)", "Training loss per language", path)


def plot_validation_bleu(history: list[dict], langs: list[str], path: str | Path) -> None:
    """BLEU of every language at each validation: where each one peaks (the best model is the best mean)."""
    scores = [{"step": e["step"], "mean": e["validation"]["mean_bleu"], **e["validation"]["bleu"]}
              for e in history if "validation" in e]
    _line_plot(_series(scores, {"mean": "mean", **{lang: lang for lang in langs}}), "BLEU",
               "Validation BLEU per language", path)


def plot_final_scores(eval_results: dict, langs: list[str], path: str | Path) -> None:
    """BLEU and chrF bars side by side per language, values written on the bars, as the card's table shows them."""
    from matplotlib.figure import Figure

    langs = [lang for lang in langs if lang in eval_results["bleu"]]
    x = np.arange(len(langs))
    fig = Figure(figsize=(2.0 + 0.8 * len(langs), 3.6))
    ax = fig.subplots()
    for offset, metric, label in ((-0.2, "bleu", "BLEU"), (0.2, "chrf", "chrF")):
        bars = ax.bar(x + offset, [eval_results[metric].get(lang, np.nan) for lang in langs], 0.4, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(x, langs)
    ax.set(xlabel="target language", ylabel="score (0-100)",
           title=f"Scores per language ({eval_results.get('split', 'test')} split)")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def _load(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err}): fix or remove it to plot the run.") from None


def write_run_plots(output_dir: str | Path) -> list[Path]:
    """The run's plots (`RUN_PLOTS`) from trainer_state.json and eval_results.json into `output_dir/plots/`; a plot
    whose data is absent (no validation split, no test split) is skipped with a log line, and a folder that is not a
    training run's output (no trainer_state.json: a hand-made or converted model) gets none. Returns the files
    written, in `RUN_PLOTS` order."""
    output_dir = Path(output_dir)
    state = _load(output_dir / "trainer_state.json")
    if state is None:
        logger.info("%s has no trainer_state.json (not a training run's output): no plots", output_dir)
        return []
    history = state.get("history", [])
    results = _load(output_dir / "eval_results.json") or {}
    langs = (_load(output_dir / "config.json") or {}).get("languages") or sorted(results.get("bleu", {}))
    plots = {
        "training_loss.png": (plot_training_loss, history, any(f"train/{lang}" in e for e in history for lang in langs),
                              "no training loss in trainer_state.json"),
        "validation_bleu.png": (plot_validation_bleu, history, any("validation" in e for e in history),
                                "no validation in trainer_state.json (no validation_split)"),
        "test_scores.png": (plot_final_scores, results, bool(results.get("bleu")),
                            "no scores in eval_results.json (no test_split)"),
    }
    written = []
    for name, (plot, data, present, missing) in plots.items():
        if not present:
            logger.info("%s: %s, not plotted", name, missing)
            continue
        (output_dir / PLOTS_DIR).mkdir(exist_ok=True)
        plot(data, langs, output_dir / PLOTS_DIR / name)
        written.append(output_dir / PLOTS_DIR / name)
    return written
