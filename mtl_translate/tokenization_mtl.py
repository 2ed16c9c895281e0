"""Source tokenizer (the encoder's own) + one SentencePiece tokenizer per target language, saved with the model.

Layout inside a model folder: `tokenizers/source/` (any `AutoTokenizer`) and `tokenizers/<lang>/tokenizer.model`.
Loading checks the folder first (`local_folder`, `load_config`): a wrong path or a broken folder is an error naming
it and what is missing, not a Hub lookup error about a repo id.
"""

import io
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping

import sentencepiece as spm
from huggingface_hub.utils import HFValidationError, validate_repo_id
from transformers import AutoTokenizer
from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

from .configuration_mtl import MTLConfig
from .placeholders import MASK_TOKENS

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}  # ids 0..3
# Every target tokenizer is trained with these options, so that decode(encode(t)) == t: text comes out as written.
# SentencePiece's defaults (NFKC, collapsed whitespace) turned `…` into `...`, French no-break spaces (U+00A0,
# U+202F) into spaces, full-width `：，（）` into ASCII and flattened the aligned columns of `--help` text. With the
# identity rule and whitespace kept, runs of spaces may be pieces of their own (column alignment), "\n" and "\t" are
# pieces when frequent and bytes otherwise, and any character outside the vocabulary is spelled in UTF-8 byte pieces
# (byte_fallback). The dummy prefix stays: decoding removes exactly the one space it added. A model saved before
# keeps its own normaliser (it is stored in its .model file) and behaves as it did.
TRAINER_OPTIONS = {
    "model_type": "unigram", "pad_id": 0, "unk_id": 1, "bos_id": 2, "eos_id": 3, "character_coverage": 0.9995,
    "byte_fallback": True, "normalization_rule_name": "identity", "remove_extra_whitespaces": False,
    "allow_whitespace_only_pieces": True, "hard_vocab_limit": False, "input_sentence_size": 2_000_000,
    "shuffle_input_sentence": True, "minloglevel": 2,
}


class TargetTokenizer(SentencePieceBackend):
    """A transformers tokenizer over one language's SentencePiece model (ids: pad 0, unk 1, bos 2, eos 3).

    `encode_batch` / `decode_batch` call SentencePiece's C++ batch API directly: the training and translation hot
    paths should not go through the per-string Python machinery.
    """

    model_input_names = ["input_ids"]

    def __init__(self, vocab_file: str, **kwargs):
        super().__init__(vocab_file=vocab_file, **{**SPECIAL_TOKENS, **kwargs})

    def build_inputs_with_special_tokens(self, token_ids_0, token_ids_1=None):
        return token_ids_0 + [self.eos_token_id] + (token_ids_1 + [self.eos_token_id] if token_ids_1 else [])

    def encode_batch(self, texts: list[str], max_length: int) -> list[list[int]]:
        """Token ids + EOS for each text, truncated to `max_length` tokens in all (EOS kept)."""
        return [ids[: max_length - 1] + [self.eos_token_id] for ids in self.sp_model.encode(texts)]

    def decode_batch(self, ids: list[list[int]]) -> list[str]:
        """Decode generated ids, cutting each at its first EOS and dropping padding.

        Never returns U+FFFD: SentencePiece decodes each byte of an incomplete or invalid byte-piece sequence (ids
        built by hand, an output cut at `max_new_tokens`) as one U+FFFD, so where one appears, the sequence is decoded
        again without those byte pieces (`valid_bytes`), and a U+FFFD piece of the vocabulary is dropped too."""
        cut = [seq[: seq.index(self.eos_token_id)] if self.eos_token_id in seq else seq for seq in ids]
        seqs = [[i for i in seq if i > self.eos_token_id] for seq in cut]
        return [text if "\ufffd" not in text else self.sp_model.decode(self.valid_bytes(seq)).replace("\ufffd", "")
                for seq, text in zip(seqs, self.sp_model.decode(seqs))]

    def valid_bytes(self, seq: list[int]) -> list[int]:
        """`seq` without the byte pieces that form no complete, valid UTF-8 character (at most 4 bytes each)."""
        def valid_utf8(data: bytes) -> bool:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                return False
            return True

        keep, run = [], []  # run: (id, byte) of the byte pieces since the last other piece
        for i in [*seq, None]:
            if i is not None and self.sp_model.is_byte(i):
                run.append((i, int(self.sp_model.id_to_piece(i)[1:-1], 16)))
                continue
            while run:
                size = next((n for n in range(1, 5) if valid_utf8(bytes(b for _, b in run[:n]))), 0)
                keep += [j for j, _ in run[:size]]
                run = run[size or 1 :]
            if i is not None:
                keep.append(i)
        return keep

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, save_directory: str, lang: str = "target",
              **spm_kwargs) -> "TargetTokenizer":
        """Train a unigram SentencePiece model on one language's training targets (byte fallback for unseen text).

        SentencePiece's own failures (no text, a vocabulary too small for the characters) become errors naming
        `lang` and what to change. Texts masked by placeholders.py make every mask token one piece: the decoder
        emits `⟨3⟩` whole, never a part of it."""
        texts = list(texts)
        if any(token in text for text in texts if "⟨" in text for token in MASK_TOKENS):
            spm_kwargs = {"user_defined_symbols": list(MASK_TOKENS), **spm_kwargs}
        if not any(text.strip() for text in texts):
            raise ValueError(f"{lang}: no non-empty training text to train its tokenizer on ({len(texts)} texts); "
                             f"check that the training split has targets for {lang!r}.")
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
                                           **{**TRAINER_OPTIONS, **spm_kwargs})
        except RuntimeError as err:
            needed = re.search(r"smaller than required_chars\. \d+ vs (\d+)", str(err))
            if needed:
                raise ValueError(f"{lang}: target_vocab_size={vocab_size} is smaller than the {needed[1]} pieces its "
                                 f"characters need (256 bytes, 4 special tokens and every character seen); raise "
                                 f"target_vocab_size to at least {needed[1]}.") from None
            raise ValueError(f"{lang}: training its SentencePiece tokenizer (vocab_size={vocab_size}) failed: "
                             f"{err}") from None
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, "tokenizer.model")
        with open(path, "wb") as f:
            f.write(model.getvalue())
        tokenizer = cls(vocab_file=path)
        tokenizer.log_round_trip(texts, lang)
        return tokenizer

    def round_trip_failures(self, texts: list[str]) -> list[str]:
        """The texts that do not come back as written from decode(encode(text))."""
        return [text for text, back in zip(texts, self.sp_model.decode(self.sp_model.encode(texts))) if back != text]

    def log_round_trip(self, texts: list[str], lang: str) -> None:
        """How many training targets come back exactly: one that does not would be learnt, and emitted, changed."""
        failed = self.round_trip_failures(texts)
        exact = 100 * (1 - len(failed) / len(texts))
        if failed:
            logger.warning(f"{lang}: {len(texts) - len(failed)} of {len(texts)} training targets ({exact:.2f} %) come "
                           f"back exactly from the tokenizer; not, e.g.: {[t[:60] for t in failed[:3]]}")
        else:
            logger.info(f"{lang}: all {len(texts)} training targets come back exactly from the tokenizer")


class MTLTokenizer:
    """Bundles the source tokenizer and every target tokenizer so they save and load with the model."""

    def __init__(self, source, targets: Mapping[str, TargetTokenizer]):
        self.source, self.targets = source, dict(targets)

    @property
    def languages(self) -> list[str]:
        return list(self.targets)

    def __getitem__(self, lang: str) -> TargetTokenizer:
        if lang not in self.targets:
            raise ValueError(f"no tokenizer for language {lang!r}; this model has {self.languages}.")
        return self.targets[lang]

    @classmethod
    def train(cls, encoder_name_or_path: str, target_texts: Mapping[str, Iterable[str]], vocab_size: int,
              save_directory: str) -> "MTLTokenizer":
        targets = {
            lang: TargetTokenizer.train(texts, vocab_size, os.path.join(save_directory, "tokenizers", lang), lang)
            for lang, texts in target_texts.items()
        }
        return cls(AutoTokenizer.from_pretrained(encoder_name_or_path), targets)

    def save_pretrained(self, save_directory: str) -> None:
        self.source.save_pretrained(os.path.join(save_directory, "tokenizers", "source"))
        for lang, tok in self.targets.items():
            tok.save_pretrained(os.path.join(save_directory, "tokenizers", lang))

    @classmethod
    def from_pretrained(cls, name_or_path: str, config: MTLConfig | None = None, **kwargs) -> "MTLTokenizer":
        """Load from a model folder or Hub repo; the target languages come from its config (`load_config`).

        A tokenizer that is missing, damaged or made for another model (other languages, another vocabulary size)
        is an error naming it. Code in the folder never runs: the source tokenizer loads with trust_remote_code off.
        """
        folder = local_folder(name_or_path)
        name_or_path = folder or name_or_path  # "~/model" expanded
        config = config or load_config(name_or_path, **kwargs)
        if folder:
            check_tokenizer_files(folder, config.languages)

        def load(tokenizer_class, subfolder: str, **extra):
            try:
                return tokenizer_class.from_pretrained(name_or_path, subfolder=subfolder, **{**kwargs, **extra})
            except (OSError, RuntimeError, ValueError) as err:
                raise ValueError(f"{name_or_path}: cannot load the tokenizer in {subfolder}/ ({err}); the file is "
                                 f"damaged or incomplete: save or download the model again.") from None

        source = load(AutoTokenizer, "tokenizers/source", trust_remote_code=False)
        targets = {lang: load(TargetTokenizer, f"tokenizers/{lang}") for lang in config.languages}
        for lang, tok in targets.items():
            if len(tok) != config.target_vocab_sizes[lang]:
                raise ValueError(f"{name_or_path}: tokenizers/{lang}/tokenizer.model has {len(tok)} pieces but "
                                 f"config.json has target_vocab_sizes[{lang!r}] = {config.target_vocab_sizes[lang]}: "
                                 f"the tokenizer belongs to another model; use the tokenizers/ saved with this one.")
        return cls(source, targets)


def local_folder(name_or_path) -> str | None:
    """The local folder `name_or_path` names, or None for a Hub repo id (loaded from the Hub as usual).

    Anything that looks like a path (starts with . / ~, has two or more '/', or is no valid repo id) must exist
    as a folder: otherwise the error names it, instead of a Hub error about an invalid or unknown repo id."""
    name = str(name_or_path)
    path = os.path.expanduser(name)
    if os.path.isdir(path):
        return path
    if os.path.exists(path):
        raise ValueError(f"{name} is a file; a model is a folder (config.json, model.safetensors, tokenizers/) "
                         f"or a Hub repo id.")
    try:
        validate_repo_id(name)
        hub_id = not name.startswith((".", "/", "~")) and name.count("/") <= 1
    except HFValidationError:
        hub_id = False
    if not hub_id:
        raise FileNotFoundError(f"model folder {name!r} does not exist (nor is it a Hub repo id ORG/NAME).")
    return None


def load_config(name_or_path, **kwargs) -> MTLConfig:
    """The MTLConfig of a model folder or Hub repo; a missing, truncated or foreign config.json is an error naming
    the file. Only our own config class reads it: an `auto_map` (custom code) in the file is never imported."""
    folder = local_folder(name_or_path)
    if folder:
        path = os.path.join(folder, "config.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{folder} has no config.json, so it is no mtl-translate model folder (that holds "
                                    f"config.json, model.safetensors and tokenizers/, as training writes them).")
        try:
            with open(path, encoding="utf-8") as f:
                config_dict = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} is not valid JSON ({err}): the file is truncated or damaged; save or download "
                             f"the model again.") from None
    else:
        path = f"{name_or_path}/config.json"
        try:
            config_dict, _ = MTLConfig.get_config_dict(name_or_path, **kwargs)
        except OSError as err:
            raise FileNotFoundError(f"{name_or_path} is no local folder, and loading it as a Hub repo id failed: "
                                    f"{err}") from None
    model_type = config_dict.get("model_type") if isinstance(config_dict, dict) else None
    if model_type != MTLConfig.model_type:
        raise ValueError(f"{path} has model_type {model_type!r}, not {MTLConfig.model_type!r}: this is no "
                         f"mtl-translate model (a pretrained encoder goes into a recipe's encoder_name_or_path).")
    try:
        return MTLConfig.from_dict(config_dict)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None


def check_tokenizer_files(folder: str, languages: list[str]) -> None:
    """Every tokenizer the config needs is in the folder: `tokenizers/source/`, `tokenizers/<lang>/tokenizer.model`."""
    root = os.path.join(folder, "tokenizers")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{folder} has no tokenizers/ folder (tokenizers/source/ and tokenizers/<lang>/"
                                f"tokenizer.model for {languages}); Translator.save_pretrained writes it, "
                                f"model.save_pretrained does not.")
    if not os.path.isdir(os.path.join(root, "source")):
        raise FileNotFoundError(f"{folder} has no tokenizers/source/ (the encoder's tokenizer): the copy is "
                                f"incomplete.")
    have = sorted(lang for lang in os.listdir(root) if os.path.isfile(os.path.join(root, lang, "tokenizer.model")))
    missing = [lang for lang in languages if lang not in have]
    if missing:
        raise FileNotFoundError(f"{folder} has no tokenizer for language(s) {missing} (tokenizers/<lang>/"
                                f"tokenizer.model): config.json has languages {languages}, tokenizers/ has {have}; "
                                f"the tokenizers belong to another model or the copy is incomplete.")
