"""`mtl-translate info`: what a model folder holds, without loading its weights.

The sizes come from the config: the model is built on the `meta` device (shapes, no memory, no weights read), so
that a multi-gigabyte folder answers at once. Only the sharing mode's mixing weights are read (cross-stitch and sluice
α: a few numbers per block), since what a language owns depends on them. The recipe and the test scores are the files training writes next to
the model; a folder without them (saved from Python, or downloaded without them) still answers.
"""

import json
import os

import torch
import yaml
from safetensors import safe_open

from .evaluation import format_results
from .modeling_mtl import MTLTranslationModel
from .tokenization_mtl import load_config, local_folder

SHARING_KEYS = {"soft": ["soft_sharing_weight"], "partial": ["shared_layers", "language_groups"],
                "cross_stitch": ["cross_stitch_init"], "adapters": ["adapter_size"],
                "sluice": ["sluice_subspaces", "sluice_orthogonality_weight"]}
GENERATION_KEYS = ("num_beams", "max_new_tokens", "length_penalty", "no_repeat_ngram_size", "repetition_penalty",
                   "per_language")


def model_info(name_or_path: str) -> dict:
    folder = local_folder(name_or_path)
    if folder is None:
        raise ValueError(f"{name_or_path} is no local folder: `info` reads a model folder (download a Hub model "
                         f"first, e.g. `huggingface-cli download {name_or_path} --local-dir DIR`).")
    config = load_config(folder)
    with torch.device("meta"):
        model = MTLTranslationModel(config)
    read_mixing_weights(model, folder)
    heads = {lang: sum(p.numel() for p in model.decoders[lang].parameters()) for lang in config.languages}
    owned = {lang: sum(p.numel() for name, p in model.named_parameters()
                       if any(name.startswith(prefix) for prefix in model.sharing_mode.owned_prefixes(model, lang)))
             for lang in config.languages}
    shared_decoder = sum(p.numel() for p in model.shared_decoder.parameters())
    total = model.num_parameters()  # a tied embedding (embedding_groups) once; `heads` count it in each member
    encoder = sum(p.numel() for name, p in model.named_parameters()
                  if not name.startswith(("decoders.", "shared_decoder.")))
    generation = read_object(folder, "generation_config.json") or {}
    return {
        "model": folder,
        "encoder": config.encoder_name_or_path,
        "source_lang": config.source_lang,
        "languages": list(config.languages),
        "parameters": {"total": total, "encoder": encoder, "heads": heads,
                       "shared_decoder": shared_decoder, "encoder_owned_by_language": owned},
        "sharing": {"mode": config.sharing, **{k: getattr(config, k) for k in SHARING_KEYS.get(config.sharing, [])}},
        "loss_weighting": {"method": config.loss_weighting, "loss_weights": config.loss_weights},
        "vocab_sizes": {"source": config.encoder.vocab_size, **config.target_vocab_sizes},
        "embedding_groups": config.embedding_groups or [],
        "max_source_length": getattr(config, "max_source_length", None),
        "max_target_positions": config.max_target_positions,
        "protect_placeholders": getattr(config, "protect_placeholders", False),
        "generation": {k: generation[k] for k in GENERATION_KEYS if generation.get(k) is not None},
        "recipe": read_object(folder, "recipe.yaml"),
        "scores": read_object(folder, "eval_results.json"),
    }


def read_mixing_weights(model: MTLTranslationModel, folder: str) -> None:
    """The sharing mode's mixing weights from the folder's weights into the `meta` model (a copy another language
    reads through α is not its language's own); nothing for modes without any."""
    prefixes = model.sharing_mode.mixing_prefixes()
    if prefixes:
        with safe_open(os.path.join(folder, "model.safetensors"), framework="pt") as f:
            mixing = {name: f.get_tensor(name) for name in f.keys() if name.startswith(prefixes)}
        model.load_state_dict(mixing, strict=False, assign=True)


def read_object(folder: str, name: str) -> dict | None:
    """The JSON or YAML object (by `name`'s ending) a folder holds, None when absent; a damaged one is an error
    naming it."""
    path, kind = os.path.join(folder, name), "YAML" if name.endswith(".yaml") else "JSON"
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) if kind == "YAML" else json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{path} is not valid {kind} ({' '.join(str(err).split())}): the file is truncated or "
                         f"damaged.") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}, not an object of keys and values.")
    return data


def format_info(info: dict) -> str:
    """The terminal view: one line per fact, the scores as `evaluate` prints them, then the recipe."""
    params, langs = info["parameters"], info["languages"]
    per_language = ", ".join(f"{lang} {params['heads'][lang]:,}" + (
        f" (+{params['encoder_owned_by_language'][lang]:,} own encoder)" if params['encoder_owned_by_language'][lang]
        else "") for lang in langs)
    sharing = info["sharing"]
    lines = [
        f"model: {info['model']} (encoder {info['encoder'] or 'unknown'})",
        f"languages: {info['source_lang']} -> {', '.join(langs)}",
        f"parameters: {params['total']:,} total; encoder {params['encoder']:,}; "
        + (f"shared decoder layers {params['shared_decoder']:,}; " if params["shared_decoder"] else "")
        + f"heads: {per_language}",
        f"sharing: {sharing['mode']}" + "".join(f", {k}={v}" for k, v in sharing.items() if k != "mode"),
        f"loss weighting: {info['loss_weighting']['method']}, weights {info['loss_weighting']['loss_weights']}",
        "vocabulary: " + ", ".join(f"{k} {v:,}" for k, v in info["vocab_sizes"].items())
        + "".join(f"; {' and '.join(group)} share one vocabulary and embedding" for group in info["embedding_groups"]),
        f"max lengths: source {info['max_source_length'] or 'not recorded (128)'} tokens, target "
        f"{info['max_target_positions']} tokens",
        f"protect_placeholders: {info['protect_placeholders']}",
        "generation: " + (", ".join(f"{k}={v}" for k, v in info["generation"].items()) or "defaults"),
    ]
    scores = info["scores"]
    if scores and scores.get("bleu"):
        where = ", ".join(f"{k} {scores[k]}" for k in ("dataset", "split") if scores.get(k))
        lines += [f"scores ({where or 'eval_results.json'}):", format_results(scores)]
    else:
        lines.append("scores: none (no eval_results.json)")
    if info["recipe"]:
        lines += ["recipe:", yaml.safe_dump(info["recipe"], sort_keys=False, allow_unicode=True).rstrip()]
    else:
        lines.append("recipe: none (no recipe.yaml)")
    return "\n".join(lines)
