"""Languages after training: add a language to a trained model, remove one, or train only some of them, while
every other language keeps its weights bit for bit (and so its translations).

What a language owns is its decoder head plus the encoder parts its sharing mode gives it alone
(`SharingMode.owned_prefixes`: its soft-sharing copy, its own partial-sharing group, its adapters, ...). Adding or
removing a language builds or drops only those; training some languages trains only what they own (shared decoder
layers, `shared_decoder_layers`, belong to no language: they stay frozen, and a new language learns above them; the
embedding an `embedding_groups` group shares trains only when every language of the group does).
"""

import copy

from .decoder import DecoderHead
from .losses import build_loss_weighting
from .sharing import build_sharing


def _reconfigure(model, config) -> None:
    """Switches `model` to `config` (another language list): new sharing mode, loss weighting carried over."""
    weighting = build_loss_weighting(config)
    weighting.carry_over(model.loss_weighting)
    model.config, model.sharing_mode, model.loss_weighting = config, build_sharing(config), weighting


def add_language(model, lang: str, vocab_size: int, group: str | None = None) -> None:
    """A new head (fresh weights) and the encoder parts `lang` will own; `group` (partial sharing) names the
    language group whose blocks it reads, existing or new. Nothing that exists changes."""
    cfg = model.config
    if lang in cfg.languages:
        raise ValueError(f"{lang!r} is already a language of this model ({cfg.languages}); to train it again use "
                         f"train_languages: [{lang}].")
    config = copy.deepcopy(cfg)
    config.languages = [*cfg.languages, lang]
    config.target_vocab_sizes = {**cfg.target_vocab_sizes, lang: vocab_size}
    config.loss_weights = {**cfg.loss_weights, lang: 1.0}
    if group is not None:
        groups = dict(cfg.language_groups or {})
        config.language_groups = {**groups, group: [*groups.get(group, []), lang]}
    mode = build_sharing(config)
    mode.add_language(model, lang)
    head = DecoderHead(vocab_size, config.encoder.hidden_size, config).to(model.device, model.dtype)
    for module in head.modules():
        model._init_weights(module)
    head.share(model.shared_decoder)
    model.decoders[lang] = head
    _reconfigure(model, config)


def remove_language(model, lang: str) -> None:
    """Drops the head of `lang` and every encoder part it owns; the saved model shrinks accordingly."""
    cfg = model.config
    if lang not in cfg.languages:
        raise ValueError(f"{lang!r} is not a language of this model ({cfg.languages}).")
    if len(cfg.languages) == 1:
        raise ValueError(f"{lang!r} is the model's only language; a model needs at least one.")
    model.sharing_mode.remove_language(model, lang)
    del model.decoders[lang]
    config = copy.deepcopy(cfg)
    config.languages = [other for other in cfg.languages if other != lang]
    config.target_vocab_sizes = {k: v for k, v in cfg.target_vocab_sizes.items() if k != lang}
    config.loss_weights = {k: v for k, v in cfg.loss_weights.items() if k != lang}
    groups = {name: [m for m in members if m != lang] for name, members in (cfg.language_groups or {}).items()}
    config.language_groups = {name: members for name, members in groups.items() if members} or None
    config.embedding_groups = groups_without(cfg.embedding_groups, lang) or None  # one left alone keeps it, untied
    _reconfigure(model, config)
    model.retie_group_embeddings()


def groups_without(groups: list[list[str]] | None, lang: str) -> list[list[str]]:
    """`embedding_groups` / `shared_vocabularies` without `lang`; a group left with one language is no group."""
    return [kept for kept in ([m for m in group if m != lang] for group in groups or []) if len(kept) > 1]


def train_only(model, langs: list[str]) -> list[str]:
    """Freezes everything that `langs` do not own (shared encoder parts, other heads, learned loss weights).
    Call after `freeze_encoder`: an owned part keeps that setting. Returns the prefixes left trainable."""
    model.check_languages(langs)
    prefixes = [f"decoders.{lang}." for lang in langs]
    prefixes += [p for lang in langs for p in model.sharing_mode.owned_prefixes(model, lang)]
    shared = [f"decoders.{m}.embed_tokens." for group in model.config.embedding_groups or []
              if not set(group) <= set(langs) for m in group]  # the group's other languages read it too
    for name, param in model.named_parameters():
        if not name.startswith(tuple(prefixes)) or name.startswith(tuple(shared)):
            param.requires_grad_(False)
    return prefixes
