"""Translate to all target languages at once: the encoder runs once per batch, every requested head decodes."""

import json
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice

import torch
from tqdm.auto import tqdm

from .modeling_mtl import MTLTranslationModel
from .tokenization_mtl import MTLTokenizer


class Translator:
    """A trained model + its tokenizers: `Translator.from_pretrained(dir_or_repo).translate(texts, langs)`."""

    def __init__(self, model: MTLTranslationModel, tokenizer: MTLTokenizer, max_source_length: int = 128):
        self.model, self.tokenizer, self.max_source_length = model.eval(), tokenizer, max_source_length

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str | None = None, **kwargs) -> "Translator":
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = MTLTranslationModel.from_pretrained(name_or_path, **kwargs).to(device)
        return cls(model, MTLTokenizer.from_pretrained(name_or_path, **kwargs))

    def save_pretrained(self, save_directory: str, **kwargs) -> None:
        """One folder: config.json, model.safetensors, generation_config.json, tokenizers/{source,<lang>}/."""
        self.model.save_pretrained(save_directory, **kwargs)
        self.tokenizer.save_pretrained(save_directory)

    def check_languages(self, langs: Sequence[str] | None) -> list[str]:
        return self.model.check_languages(langs)

    def translate(
        self, texts: Sequence[str], langs: Sequence[str] | None = None, *, batch_size: int = 32,
        rows: Mapping[str, Sequence[bool]] | None = None, show_progress: bool = False, **generation,
    ) -> dict[str, list[str | None]]:
        """Texts -> {lang: [translation per text]}, in input order.

        Batches are built from length-sorted texts (less padding). `rows` limits a language to some texts
        ({lang: [bool per text]}; the others get None). Generation settings (`num_beams`, `max_new_tokens`,
        `length_penalty`, `no_repeat_ngram_size`) apply to every language; without them each language uses its
        generation config.
        """
        langs = self.check_languages(langs)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = {lang: [None] * len(texts) for lang in langs}
        device = self.model.device
        for start in tqdm(range(0, len(order), batch_size), disable=not show_progress, desc="translate", unit="batch"):
            idx = order[start : start + batch_size]
            enc = self.tokenizer.source(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_source_length,
                return_tensors="pt", return_token_type_ids=False,
            ).to(device)
            keep = {lang: torch.tensor([bool(rows[lang][i]) for i in idx]) for lang in langs if rows and lang in rows}
            wanted = [lang for lang in langs if lang not in keep or keep[lang].any()]
            generated = self.model.generate(**enc, langs=wanted, rows={k: v.to(device) for k, v in keep.items()},
                                            **generation)
            for lang, ids in generated.items():
                kept = [i for i, k in zip(idx, keep[lang].tolist()) if k] if lang in keep else idx
                for i, text in zip(kept, self.tokenizer[lang].decode_batch(ids.tolist())):
                    out[lang][i] = text
        return out

    def translate_stream(self, lines: Iterable[str], langs: Sequence[str] | None = None, *, chunk_size: int = 1024,
                         show_progress: bool = False, **kwargs) -> Iterable[dict]:
        """Lines -> one {"source": ..., lang: ...} dict per line, in input order, holding one chunk in memory."""
        langs = self.check_languages(langs)
        lines = iter(lines)
        with tqdm(disable=not show_progress, desc="translate", unit=" lines") as progress:
            while chunk := [line.rstrip("\n") for line in islice(lines, chunk_size)]:
                result = self.translate(chunk, langs, **kwargs)
                progress.update(len(chunk))
                for i, source in enumerate(chunk):
                    yield {"source": source, **{lang: result[lang][i] for lang in langs}}


def write_jsonl(records: Iterable[dict], stream) -> None:
    for record in records:
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        stream.flush()
