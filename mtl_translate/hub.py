"""Model cards and Hub uploads for trained mtl-translate model folders.

The card is built with huggingface_hub's own ``ModelCard``/``ModelCardData``/``EvalResult`` so the
metadata (languages, base model, ``model-index``) is exactly what the Hub parses, and the
README.md stays useful to a human reader: what the model is, how good it is, how to use it.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
from pathlib import Path, PureWindowsPath
from typing import Any

import yaml
from huggingface_hub import CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import LocalTokenNotFoundError
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

from .mixing_card import mixing_section
from .plots import PLOTS_DIR, RUN_PLOTS, write_run_plots

logger = logging.getLogger(__name__)

# Training leftovers (checkpoints, optimizer/RNG state, tracker logs that accelerate writes to
# output_dir/<project>/) are large, useless for inference, and pickles or logs of local paths.
UPLOAD_IGNORE_PATTERNS = ["checkpoint*", "checkpoints/*", "*.pt", "*.pth", "*.bin", "*.pkl", "*.ckpt", "runs/*",
                          "mtl-translate/*", "*tfevents*"]
# Small configs whose uploaded copy gets local paths replaced (token vocabularies such as tokenizer.json are left
# alone: a token like "/s" is not a path).
SCRUBBED_FILES = ["*config.json", "eval_results.json", "*.yaml", "*.yml"]
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


def _public(value: Any) -> Any:
    """An absolute local path -> its last component (``/home/me/data/ui`` -> ``ui``); anything else unchanged.

    Published files must not show the machine's folders (user names, layout); the base name still says what it was.
    """
    if isinstance(value, str) and re.match(r"(~|/|\\\\|[A-Za-z]:[\\/])", value):
        return PureWindowsPath(value).name or value  # splits on / and \
    return value


def _scrub(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {key: _scrub(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_scrub(value) for value in obj]
    return _public(obj)


def _read(path: Path) -> Any:
    """A JSON or YAML file's content (None when absent); a broken one is named, not a parser traceback."""
    if not path.is_file():
        return None
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        return (json.loads if kind == "JSON" else yaml.safe_load)(path.read_text(encoding="utf-8"))
    except (ValueError, yaml.YAMLError) as err:
        raise ValueError(f"{path} is not valid {kind} ({' '.join(str(err).split())}): fix or remove it.") from None


def _recipe_value(recipe: dict[str, Any], key: str) -> Any:
    """Recipes are "flat-ish": look at the top level first, then one section down."""
    if key in recipe:
        return recipe[key]
    for section in recipe.values():
        if isinstance(section, dict) and key in section:
            return section[key]
    return None


def _load_folder(model_dir: Path) -> tuple[dict, dict | None, dict]:
    config = _read(model_dir / "config.json")
    if config is None:
        raise ValueError(
            f"{model_dir} has no config.json: it is not a trained mtl-translate model folder "
            "(point at the output directory written by `mtl-translate train`)."
        )
    recipe = _read(model_dir / "recipe.yaml")
    return config, _read(model_dir / "eval_results.json"), recipe if isinstance(recipe, dict) else {}


def public_model_name(name_or_path: str) -> str:
    """A model's name for text that others read and commit (a catalog's translator comments): a Hub id as given; a
    local folder by the Hub id its recipe pushes to (`hub_model_id`), else by its folder's name, never by its path
    (which shows a user's folders and means nothing on another machine)."""
    folder = Path(os.path.expanduser(str(name_or_path)))
    if not folder.is_dir():
        return str(name_or_path)
    recipe = _read(folder / "recipe.yaml")
    return _recipe_value(recipe if isinstance(recipe, dict) else {}, "hub_model_id") or folder.resolve().name


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
    by_signature = {}  # languages scored with different BLEU tokenizers (zh, ja-mecab, ...) get one line each
    for lang, signature in (evals.get("signatures") or {}).items():
        by_signature.setdefault(signature, []).append(lang)
    if len(by_signature) > 1:
        signatures = [f"BLEU ({', '.join(langs)}): {signature}" for signature, langs in by_signature.items()]
    else:
        signatures = [f"BLEU: {evals['signature']}"] if evals.get("signature") else []
    signatures = "\n".join(signatures + ([f"chrF: {evals['chrf_signature']}"] if evals.get("chrf_signature") else []))
    dataset, held = _public(evals.get("dataset", "the training dataset")), evals.get("held_out")
    where = (f"the `{evals.get('split', 'test')}` split of `{dataset}`" if not held else
             f"{held['test_split_percentage']:g}% of the rows of `{dataset}`, a file without splits, held out from "
             f"training by a hash of their source text with seed {held['seed']}")
    text = f"## Evaluation\n\nScored with sacrebleu on {where}.\n\n" + "\n".join(lines) + "\n"
    return text + (f"\nsacrebleu signatures:\n\n```\n{signatures}\n```\n" if signatures else "")


def _plots_section(model_dir: Path) -> list[str]:
    """Links to the run's plots that `save_model_card` wrote into `plots/` (they are uploaded with the card)."""
    links = [f"![{alt}]({PLOTS_DIR}/{name})" for name, alt in RUN_PLOTS.items()
             if (model_dir / PLOTS_DIR / name).is_file()]
    return ["## Plots\n", "\n\n".join(links) + "\n"] if links else []


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
    repo_id = repo_id or _recipe_value(recipe, "hub_model_id") or _public(str(model_dir))
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
    if config.get("shared_decoder_layers"):
        heads += (f" (the bottom {config['shared_decoder_layers']} of their {config.get('decoder_layers')} layers "
                  "shared by every language)")
    for group in config.get("embedding_groups") or []:
        heads += f"; {' and '.join(group)} share one vocabulary and one embedding matrix"
    local = "" if _looks_like_hub_id(encoder) else " (a local checkpoint, not on the Hub)"
    usage = (
        "```python\nimport mtl_translate  # registers the model with AutoModel\n"
        "from mtl_translate import Translator\n"
        f'translator = Translator.from_pretrained("{repo_id}")\n'
        f'translator.translate(["Open file"], langs={json.dumps(shown)})'
        f"  # -> {{{example_out}}}\n```\n\n"
        "With transformers' pipeline API:\n\n"
        f'```python\nimport mtl_translate  # registers the task\nfrom transformers import pipeline\npipe = pipeline("multi-target-translation", model="{repo_id}")\n'
        'pipe("Open file")  # -> {lang: text} for every language\n```\n\n'
        "From the command line:\n\n"
        f"```bash\nmtl-translate translate --model {repo_id} --langs {','.join(shown)}\n```\n"
    )
    body = [
        f"# {name}\n",
        f"A multi-target translation model built with mtl-translate: one shared pretrained encoder, "
        f"`{_public(encoder)}`{local}, feeding {heads}, one per target language, with `{sharing}` parameter sharing "
        f"and `{config.get('loss_weighting', 'static')}` loss weighting. "
        f"It translates {source} → {', '.join(targets)}, encoding the source once for all targets.\n",
        _eval_section(evals, source, targets) if evals else NOT_EVALUATED,
        *_plots_section(model_dir),
        *mixing_section(model_dir, config),
        "## Usage\n",
        usage,
    ]
    if dataset and not _looks_like_hub_id(dataset):
        body.append(f"Trained on a local dataset: `{_public(dataset)}`.\n")
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))


def save_model_card(model_dir: str | os.PathLike, repo_id: str | None = None) -> Path:
    """Write the run's plots and ``model_dir/README.md`` (what the Hub renders as the model page, plots embedded);
    return the card's path. Without matplotlib the card has no plots."""
    try:
        write_run_plots(model_dir)
    except ImportError:
        logger.info("matplotlib is not installed: the model card has no training plots")
    path = Path(model_dir) / "README.md"
    build_model_card(model_dir, repo_id).save(path)
    return path


def upload_operations(model_dir: str | os.PathLike) -> list[CommitOperationAdd]:
    """What `push_to_hub` uploads: every file but training leftovers (`UPLOAD_IGNORE_PATTERNS`: checkpoints, tracker
    logs, and pickles, so weights go out as safetensors only). Configs and the recipe go out with local paths reduced
    to base names; the local files, used to resume and reproduce, stay as they are."""
    model_dir = Path(model_dir)
    files = [p.relative_to(model_dir).as_posix() for p in sorted(model_dir.rglob("*")) if p.is_file()]
    operations, scrubbed = [], []
    for name in filter_repo_objects(files, ignore_patterns=UPLOAD_IGNORE_PATTERNS + DEFAULT_IGNORE_PATTERNS):
        content = model_dir / name
        if any(fnmatch.fnmatch(name, pattern) for pattern in SCRUBBED_FILES):
            data = _read(content)
            clean = _scrub(data)
            if clean != data:
                scrubbed.append(name)
                content = (json.dumps(clean, indent=2, ensure_ascii=False) + "\n" if name.endswith(".json") else
                           yaml.safe_dump(clean, sort_keys=False, allow_unicode=True)).encode("utf-8")
        operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=content))
    if scrubbed:
        logger.info("Uploading %s with local paths replaced by their base names", ", ".join(scrubbed))
    return operations


def push_to_hub(
    model_dir: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload mtl-translate model",
) -> str:
    """Write the card, create the repo if needed and upload `upload_operations` in one commit; returns the repo URL.

    Any failure is one ValueError line (the CLI prints it) that says what to do; the model folder stays as it is.
    The token is handed to ``HfApi`` only and never logged.
    """
    model_dir = Path(model_dir)
    save_model_card(model_dir, repo_id)
    operations = upload_operations(model_dir)
    logger.info("Uploading %d files from %s to %s", len(operations), model_dir, repo_id)
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.create_commit(repo_id, operations, commit_message=commit_message, repo_type="model")
    except Exception as err:  # HTTP status, auth, offline mode, or a network error of the HTTP client underneath
        status = getattr(getattr(err, "response", None), "status_code", None)
        if isinstance(err, LocalTokenNotFoundError) or status in (401, 403):
            hint = ("you are not authenticated or your token cannot write there: "
                    "run `hf auth login`, or pass --token / set HF_TOKEN to a write token")
        else:
            hint = "check the repo id, your network connection and that your token has write access"
        detail = " ".join(str(err).split())
        if token:
            detail = detail.replace(token, "***")
        raise ValueError(
            f"could not push {model_dir} to the Hub repo {repo_id!r}: {hint} ({type(err).__name__}: {detail}). "
            f"The model folder is intact: retry with `mtl-translate push --model {model_dir} --repo-id {repo_id}`."
        ) from err
    logger.info("Uploaded %s to %s", repo_id, url)
    return str(url)
