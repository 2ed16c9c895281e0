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
from .decoder import DecoderHead
from .generation import beam_search, greedy_search
from .losses import build_loss_weighting


def encoder_class(config):
    """T5-style checkpoints need their encoder-only class; BERT-style ones are already encoders."""
    return AutoModelForTextEncoding if config.model_type in MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES else AutoModel


@dataclass
class MTLOutput(ModelOutput):
    """`loss`: weighted sum over the languages present in the batch; `language_losses`: unweighted, per language."""

    loss: torch.Tensor | None = None
    language_losses: dict[str, torch.Tensor] | None = None
    encoder_last_hidden_state: torch.Tensor | None = None


class MTLPreTrainedModel(PreTrainedModel):
    config_class = MTLConfig
    base_model_prefix = "mtl"
    main_input_name = "input_ids"

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
        else:
            super()._init_weights(module)


class MTLTranslationModel(MTLPreTrainedModel):
    def __init__(self, config: MTLConfig):
        super().__init__(config)
        self.encoder = encoder_class(config.encoder).from_config(config.encoder)
        self.decoders = nn.ModuleDict(
            {
                lang: DecoderHead(config.target_vocab_sizes[lang], config.encoder.hidden_size, config)
                for lang in config.languages
            }
        )
        self.loss_weighting = build_loss_weighting(config)
        self.post_init()
        self.generation_config = GenerationConfig(
            bos_token_id=config.target_bos_token_id,
            eos_token_id=config.target_eos_token_id,
            pad_token_id=config.target_pad_token_id,
            decoder_start_token_id=config.target_bos_token_id,
            max_new_tokens=min(64, config.max_target_positions),
            num_beams=1,
            length_penalty=1.0,
        )

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
        model.encoder.load_state_dict(encoder.state_dict())
        return model

    def encode(self, input_ids, attention_mask) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, S, E)

    def language_loss(self, lang: str, memory, attention_mask, labels) -> torch.Tensor:
        """Mean token cross-entropy of one head on the rows that have a target (labels: (B', T), -100 = ignore)."""
        cfg = self.config
        decoder_input = labels.new_full(labels.shape, cfg.target_pad_token_id)
        decoder_input[:, 0] = cfg.target_bos_token_id
        decoder_input[:, 1:] = labels[:, :-1].masked_fill(labels[:, :-1] == -100, cfg.target_pad_token_id)
        head = self.decoders[lang]
        logits = head(decoder_input, head.cross_kv(memory), attention_mask[:, None, None, :].bool())  # (B', T, V)
        return F.cross_entropy(
            logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, label_smoothing=cfg.label_smoothing
        )

    def forward(self, input_ids, attention_mask=None, labels: dict[str, torch.Tensor] | None = None) -> MTLOutput:
        """input_ids: (B, S); labels: {lang: (B, T)} with -100 on padding and on whole rows whose target is missing.

        A language runs only on its rows that have a target; a language with none in the batch does not run at all,
        so a missing target contributes neither loss nor gradient.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        memory = self.encode(input_ids, attention_mask)  # (B, S, E)
        if labels is None:
            return MTLOutput(encoder_last_hidden_state=memory)
        unknown = sorted(set(labels) - set(self.decoders))
        if unknown:
            raise ValueError(f"labels for unknown language(s) {unknown}; this model has {list(self.decoders)}.")
        losses = {}
        for lang, lang_labels in labels.items():
            rows = (lang_labels != -100).any(dim=1)  # (B,)
            if rows.any():
                losses[lang] = self.language_loss(lang, memory[rows], attention_mask[rows], lang_labels[rows])
        loss = self.loss_weighting(losses) if losses else None
        return MTLOutput(loss=loss, language_losses=losses, encoder_last_hidden_state=memory)

    def check_languages(self, langs) -> list[str]:
        """`langs` as a list (None: every language of the model); an unknown one is an error naming the known."""
        langs = list(self.decoders) if langs is None else list(langs)
        unknown = [lang for lang in langs if lang not in self.decoders]
        if unknown:
            raise ValueError(f"unknown target language(s) {unknown}; this model translates into {list(self.decoders)}.")
        return langs

    def generation_settings(self, lang: str, **overrides) -> dict:
        """Decoding settings for one language: call overrides > `generation_config.per_language[lang]` > defaults."""
        gc = self.generation_config
        settings = {"num_beams": gc.num_beams, "max_new_tokens": gc.max_new_tokens, "length_penalty": gc.length_penalty}
        settings.update((getattr(gc, "per_language", None) or {}).get(lang, {}))
        settings.update({k: v for k, v in overrides.items() if v is not None})
        settings["max_new_tokens"] = min(settings["max_new_tokens"], self.config.max_target_positions)
        return settings

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, langs=None, rows=None, **overrides) -> dict[str, torch.Tensor]:
        """Translate into every language in `langs` (default: all). The encoder runs once; each head decodes
        from the same encoder states. `rows` optionally limits a language to some rows: {lang: (B,) bool}.
        Returns {lang: (B_lang, T) token ids, EOS included, padded with the pad id}."""
        langs = self.check_languages(langs)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        memory = self.encode(input_ids, attention_mask)  # (B, S, E)
        cfg, out = self.config, {}
        for lang in langs:
            keep = rows[lang] if rows is not None and lang in rows else slice(None)
            head, settings = self.decoders[lang], self.generation_settings(lang, **overrides)
            kwargs = dict(bos=cfg.target_bos_token_id, eos=cfg.target_eos_token_id, pad=cfg.target_pad_token_id)
            cross_kv, cross_mask = head.cross_kv(memory[keep]), attention_mask[keep][:, None, None, :].bool()
            if settings["num_beams"] > 1:
                out[lang] = beam_search(head, cross_kv, cross_mask, **kwargs, **settings)
            else:
                out[lang] = greedy_search(head, cross_kv, cross_mask, max_new_tokens=settings["max_new_tokens"], **kwargs)
        return out
