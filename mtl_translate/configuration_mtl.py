"""Configuration of a multi-target translation model: one shared encoder, one decoder head per language."""

from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .sharing import check_sharing_config


class MTLConfig(PretrainedConfig):
    """Holds the encoder's own config (any `AutoConfig`) plus the shape of the decoder heads.

    All heads share one architecture (layers, width, heads, ffn) so that they can later be run as one stacked
    computation; only their vocabularies differ (`target_vocab_sizes`, one SentencePiece model per language).
    """

    model_type = "mtl_translation"
    sub_configs_defaults = {"encoder": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    # the shared encoder and the languages
    encoder: PretrainedConfig | dict | None = None
    encoder_name_or_path: str | None = None  # the checkpoint it came from (model card, base_model)
    source_lang: str = "en"
    languages: list[str] | None = None
    target_vocab_sizes: dict[str, int] | None = None  # {lang: SentencePiece vocabulary size}
    # one architecture for every decoder head
    decoder_layers: int = 3
    decoder_hidden_size: int = 256
    decoder_attention_heads: int = 4
    decoder_ffn_dim: int = 1024
    decoder_dropout: float = 0.1
    shared_decoder_layers: int = 0  # bottom decoder layers every language runs (its embeddings and top layers its own)
    embedding_groups: list[list[str]] | None = None  # [[fr, es]]: one vocabulary, so one embedding (= output) matrix
    tie_word_embeddings: bool = True  # transformers ties `_tied_weights_keys` (embedding_groups) only when True
    max_target_positions: int = 128  # longest target, in tokens, EOS included
    label_smoothing: float = 0.1
    protect_placeholders: bool = False  # translate masks %s, --help, paths... and restores them (placeholders.py)
    # how languages share the encoder (sharing.py)
    sharing: str = "hard"  # hard | soft | partial | cross_stitch | adapters | sluice (sharing/)
    soft_sharing_weight: float = 0.01  # soft: weight of the L2 penalty between encoder copies
    shared_layers: int | None = None  # partial: bottom encoder blocks shared by all languages
    language_groups: dict[str, list[str]] | None = None  # partial: {group: [langs]} sharing the blocks above
    cross_stitch_init: float = 0.9  # cross_stitch: initial weight of a copy on its own hidden states (α diagonal)
    adapter_size: int = 64  # adapters: bottleneck width of each language's adapter after every encoder block
    sluice_subspaces: int = 2  # sluice: subspaces each block's output is split into (equal coordinate ranges)
    sluice_orthogonality_weight: float = 1e-4  # sluice: weight of the orthogonality penalty between a copy's subspaces
    # how their losses combine (losses.py)
    loss_weighting: str = "static"  # one of weighting_methods.LOSS_WEIGHTINGS
    loss_weights: dict[str, float] | None = None  # static: {lang: weight}, default 1
    dwa_temperature: float = 2.0
    dwa_window: int = 50  # dwa: optimizer steps per loss-averaging window
    gradnorm_alpha: float = 1.5  # gradnorm: asymmetry, how hard slow languages are pushed
    famo_lr: float = 0.025  # famo: learning rate of the weight logits' own Adam
    famo_gamma: float = 1e-3  # famo: L2 weight decay of the weight logits
    cagrad_c: float = 0.5  # the aggregators' options: weighting_methods.AGGREGATOR_OPTIONS
    nashmtl_max_norm: float = 1.0
    nashmtl_optim_niter: int = 20
    fairgrad_alpha: float = 1.0
    alignedmtl_scale_mode: str = "min"
    graddrop_leak: float = 0.0
    gradvac_beta: float = 0.5
    gradvac_eps: float = 1e-8
    # special tokens of every target vocabulary
    target_pad_token_id: int = 0
    target_unk_token_id: int = 1
    target_bos_token_id: int = 2
    target_eos_token_id: int = 3
    is_encoder_decoder: bool = True

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.languages = list(self.languages or [])
        self.target_vocab_sizes = dict(self.target_vocab_sizes or {})
        missing = [lang for lang in self.languages if lang not in self.target_vocab_sizes]
        if missing:
            raise ValueError(f"MTLConfig: no target_vocab_sizes entry for language(s) {missing}.")
        self.loss_weights = {lang: float((self.loss_weights or {}).get(lang, 1.0)) for lang in self.languages}
        check_sharing_config(self)
        self.embedding_groups = [list(group) for group in self.embedding_groups or []] or None
        for group in self.embedding_groups or []:
            if len(group) < 2 or not set(group) <= set(self.languages) or \
                    len({self.target_vocab_sizes[lang] for lang in group}) > 1:
                raise ValueError(f"embedding_groups: {group} must hold 2+ languages of {self.languages} with one "
                                 f"vocabulary size (target_vocab_sizes {self.target_vocab_sizes}).")
        grouped = [lang for group in self.embedding_groups or [] for lang in group]
        if len(grouped) > len(set(grouped)):
            raise ValueError(f"embedding_groups {self.embedding_groups}: a language may be in one group only.")
        if not 0 <= self.shared_decoder_layers <= self.decoder_layers:
            raise ValueError(f"shared_decoder_layers={self.shared_decoder_layers} must be between 0 and "
                             f"decoder_layers={self.decoder_layers}.")
        if self.decoder_hidden_size % self.decoder_attention_heads:
            raise ValueError(
                f"decoder_hidden_size={self.decoder_hidden_size} must be divisible by "
                f"decoder_attention_heads={self.decoder_attention_heads}."
            )
