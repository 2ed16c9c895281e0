"""Recipe dataclasses and the one parser that merges a YAML recipe with `--key value` CLI overrides.

Keys are flat (alignment-handbook style): each belongs to exactly one of the dataclasses below. Unknown keys,
in the YAML or on the command line, raise with the list of valid ones. A recipe may start from another one with
`base: config.yaml` and change only a few keys (the per-method recipes under `recipes/quickstart/` do).
"""

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class ModelArguments:
    encoder_name_or_path: str = "sentence-transformers/all-MiniLM-L6-v2"  # Hub id or local folder, or "minilm-packaged"
    decoder_layers: int = 3
    decoder_hidden_size: int = 256
    decoder_attention_heads: int = 4
    decoder_ffn_dim: int = 1024
    decoder_dropout: float = 0.1
    target_vocab_size: int = 8000  # SentencePiece vocabulary per target language
    max_source_length: int = 64
    max_target_length: int = 64
    label_smoothing: float = 0.1
    trainable_encoder_layers: int | None = None  # None: train all; 0: freeze the encoder; k: train the top k layers
    sharing: str = "hard"  # hard | soft | partial
    soft_sharing_weight: float = 0.01  # soft: weight of the L2 penalty between the encoder copies
    shared_layers: int | None = None  # partial: bottom encoder blocks shared by all languages
    language_groups: dict[str, list[str]] = field(default_factory=dict)  # partial: {group: [langs]} above them
    loss_weighting: str = "static"  # static | uncertainty | dwa | gradnorm | pcgrad
    loss_weights: dict[str, float] = field(default_factory=dict)  # static: per language, default 1.0
    dwa_temperature: float = 2.0
    dwa_window: int = 50  # dwa: training steps (forward calls) per loss-averaging window
    gradnorm_alpha: float = 1.5


@dataclass
class DataArguments:
    dataset_name: str = "data/gettext"  # local file/folder or Hub dataset id
    dataset_config: str | None = None
    source_lang: str = "en"
    target_langs: list[str] = field(default_factory=lambda: ["de", "fr", "es", "ru"])
    column_mapping: dict[str, str] = field(default_factory=dict)
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str | None = "test"
    build_gettext: bool = False  # build `dataset_name` from gettext catalogs when it does not exist yet
    gettext_test_domains: list[str] | None = None
    gettext_max_source_words: int | None = None
    max_train_samples: int | None = None
    max_eval_samples: int | None = None  # validation rows scored at each evaluation (a seeded sample)
    max_test_samples: int | None = None  # test rows scored at the end (a seeded sample)
    language_temperature: float = 1.0  # row sampling so that language l gets a share ∝ n_l^(1/T); 1: natural


@dataclass
class TrainingArguments:
    output_dir: str = "outputs/model"
    seed: int = 42
    learning_rate: float = 5e-4
    encoder_learning_rate: float | None = None  # default: learning_rate
    weight_decay: float = 0.01
    lr_scheduler_type: str = "inverse_sqrt"
    warmup_steps: int = 500
    max_steps: int = 10000
    max_train_minutes: float | None = None  # stop training early once this much wall time has passed
    per_device_train_batch_size: int = 64
    per_device_eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"  # no | fp16 | bf16
    gradient_checkpointing: bool = False  # recompute encoder blocks and decoder heads in backward: less memory
    group_by_length: bool = True
    logging_steps: int = 50
    eval_steps: int = 1000
    save_steps: int = 1000
    save_total_limit: int = 2
    resume_from_checkpoint: str | None = None  # a checkpoint folder, or "latest"
    report_to: list[str] = field(default_factory=list)  # accelerate trackers: tensorboard, wandb, ...
    num_beams: int = 1
    no_repeat_ngram_size: int = 0  # saved in the generation config: outputs never repeat an n-gram of this size
    eval_max_new_tokens: int = 64
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private_repo: bool = False
    hub_token: str | None = None


RECIPE_CLASSES = (ModelArguments, DataArguments, TrainingArguments)


@dataclass
class Recipe:
    model: ModelArguments
    data: DataArguments
    training: TrainingArguments

    def to_dict(self) -> dict:
        flat = {}
        for part in (self.model, self.data, self.training):
            flat.update(dataclasses.asdict(part))
        flat.pop("hub_token", None)  # never written to disk
        return flat

    def save(self, path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))


def field_types() -> dict[str, tuple[type, object]]:
    """Every recipe key -> (its dataclass, its type annotation)."""
    out = {}
    for cls in RECIPE_CLASSES:
        hints = typing.get_type_hints(cls)
        out.update({f.name: (cls, hints[f.name]) for f in dataclasses.fields(cls)})
    return out


def coerce(key: str, value, annotation):
    """Check (and for CLI strings, convert) a value against a field's annotation."""
    args = typing.get_args(annotation)
    optional = typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args
    if value is None and optional:
        return None
    base = next(a for a in args if a is not type(None)) if optional else annotation
    origin = typing.get_origin(base) or base
    if origin is list and isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if origin is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            value = float(value)  # YAML reads `1e-4` (no dot) as a string
        except ValueError:
            pass
    if not isinstance(value, origin) or (origin is int and isinstance(value, bool)):
        raise ValueError(f"recipe key {key!r} must be {base}, got {value!r}.")
    return value


def parse_cli_value(text: str):
    """`--key value`: YAML syntax, so `3`, `1e-4`, `true`, `null`, `[de, fr]`, `{de: 2.0}` all work."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def read_recipe_file(path) -> dict:
    """A YAML recipe as a dict; `base: other.yaml` (relative to this file) is read first and overridden by this one."""
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ValueError(f"recipe file {path} does not exist.") from None
    except yaml.YAMLError as err:
        raise ValueError(f"recipe file {path} is not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise ValueError(f"recipe file {path} must be a mapping of key: value, got {type(values).__name__}.")
    base = values.pop("base", None)
    return {**read_recipe_file(Path(path).parent / base), **values} if base else values


def load_recipe(path: str | None = None, overrides: list[str] | None = None) -> Recipe:
    """Merge a YAML recipe and `--key value` / `--key=value` overrides (CLI wins) into the three dataclasses."""
    values = read_recipe_file(path) if path is not None else {}
    args = list(overrides or [])
    while args:
        flag = args.pop(0)
        if not flag.startswith("--"):
            raise ValueError(f"expected a --key, got {flag!r}.")
        key, _, text = flag[2:].partition("=")
        if not _:
            if not args:
                raise ValueError(f"{flag} needs a value.")
            text = args.pop(0)
        values[key.replace("-", "_")] = parse_cli_value(text)
    types_ = field_types()
    unknown = sorted(set(values) - set(types_))
    if unknown:
        source = f"recipe {path}" if path else "arguments"
        raise ValueError(f"unknown key(s) {unknown} in {source}. Valid keys: {', '.join(sorted(types_))}.")
    parts = {cls: {} for cls in RECIPE_CLASSES}
    for key, value in values.items():
        cls, annotation = types_[key]
        parts[cls][key] = coerce(key, value, annotation)
    return Recipe(*(cls(**parts[cls]) for cls in RECIPE_CLASSES))
