"""Model cards and Hub uploads for trained mtl-translate model folders.

The card is built with huggingface_hub's own ``ModelCard``/``ModelCardData``/``EvalResult`` so the
metadata (languages, base model, ``model-index``) is exactly what the Hub parses, and the
README.md stays useful to a human reader: what the model is, how good it is, how to use it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

logger = logging.getLogger(__name__)

# Training leftovers (checkpoints, optimizer state, tensorboard runs) are large and useless for inference.
UPLOAD_IGNORE_PATTERNS = ["checkpoint*", "checkpoints/*", "*.pt", "runs/*"]
TAGS = ["translation", "multi-target", "mtl-translate"]
NOT_EVALUATED = "## Evaluation\n\nThis model has not been evaluated yet (no eval_results.json in the folder).\n"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _looks_like_hub_id(value: str | None) -> bool:
    """A Hub id is ``name`` or ``owner/name`` that is not a folder on this machine.

    Local paths must never land in ``base_model``/``datasets``: the Hub would show broken links.
    """
    if not value or os.path.exists(os.path.expanduser(value)):
        return False
    return bool(_HUB_ID.match(value)) and ".." not in value and not value.endswith((".", "-"))


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _recipe_value(recipe: dict[str, Any], key: str) -> Any:
    """Recipes are "flat-ish": look at the top level first, then one section down."""
    if key in recipe:
        return recipe[key]
    for section in recipe.values():
        if isinstance(section, dict) and key in section:
            return section[key]
    return None


def _load_folder(model_dir: Path) -> tuple[dict, dict | None, dict]:
    config = _read_json(model_dir / "config.json")
    if config is None:
        raise ValueError(
            f"{model_dir} has no config.json: it is not a trained mtl-translate model folder "
            "(point at the output directory written by `mtl-translate train`)."
        )
    recipe_path = model_dir / "recipe.yaml"
    recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8")) if recipe_path.is_file() else None
    return config, _read_json(model_dir / "eval_results.json"), recipe if isinstance(recipe, dict) else {}


def _language_tag(code: str) -> str:
    """Hub language metadata wants ISO 639 codes: ``pt_BR`` -> ``pt`` (the body keeps the full code)."""
    return re.split(r"[-_]", code)[0].lower()


def _fmt(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "–"


def _mean(values: list[Any]) -> float | None:
    nums = [v for v in values if isinstance(v, (int, float))]
    return sum(nums) / len(nums) if nums else None


def _eval_section(evals: dict[str, Any], source: str, targets: list[str]) -> str:
    bleu, chrf, rows = evals.get("bleu", {}), evals.get("chrf", {}), evals.get("n", {})
    lines = ["| Language | BLEU | chrF | Rows |", "|---|---:|---:|---:|"]
    for lang in targets:
        row = (f"{source} → {lang}", _fmt(bleu.get(lang)), _fmt(chrf.get(lang)), str(rows.get(lang, "–")))
        lines.append("| " + " | ".join(row) + " |")
    mean_bleu = evals.get("mean_bleu", _mean([bleu.get(t) for t in targets]))
    total = sum(int(rows[t]) for t in targets if t in rows)
    mean_chrf = _mean([chrf.get(t) for t in targets])
    lines.append(f"| **Macro mean** | **{_fmt(mean_bleu)}** | **{_fmt(mean_chrf)}** | {total} |")
    signatures = "\n".join(
        f"{name}: {evals[key]}" for name, key in (("BLEU", "signature"), ("chrF", "chrf_signature")) if evals.get(key)
    )
    where = f"the `{evals.get('split', 'test')}` split of `{evals.get('dataset', 'the training dataset')}`"
    text = f"## Evaluation\n\nScored with sacrebleu on {where}.\n\n" + "\n".join(lines) + "\n"
    return text + (f"\nsacrebleu signatures:\n\n```\n{signatures}\n```\n" if signatures else "")


def _eval_results(evals: dict, source: str, targets: list[str], dataset_config: str | None) -> list[EvalResult]:
    """One EvalResult per (language, metric); the language pair goes in ``metric_config``."""
    dataset = str(evals.get("dataset") or "unknown")
    dataset_id = dataset if _looks_like_hub_id(dataset) else Path(dataset).name  # never publish a local path
    results = []
    for lang in targets:
        for metric, label in (("bleu", "BLEU"), ("chrf", "chrF")):
            value = evals.get(metric, {}).get(lang)
            if isinstance(value, (int, float)):
                results.append(EvalResult(
                    task_type="translation", task_name="Translation",
                    dataset_type=dataset_id, dataset_name=dataset_id, dataset_config=dataset_config,
                    dataset_split=evals.get("split"), metric_type=metric, metric_value=float(value),
                    metric_name=f"{label} ({source}-{lang})", metric_config=f"{source}-{lang}",
                ))
    return results


def build_model_card(model_dir: str | os.PathLike, repo_id: str | None = None) -> ModelCard:
    """Build the README.md card (metadata + body) for a trained model folder."""
    model_dir = Path(model_dir)
    config, evals, recipe = _load_folder(model_dir)
    source, targets = config.get("source_lang", "en"), list(config.get("languages", []))
    encoder, sharing = config.get("encoder_name_or_path", "unknown encoder"), config.get("sharing", "hard")
    repo_id = repo_id or _recipe_value(recipe, "hub_model_id") or str(model_dir)
    name = repo_id.rstrip("/").split("/")[-1]
    dataset = _recipe_value(recipe, "dataset_name") or (evals or {}).get("dataset")
    eval_results = _eval_results(evals, source, targets, _recipe_value(recipe, "dataset_config")) if evals else []

    data = ModelCardData(
        language=list(dict.fromkeys(_language_tag(c) for c in [source, *targets])),
        license=_recipe_value(recipe, "license"),
        library_name="mtl-translate",
        tags=TAGS,
        pipeline_tag="translation",
        base_model=encoder if _looks_like_hub_id(encoder) else None,
        datasets=[dataset] if _looks_like_hub_id(dataset) else None,
        model_name=name if eval_results else None,
        eval_results=eval_results or None,
    )
    shown = targets[:2]  # keep the usage example short
    example_out = ", ".join(f'"{t}": [...]' for t in shown)
    heads = f"{len(targets)} decoder head{'s' * (len(targets) != 1)}"
    local = "" if _looks_like_hub_id(encoder) else " (a local checkpoint, not on the Hub)"
    usage = (
        "```python\nimport mtl_translate  # registers the model with AutoModel\n"
        "from mtl_translate import Translator\n"
        f'translator = Translator.from_pretrained("{repo_id}")\n'
        f'translator.translate(["Open file"], langs={json.dumps(shown)})'
        f"  # -> {{{example_out}}}\n```\n\n"
        "From the command line:\n\n"
        f"```bash\nmtl-translate translate --model {repo_id} --langs {','.join(shown)}\n```\n"
    )
    body = [
        f"# {name}\n",
        f"A multi-target translation model built with mtl-translate: one shared pretrained encoder, "
        f"`{encoder}`{local}, feeding {heads}, one per target language, with `{sharing}` parameter sharing "
        f"and `{config.get('loss_weighting', 'static')}` loss weighting. "
        f"It translates {source} → {', '.join(targets)}, encoding the source once for all targets.\n",
        _eval_section(evals, source, targets) if evals else NOT_EVALUATED,
        "## Usage\n",
        usage,
    ]
    if dataset and not _looks_like_hub_id(dataset):
        body.append(f"Trained on a local dataset: `{dataset}`.\n")
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))


def save_model_card(model_dir: str | os.PathLike, repo_id: str | None = None) -> Path:
    """Write ``model_dir/README.md`` (what the Hub renders as the model page) and return its path."""
    path = Path(model_dir) / "README.md"
    build_model_card(model_dir, repo_id).save(path)
    return path


def push_to_hub(
    model_dir: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload mtl-translate model",
) -> str:
    """Write the card, create the repo if needed and upload the folder; returns the repo URL.

    Training checkpoints/optimizer state are skipped. The token is handed to ``HfApi`` only and never logged.
    """
    model_dir = Path(model_dir)
    save_model_card(model_dir, repo_id)
    files = [p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file()]
    n_files = len(list(filter_repo_objects(files, ignore_patterns=UPLOAD_IGNORE_PATTERNS + DEFAULT_IGNORE_PATTERNS)))
    logger.info("Uploading %d files from %s to %s", n_files, model_dir, repo_id)
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=repo_id, folder_path=model_dir, commit_message=commit_message,
                          ignore_patterns=UPLOAD_IGNORE_PATTERNS)
    except (HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled) as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if isinstance(err, LocalTokenNotFoundError) or status in (401, 403):
            hint = ("you are not authenticated or your token cannot write there: "
                    "run `hf auth login`, or pass --token / set HF_TOKEN to a write token")
        else:
            hint = "check the repo id, your network connection and that your token has write access"
        raise RuntimeError(
            f"Could not push {model_dir} to the Hub repo {repo_id!r}: {hint}. ({type(err).__name__}: {err})"
        ) from err
    logger.info("Uploaded %s to %s", repo_id, url)
    return str(url)
