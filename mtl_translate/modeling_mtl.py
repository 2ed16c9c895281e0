"""Shared pretrained encoder + one decoder head per target language, as a transformers `PreTrainedModel`."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForTextEncoding, GenerationConfig, PreTrainedModel
from transformers import initialization as init
from transformers.models.auto.modeling_auto import MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES
from transformers.utils import ModelOutput

from .configuration_mtl import MTLConfig
from .decoder import DecoderHead, decoder_layers
from .generation import Counts, Masks, Pieces, byte_piece_offset, check_generation_settings, counted_pieces, decode
from .placeholders import MASK_TOKENS
from .losses import LossWeighting, build_loss_weighting
from .objective import StepObjective
from .sharing import build_sharing
from .stacked import stacked_heads, trim


def encoder_class(config):
    """T5-style checkpoints need their encoder-only class; BERT-style ones are already encoders."""
    return AutoModelForTextEncoding if config.model_type in MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES else AutoModel


@dataclass
class MTLOutput(ModelOutput):
    """`loss`: this pass's part of the step's objective (objective.py; without a `StepObjective`: the weighted sum of
    the batch's per-language mean losses, plus the sharing penalty); `language_losses`: unweighted mean token
    loss per language of this batch; `language_loss_sums` / `language_token_counts`: their token-loss sums and target
    token counts, what the step's objective is built from; `sharing_penalty`: the unweighted sharing penalty of this
    pass (soft: between the copies' weights; sluice: orthogonality of this batch's subspace activations);
    `encoder_states` (only when asked, see `forward`): {lang: (B_lang, S, E) the states its head read}."""

    loss: torch.Tensor | None = None
    language_losses: dict[str, torch.Tensor] | None = None
    language_loss_sums: dict[str, torch.Tensor] | None = None
    language_token_counts: dict[str, torch.Tensor] | None = None
    sharing_penalty: torch.Tensor | None = None
    encoder_states: dict[str, torch.Tensor] | None = None


class MTLPreTrainedModel(PreTrainedModel):
    config_class = MTLConfig
    base_model_prefix = "mtl"
    main_input_name = "input_ids"
    _keep_in_fp32_modules_strict = ["loss_weighting"]  # learned weights and loss statistics stay float32
    supports_gradient_checkpointing = True  # encoder blocks, and each decoder head as a whole

    @torch.no_grad()
    def _init_weights(self, module):
        """Decoder heads get the fairseq transformer init (xavier projections; embeddings ~ N(0, 1/d), scaled by
        sqrt(d) at the input, tied to the output). Called per leaf module, so heads mark theirs (`head_init`)."""
        kind = getattr(module, "head_init", None)
        if kind == "xavier":
            init.xavier_uniform_(module.weight)
            init.zeros_(module.bias)
        elif kind == "tied_embedding":
            init.normal_(module.weight, std=self.config.decoder_hidden_size**-0.5)
            init.zeros_(module.weight[self.config.target_pad_token_id])
        elif isinstance(module, LossWeighting):
            module.reset_parameters()
        else:
            super()._init_weights(module)


class MTLTranslationModel(MTLPreTrainedModel):
    """The encoder part is built and run by the sharing mode (`config.sharing`, see sharing/): `encoder` (hard),
    `encoders` {lang: copy} (soft; + `cross_stitch` {lang: α row} for cross_stitch, + `sluice` {lang: α rows and β}
    for sluice), `encoder` (shared bottom blocks) + `encoder_groups` {group: top blocks} (partial), or `encoder` +
    `adapters` {lang: one adapter per block} (adapters). This class names no mode: it asks `self.sharing_mode`.

    `shared_decoder`: the bottom `shared_decoder_layers` decoder layers, which every head runs below its own (empty by
    default: each language has a decoder of its own and only the encoder is shared). `config.embedding_groups`: languages
    with one vocabulary whose heads share one embedding (= output) matrix, tied as transformers ties weights."""

    def __init__(self, config: MTLConfig):
        super().__init__(config)
        self.sharing_mode = build_sharing(config)
        self.sharing_mode.build(self, encoder_class(config.encoder).from_config(config.encoder))
        self.shared_decoder = decoder_layers(config, config.shared_decoder_layers)  # (empty by default)
        self.decoders = nn.ModuleDict(
            {
                lang: DecoderHead(config.target_vocab_sizes[lang], config.encoder.hidden_size, config)
                for lang in config.languages
            }
        )
        for head in self.decoders.values():
            head.share(self.shared_decoder)
        self.loss_weighting = build_loss_weighting(config)
        self._tied_weights_keys = self.group_embedding_ties()
        self.post_init()  # ties them (transformers' tied weights: saved once, tied again on load)
        self.generation_config = GenerationConfig(
            bos_token_id=config.target_bos_token_id,
            eos_token_id=config.target_eos_token_id,
            pad_token_id=config.target_pad_token_id,
            decoder_start_token_id=config.target_bos_token_id,
            max_new_tokens=min(64, config.max_target_positions),
            num_beams=1,
            length_penalty=1.0,
        )

    def group_embedding_ties(self) -> dict[str, str]:
        """`config.embedding_groups` as transformers' tied weights: {member's embedding: first member's}."""
        return {f"decoders.{lang}.embed_tokens.weight": f"decoders.{group[0]}.embed_tokens.weight"
                for group in self.config.embedding_groups or [] for lang in group[1:]}

    def retie_group_embeddings(self) -> None:
        """After the languages changed (languages.py): tie the embeddings of the config's groups again."""
        self._tied_weights_keys = self.group_embedding_ties()
        self.all_tied_weights_keys = self.get_expanded_tied_weights_keys(all_submodels=True)
        self.tie_weights(recompute_mapping=False)

    @classmethod
    def can_generate(cls) -> bool:
        """Our own `generate` (all heads at once); True makes transformers save/load `generation_config.json`."""
        return True

    def adjust_generation_fn(self, generation_config, from_auto_class, from_pipeline, name_or_path, **kwargs):
        """Called by `from_pretrained`: load the saved generation config (absent in very old folders)."""
        keys = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
        try:
            self.generation_config = generation_config or GenerationConfig.from_pretrained(
                name_or_path, **{k: kwargs[k] for k in keys if k in kwargs}
            )
        except OSError:
            pass

    @classmethod
    def from_encoder(cls, encoder_name_or_path: str, **config_kwargs) -> "MTLTranslationModel":
        """A new model around a pretrained encoder (path or Hub id); decoder heads start from random weights."""
        encoder_config = AutoConfig.from_pretrained(encoder_name_or_path)
        encoder = encoder_class(encoder_config).from_pretrained(encoder_name_or_path)
        config = MTLConfig(encoder=encoder_config.to_dict(), encoder_name_or_path=encoder_name_or_path, **config_kwargs)
        model = cls(config)
        model.load_encoder_weights(encoder)
        return model

    def load_encoder_weights(self, encoder: nn.Module) -> None:
        """Copy a pretrained encoder into every encoder part of this model (each soft copy, each partial group)."""
        self.sharing_mode.load_pretrained(self, encoder)

    def freeze_encoder(self, trainable_layers: int | None) -> None:
        """None: train all; 0: freeze; k: train the top k blocks of each language's encoder stack (see
        `freeze_encoder_layers`)."""
        self.sharing_mode.freeze(self, trainable_layers)

    def no_decay_parameter_names(self) -> list[str]:
        """Parameters that get no weight decay: biases and norms (fewer than 2 dimensions), the sharing mode's mixing
        weights (cross-stitch α) and the loss weighting's learned weights (they are not model capacity)."""
        prefixes = ("loss_weighting.", *self.sharing_mode.mixing_prefixes())
        return [name for name, param in self.named_parameters() if param.ndim < 2 or name.startswith(prefixes)]

    def encode(self, input_ids, attention_mask, rows: dict[str, torch.Tensor | slice]) -> dict[str, torch.Tensor]:
        """For each language in `rows` ({lang: (B,) bool or slice}): the encoder states its head reads on those
        rows, (B_lang, S, E). Shared parts run once per batch."""
        return self.sharing_mode.encode(self, input_ids, attention_mask, rows)

    def language_loss(self, lang: str, memory, attention_mask, labels) -> torch.Tensor:
        """Summed token cross-entropy of one head on the rows that have a target (labels: (B', T), -100 = ignore);
        how it is normalised is the objective's business (objective.py).

        With activation checkpointing on (`model.activation_checkpointing_enable()`, recipe key
        `gradient_checkpointing`), only the loss is kept: the head's activations and (B', T, V) logits are recomputed
        in the backward pass, one language at a time, so an added language costs its weights and optimizer state."""
        head = self.decoders[lang]
        if head.gradient_checkpointing and self.training:
            return head._gradient_checkpointing_func(self.head_loss, lang, memory, attention_mask, labels)
        return self.head_loss(lang, memory, attention_mask, labels)

    def head_loss(self, lang: str, memory, attention_mask, labels) -> torch.Tensor:
        cfg = self.config
        decoder_input = labels.new_full(labels.shape, cfg.target_pad_token_id)
        decoder_input[:, 0] = cfg.target_bos_token_id
        decoder_input[:, 1:] = labels[:, :-1].masked_fill(labels[:, :-1] == -100, cfg.target_pad_token_id)
        head = self.decoders[lang]
        logits = head(decoder_input, head.cross_kv(memory), attention_mask[:, None, None, :].bool())  # (B', T, V)
        return F.cross_entropy(
            logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, label_smoothing=cfg.label_smoothing,
            reduction="sum",
        )

    def forward(self, input_ids, attention_mask=None, labels: dict[str, torch.Tensor] | None = None,
                objective: StepObjective | None = None, output_encoder_states: bool = False) -> MTLOutput:
        """input_ids: (B, S); labels: {lang: (B, T)} with -100 on padding and on whole rows whose target is missing.

        A language runs only on its rows that have a target; a language with none in the batch does not run at all,
        so a missing target contributes neither loss nor gradient. `objective`: the optimizer step this batch is a
        part of (the trainer's, with the step's token counts over every micro-batch and process); None: this batch
        alone. `output_encoder_states`: return the states each head read, to take a language's loss gradient with
        respect to them (conflict.py).
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        unknown = sorted(set(labels or {}) - set(self.decoders))
        if unknown:
            raise ValueError(f"labels for unknown language(s) {unknown}; this model has {list(self.decoders)}.")
        rows = {lang: keep for lang, keep in ((lang, (y != -100).any(dim=1)) for lang, y in (labels or {}).items())
                if keep.any()}  # {lang: (B,) rows with a target}
        memory, penalty = self.sharing_mode.encode_with_penalty(self, input_ids, attention_mask, rows)
        sums = {lang: self.language_loss(lang, memory[lang], attention_mask[keep], labels[lang][keep])
                for lang, keep in rows.items()}
        counts = {lang: (labels[lang][keep] != -100).sum() for lang, keep in rows.items()}
        penalty = penalty if sums else None
        objective = objective or StepObjective.of_batch(counts)
        loss = objective.part(sums, counts, self.loss_weighting, penalty, self.sharing_mode.penalty_weight)
        return MTLOutput(loss=loss, language_losses={lang: sums[lang] / counts[lang] for lang in sums},
                         language_loss_sums=sums, language_token_counts=counts, sharing_penalty=penalty,
                         encoder_states=memory if output_encoder_states else None)

    def check_languages(self, langs) -> list[str]:
        """`langs` as a list (None: every language of the model); an unknown one is an error naming the known."""
        langs = list(self.decoders) if langs is None else list(langs)
        unknown = [lang for lang in langs if lang not in self.decoders]
        if unknown:
            raise ValueError(f"unknown target language(s) {unknown}; this model translates into {list(self.decoders)}.")
        return langs

    def generation_settings(self, lang: str, **overrides) -> dict:
        """Decoding settings for one language: call overrides > `generation_config.per_language[lang]` > defaults.

        The saved defaults are capped at `max_target_positions` quietly (a config may predate a shorter model); an
        override beyond it is an error naming the limit, never a silent cap. Bad values raise here, once per call."""
        gc, limit = self.generation_config, self.config.max_target_positions
        settings = {"num_beams": gc.num_beams, "max_new_tokens": gc.max_new_tokens, "length_penalty": gc.length_penalty,
                    "no_repeat_ngram_size": gc.no_repeat_ngram_size or 0,
                    "repetition_penalty": gc.repetition_penalty or 1.0}
        settings.update((getattr(gc, "per_language", None) or {}).get(lang, {}))
        settings["max_new_tokens"] = min(settings["max_new_tokens"], limit)
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if isinstance(overrides.get("max_new_tokens"), int) and overrides["max_new_tokens"] > limit:
            raise ValueError(f"max_new_tokens={overrides['max_new_tokens']} is more than this model's "
                             f"max_target_positions={limit} (the longest target it was trained for, EOS included); "
                             f"use at most {limit}.")
        settings.update(overrides)
        check_generation_settings(settings)
        return settings

    def record_byte_pieces(self, tokenizers) -> None:
        """Where each language's byte-fallback pieces are, from its target tokenizer ({lang: TargetTokenizer}), kept
        in `generation_config.byte_piece_offsets` (saved with the model): `generate` then only ever emits complete,
        valid UTF-8 byte sequences, also when the model is loaded and called without its tokenizers."""
        self.generation_config.byte_piece_offsets = {lang: byte_piece_offset(tok.sp_model)
                                                     for lang, tok in tokenizers.items()}

    def record_mask_pieces(self, tokenizers) -> None:
        """The piece id of each mask token (`⟨0⟩`..`⟨15⟩`, placeholders.py) per language, from its target tokenizer,
        kept in `generation_config.mask_piece_ids` (saved with the model); None for a vocabulary without all of them
        (trained on unmasked targets), whose outputs are then not constrained (`generate`'s `required_masks`)."""
        ids = {lang: [tok.sp_model.piece_to_id(token) for token in MASK_TOKENS] for lang, tok in tokenizers.items()}
        self.generation_config.mask_piece_ids = {
            lang: None if any(tok.sp_model.is_unknown(i) for i in ids[lang]) else ids[lang]
            for lang, tok in tokenizers.items()}

    def record_counted_pieces(self, tokenizers) -> None:
        """Which pieces of each language write a `COUNTED` character (brackets, `<>`, tabs, `%`), from its target tokenizer,
        kept in `generation_config.counted_pieces` (saved with the model) for `generate`'s `required_counts`."""
        self.generation_config.counted_pieces = {lang: counted_pieces(tok.sp_model) for lang, tok in tokenizers.items()}

    def masks(self, langs: list[str], required: torch.Tensor | None, ordered: torch.Tensor | None = None,
              counts: torch.Tensor | None = None) -> Masks | None:
        """The mask tokens each row of `langs` (language-major, as a stacked search lays them out) must emit, from
        `required` (B, K) bool, `ordered` (B, K) bool those in source order, and `counts` (B, C) how many of each
        `COUNTED` character; None where nothing is required."""
        if counts is None and (required is None or not required.any()):
            return None
        if required is None:
            required = torch.zeros(counts.shape[0], 1, dtype=torch.bool, device=counts.device)
        known = getattr(self.generation_config, "mask_piece_ids", None) or {}
        width = required.shape[1]
        ids = torch.tensor([(known.get(lang) or [-1] * width)[:width] for lang in langs], device=required.device)
        recorded = getattr(self.generation_config, "counted_pieces", None) or {}
        counted = None if counts is None else Counts.build(
            [recorded.get(lang) for lang in langs], counts, max(self.config.target_vocab_sizes[lang] for lang in langs))
        return Masks(ids, required.repeat(len(langs), 1), None if ordered is None else ordered.repeat(len(langs), 1),
                     counted)

    def pieces(self, langs: list[str]) -> Pieces:
        """The piece tables of `langs` for decoding (`Pieces`), as wide as their largest vocabulary. A model never
        given its tokenizers (`record_byte_pieces`) knows no byte pieces: only pad, bos and unk are masked then."""
        cfg, offsets = self.config, getattr(self.generation_config, "byte_piece_offsets", None) or {}
        never = (cfg.target_pad_token_id, cfg.target_bos_token_id, cfg.target_unk_token_id)
        return Pieces.build([offsets.get(lang) for lang in langs], never,
                            max(cfg.target_vocab_sizes[lang] for lang in langs), self.device)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, langs=None, rows=None, stacked: bool | None = None,
                 required_masks: torch.Tensor | None = None, ordered_masks: torch.Tensor | None = None,
                 required_counts: torch.Tensor | None = None, mean_logprobs: bool = False, **overrides):
        """Translate into every language in `langs` (default: all). Shared encoder blocks run once; each head
        decodes from the encoder states of its language. `rows` optionally limits a language to some rows: {lang: (B,) bool}.
        Returns {lang: (B_lang, T) token ids, EOS included, padded with the pad id}.

        Languages that read the same encoder states (the sharing mode's `states_key`: all of them with hard sharing,
        each group with partial sharing) and share generation settings decode together, as one stacked computation over all their heads
        (`StackedHeads`) on every row (a language's `rows` are picked afterwards), with the same output as one by one.
        `stacked`: None = for groups of 2+ languages, True = for every language, False = never.

        `required_masks`: (B, K) bool, row b's source holds mask token `⟨k⟩` (placeholders.py): its outputs hold it
        exactly once (`MaskGuard`; languages whose vocabulary lacks the tokens are not constrained); `ordered_masks`
        (B, K) bool: those that come out in source order (unnumbered conversions); `required_counts` (B, C) int: how
        many of each `generation.COUNTED` character (brackets, `<>`, tabs, `%`) row b's outputs hold, as its source. With
        `mean_logprobs`, returns ({lang: ids}, {lang: (B_lang,) mean token log-probability of each output})."""
        langs = self.check_languages(langs)
        cfg, rows = self.config, rows or {}
        states = {lang: self.sharing_mode.states_key(lang) for lang in langs}  # None: states of its own
        if stacked and None in states.values():
            own = [lang for lang, key in states.items() if key is None]
            raise ValueError(f"stacked=True needs heads that read the same encoder states; with sharing: {cfg.sharing} "
                             f"{own} have encoder states of their own.")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        settings = {lang: self.generation_settings(lang, **overrides) for lang in langs}
        groups = {}  # {(encoder states, settings): [lang]}
        if stacked is not False:
            for lang in langs:
                if states[lang] is not None:
                    groups.setdefault((states[lang], tuple(sorted(settings[lang].items()))), []).append(lang)
        groups = [group for group in groups.values() if len(group) > 1 or stacked]
        together = {lang for group in groups for lang in group}
        keep = {lang: rows.get(lang, slice(None)) for lang in langs}
        memory = self.encode(input_ids, attention_mask, {lang: slice(None) if lang in together else keep[lang]
                                                         for lang in langs})  # {lang: (B_lang, S, E)}
        ids = dict(bos=cfg.target_bos_token_id, eos=cfg.target_eos_token_id, pad=cfg.target_pad_token_id,
                   mean_logprobs=mean_logprobs)
        out, logprobs = {}, {}
        for group in groups:
            heads = stacked_heads(self, group)
            cross_mask = attention_mask[:, None, None, :].bool().repeat(len(group), 1, 1, 1)  # (N*B, 1, 1, S)
            every_row = decode(heads, heads.cross_kv(memory[group[0]]), cross_mask, pieces=self.pieces(group),
                               masks=self.masks(group, required_masks, ordered_masks, required_counts), **ids,
                               **settings[group[0]])
            every_row, scores = every_row if mean_logprobs else (every_row, None)
            out.update((lang, trim(x[keep[lang]], ids["eos"])) for lang, x in zip(group, every_row.chunk(len(group))))
            if mean_logprobs:
                logprobs.update((lang, x[keep[lang]]) for lang, x in zip(group, scores.chunk(len(group))))
        for lang in langs:
            if lang not in together:
                head, cross_mask = self.decoders[lang], attention_mask[keep[lang]][:, None, None, :].bool()
                required, ordered, counts = (None if m is None else m[keep[lang]]
                                             for m in (required_masks, ordered_masks, required_counts))
                out[lang] = decode(head, head.cross_kv(memory[lang]), cross_mask, pieces=self.pieces([lang]),
                                   masks=self.masks([lang], required, ordered, counts), **ids, **settings[lang])
                if mean_logprobs:
                    out[lang], logprobs[lang] = out[lang]
        out = {lang: out[lang] for lang in langs}
        return (out, {lang: logprobs[lang] for lang in langs}) if mean_logprobs else out
