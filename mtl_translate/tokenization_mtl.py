"""Source tokenizer (the encoder's own) + one SentencePiece tokenizer per target language, saved with the model.

Layout inside a model folder: `tokenizers/source/` (any `AutoTokenizer`) and `tokenizers/<lang>/tokenizer.model`.
"""

import io
import os
from collections.abc import Iterable, Mapping

import sentencepiece as spm
from transformers import AutoConfig, AutoTokenizer
from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}  # ids 0..3


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
        """Decode generated ids, cutting each at its first EOS and dropping padding."""
        cut = [seq[: seq.index(self.eos_token_id)] if self.eos_token_id in seq else seq for seq in ids]
        return self.sp_model.decode([[i for i in seq if i > self.eos_token_id] for seq in cut])

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, save_directory: str, **spm_kwargs) -> "TargetTokenizer":
        """Train a unigram SentencePiece model on one language's training targets (byte fallback for unseen text)."""
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type="unigram",
            pad_id=0, unk_id=1, bos_id=2, eos_id=3, character_coverage=0.9995, byte_fallback=True,
            hard_vocab_limit=False, input_sentence_size=2_000_000, shuffle_input_sentence=True,
            minloglevel=2, **spm_kwargs,
        )
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, "tokenizer.model")
        with open(path, "wb") as f:
            f.write(model.getvalue())
        return cls(vocab_file=path)


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
            lang: TargetTokenizer.train(texts, vocab_size, os.path.join(save_directory, "tokenizers", lang))
            for lang, texts in target_texts.items()
        }
        return cls(AutoTokenizer.from_pretrained(encoder_name_or_path), targets)

    def save_pretrained(self, save_directory: str) -> None:
        self.source.save_pretrained(os.path.join(save_directory, "tokenizers", "source"))
        for lang, tok in self.targets.items():
            tok.save_pretrained(os.path.join(save_directory, "tokenizers", lang))

    @classmethod
    def from_pretrained(cls, name_or_path: str, **kwargs) -> "MTLTokenizer":
        """Load from a model folder or Hub repo; the target languages come from its config."""
        languages = AutoConfig.from_pretrained(name_or_path, **kwargs).languages
        source = AutoTokenizer.from_pretrained(name_or_path, subfolder="tokenizers/source", **kwargs)
        targets = {
            lang: TargetTokenizer.from_pretrained(name_or_path, subfolder=f"tokenizers/{lang}", **kwargs)
            for lang in languages
        }
        return cls(source, targets)
