"""Translate to all target languages at once: the encoder runs once per batch, every requested head decodes."""

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice

import torch
from safetensors import SafetensorError
from tqdm.auto import tqdm

from .columns import in_columns
from .generation import COUNTED
from .modeling_mtl import MTLTranslationModel
from .placeholders import MAX_SPANS, in_source_order, mask, restore, term_pattern
from .segmentation import join_pieces, keep_layout, split_text
from .tokenization_mtl import MTLTokenizer, load_config, local_folder

logger = logging.getLogger(__name__)


class Translator:
    """A trained model + its tokenizers: `Translator.from_pretrained(dir_or_repo).translate(texts, langs)`.

    `max_source_length` (source tokens kept per text) defaults to the one the model was trained with, saved in its
    config; folders saved before it was get 128. Longer inputs are truncated with a warning that counts them."""

    def __init__(self, model: MTLTranslationModel, tokenizer: MTLTokenizer, max_source_length: int | None = None):
        if max_source_length is not None and (isinstance(max_source_length, bool) or not isinstance(
                max_source_length, int) or max_source_length < 1):
            raise ValueError(f"max_source_length must be an integer >= 1 (source tokens kept per text), got "
                             f"{max_source_length!r}.")
        self.model, self.tokenizer = model.eval(), tokenizer
        model.record_byte_pieces(tokenizer.targets)  # decoding keeps byte pieces valid UTF-8; saved with the model
        model.record_mask_pieces(tokenizer.targets)  # and places every mask token of a source once
        model.record_counted_pieces(tokenizer.targets)  # and writes its brackets, <>, tabs and % as often
        self.max_source_length = max_source_length or getattr(model.config, "max_source_length", None) or 128

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str | None = None, max_source_length: int | None = None,
                        **kwargs) -> "Translator":
        """A model folder or Hub repo id. A folder is checked before anything loads: a missing file, a damaged one or
        parts that do not fit together are errors naming the path and the file. Weights load from safetensors only
        (a pickle file can run code when loaded), and no code from the folder runs (our classes, no remote code).
        `max_source_length` as in the constructor; the other keyword arguments go to the Hub download."""
        folder = local_folder(name_or_path)
        name_or_path = folder or name_or_path  # "~/model" expanded
        config = load_config(name_or_path, **kwargs)
        if folder:
            check_weights_file(folder)
        tokenizer = MTLTokenizer.from_pretrained(name_or_path, config=config, **kwargs)
        try:
            model, info = MTLTranslationModel.from_pretrained(name_or_path, config=config, use_safetensors=True,
                                                              output_loading_info=True, **kwargs)
        except (RuntimeError, SafetensorError) as err:
            raise ValueError(f"{name_or_path}: model.safetensors does not load with its config.json ({err}); the file "
                             f"is damaged or belongs to another model.") from None
        if info["missing_keys"]:
            missing = sorted(info["missing_keys"])
            raise ValueError(f"{name_or_path}: model.safetensors lacks {len(missing)} weights that config.json needs "
                             f"(e.g. {missing[:3]}); the weights belong to another model.")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(model.to(device), tokenizer, max_source_length)

    def save_pretrained(self, save_directory: str, **kwargs) -> None:
        """One folder: config.json, model.safetensors, generation_config.json, tokenizers/{source,<lang>}/."""
        self.model.save_pretrained(save_directory, **kwargs)
        self.tokenizer.save_pretrained(save_directory)

    def check_languages(self, langs: str | Sequence[str] | None) -> list[str]:
        """`langs` as a list of the model's languages (None: all); a str is one language ("de"), not its letters."""
        return self.model.check_languages([langs] if isinstance(langs, str) else langs)

    def check_request(self, langs: Sequence[str] | None, batch_size: int, generation: dict) -> list[str]:
        """Languages, batch size and generation settings are checked once per call, before any work (a stream
        fails before reading its first line)."""
        langs = self.check_languages(langs)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
        settings = {k: v for k, v in generation.items() if k != "stacked"}  # `stacked` is generate's own switch
        for lang in langs:
            self.model.generation_settings(lang, **settings)
        return langs

    def translate(
        self, texts: Sequence[str], langs: Sequence[str] | None = None, *, batch_size: int = 32,
        rows: Mapping[str, Sequence[bool]] | None = None, show_progress: bool = False,
        terms: Mapping[str, Mapping[str, str]] | None = None, return_confidence: bool = False, **generation,
    ) -> dict[str, list[str | None]] | tuple[dict[str, list[str | None]], dict[str, list[float | None]]]:
        """Texts -> {lang: [translation per text]}, in input order.

        Batches are built from length-sorted texts (less padding). `rows` limits a language to some texts
        ({lang: [bool per text]}; the others get None). A blank text gets "" without a model call (a decoder
        given nothing would invent a sentence). Generation settings (`num_beams`, `max_new_tokens`,
        `length_penalty`, `no_repeat_ngram_size`) apply to every language; without them each language uses its
        generation config. Texts longer than `max_source_length` tokens are truncated, with one warning per call.
        `terms` (a glossary's, {term: {lang: its required translation}}) are masked like placeholders wherever they
        occur as whole words (case-sensitive) and restored as the language's translation, or as written where it
        has none: the model never sees them, so it cannot change them (the grammar around one may suffer).

        `return_confidence`: also {lang: [confidence per text]}, exp(mean token log-probability) of each output
        under the model, in (0, 1] (a text translated in pieces: its least confident piece; None where no
        translation was made). Low values flag translations to review first (docs/results.md: how it ranks quality).
        """
        out, truncated, confidence = self.translate_scored(texts, langs, batch_size, rows, show_progress, generation,
                                                           return_confidence, terms)
        self.warn_truncated(truncated, len(texts))
        return (out, confidence) if return_confidence else out

    def translate_counting(self, texts, langs=None, *, batch_size=32, rows=None, show_progress=False, terms=None,
                           **generation) -> tuple[dict, int]:
        """`translate`, plus how many texts were truncated (the caller warns, once per call or per stream)."""
        out, truncated, _ = self.translate_scored(texts, langs, batch_size, rows, show_progress, generation, False,
                                                  terms)
        return out, truncated

    def translate_scored(self, texts, langs, batch_size, rows, show_progress, generation,
                         scored: bool, terms=None) -> tuple[dict, int, dict | None]:
        """`translate_counting`, plus each output's confidence where `scored` (else None).

        In a `--help` option table only the descriptions are translated; the option column keeps its names and
        alignment, its metavariables translated as the training catalogs do (columns.py, metavariables.py). A text with several lines, or longer than `max_source_length`, is translated piece by piece
        (segmentation.py): each line keeps its indentation and line break, and a long line is cut at sentence ends
        and option items; only a piece that cannot be cut further is truncated."""
        langs = self.check_request(langs, batch_size, generation)
        if isinstance(texts, str):  # would be translated letter by letter
            raise ValueError("texts is one str; pass a list of str (one text: [text]).")
        bad = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
        if bad is not None:
            raise ValueError(f"texts[{bad}] is {type(texts[bad]).__name__}, not a string.")
        if terms and not getattr(self.model.config, "protect_placeholders", False):
            raise ValueError("a glossary's terms are kept by masking them as placeholders, and this model was trained "
                             "without placeholder masking (protect_placeholders: false); train with it, or translate "
                             "without the glossary.")
        truncated = []

        def translate(parts, part_rows):
            out, n, confidence = self.translate_lines(parts, langs, batch_size, part_rows, show_progress, generation,
                                                      scored, terms)
            truncated.append(n)
            return out, confidence

        out, confidence = in_columns(texts, langs, rows, translate, self.metavariables)
        return out, sum(truncated), confidence

    def translate_lines(self, texts, langs, batch_size, rows, show_progress, generation, scored: bool,
                        terms) -> tuple[dict, int, dict | None]:
        """`translate_scored` of texts without option tables: long or multi-line ones piece by piece."""
        split = [None if not text.strip() or self.fits_as_is(text) else split_text(text, self.fits) for text in texts]
        if not any(split):
            return self.translate_pieces(texts, langs, batch_size, rows, show_progress, generation, scored, terms)
        groups = [parts[0] if parts else [text] for text, parts in zip(texts, split)]  # each text's pieces
        owner = [i for i, group in enumerate(groups) for _ in group]
        pieces = [piece for group in groups for piece in group]
        piece_rows = {lang: [rows[lang][i] for i in owner] for lang in rows} if rows else None
        done, truncated, sure = self.translate_pieces(pieces, langs, batch_size, piece_rows, show_progress, generation,
                                                      scored, terms)
        starts = [0]
        for group in groups:
            starts.append(starts[-1] + len(group))
        out = {lang: [] for lang in langs}
        confidence = {lang: [] for lang in langs} if scored else None
        for lang in langs:
            for i, parts in enumerate(split):
                got = done[lang][starts[i] : starts[i + 1]]
                if parts is None:
                    out[lang].append(got[0])
                else:
                    out[lang].append(None if None in got else join_pieces(got, parts[1]))
                if scored:
                    known = [c for c in sure[lang][starts[i] : starts[i + 1]] if c is not None]
                    confidence[lang].append(min(known) if known and out[lang][-1] is not None else None)
        return out, truncated, confidence

    @property
    def metavariables(self) -> dict[str, dict[str, str]]:
        """{lang: {FILE: DATEI}}: how the training catalogs translate option values (metavariables.py)."""
        return getattr(self.model.generation_config, "metavariables", None) or {}

    def fits_as_is(self, text: str) -> bool:
        """One line, no surrounding blanks, short enough: translated whole. Up to `max_source_length` - 2
        characters no token count is needed (a token spans a character at least; 2 special tokens)."""
        if "\n" in text or text != text.strip():
            return False
        return len(text) + 2 <= self.max_source_length or self.fits(text)

    def fits(self, piece: str) -> bool:
        if getattr(self.model.config, "protect_placeholders", False):
            piece = mask(piece)[0]
        return len(self.tokenizer.source(piece, verbose=False)["input_ids"]) <= self.max_source_length

    def translate_pieces(self, texts, langs, batch_size, rows, show_progress, generation,
                         scored: bool, terms=None) -> tuple[dict, int, dict | None]:
        """Texts that fit (or cannot be cut) -> {lang: [translation or None]}, how many were truncated, and where
        `scored` {lang: [confidence or None]}. A masked text's outputs hold each of its mask tokens once
        (`generate`'s `required_masks`), so every protected span is restored."""
        protect = getattr(self.model.config, "protect_placeholders", False)  # absent in models saved before it
        terms = terms or {}
        pattern = term_pattern(terms) if terms else None
        masked = [mask(text, pattern) for text in texts] if protect else [(text, []) for text in texts]  # (input, spans)
        wanted = {lang: [bool(x) for x in rows[lang]] if rows and lang in rows else None for lang in langs}
        blank = [not text.strip() for text in texts]
        out = {lang: ["" if blank[i] and (wanted[lang] is None or wanted[lang][i]) else None for i in range(len(texts))]
               for lang in langs}
        confidence = {lang: [None] * len(texts) for lang in langs} if scored else None
        order = sorted((i for i in range(len(texts)) if not blank[i]), key=lambda i: len(texts[i]))
        lengths = self.tokenizer.source([masked[i][0] for i in order], verbose=False, return_attention_mask=False,
                                        return_token_type_ids=False)["input_ids"] if order else []  # untruncated
        truncated = sum(len(ids) > self.max_source_length for ids in lengths)
        device = self.model.device
        for start in tqdm(range(0, len(order), batch_size), disable=not show_progress, desc="translate", unit="batch"):
            idx = order[start : start + batch_size]
            enc = self.tokenizer.source(
                [masked[i][0] for i in idx], padding=True, truncation=True, max_length=self.max_source_length,
                return_tensors="pt", return_token_type_ids=False,
            ).to(device)
            keep = {lang: torch.tensor([wanted[lang][i] for i in idx]) for lang in langs if wanted[lang] is not None}
            needed = [lang for lang in langs if lang not in keep or keep[lang].any()]
            required = torch.tensor([[k < len(masked[i][1]) for k in range(MAX_SPANS)] for i in idx],
                                    device=device) if protect else None  # (B, K): the source holds ⟨k⟩
            ordered = torch.tensor([(in_source_order(masked[i][1]) + [False] * MAX_SPANS)[:MAX_SPANS] for i in idx],
                                   device=device) if protect else None  # (B, K): ⟨k⟩ is a conversion, kept in order
            counts = torch.tensor([[masked[i][0].count(ch) for ch in COUNTED] for i in idx],
                                  device=device) if protect else None  # (B, C): brackets, <>, tabs, % outside spans
            generated = self.model.generate(**enc, langs=needed, rows={k: v.to(device) for k, v in keep.items()},
                                            required_masks=required, ordered_masks=ordered, required_counts=counts,
                                            mean_logprobs=scored, **generation)
            generated, logprobs = generated if scored else (generated, None)
            for lang, ids in generated.items():
                kept = [i for i, k in zip(idx, keep[lang].tolist()) if k] if lang in keep else idx
                for i, text in zip(kept, self.tokenizer[lang].decode_batch(ids.tolist())):
                    spans = [terms[span].get(lang, span) if span in terms else span for span in masked[i][1]]
                    text = keep_layout(text, masked[i][0])  # before restoring: a span's own blanks stay
                    out[lang][i] = restore(text, spans, masked[i][0])[0] if protect else text
                if scored:
                    for i, logprob in zip(kept, logprobs[lang].tolist()):
                        confidence[lang][i] = math.exp(logprob)
        return out, truncated, confidence

    def warn_truncated(self, truncated: int, total: int) -> None:
        if truncated:
            logger.warning(f"{truncated} of {total} inputs were longer than max_source_length={self.max_source_length} "
                           f"tokens and were truncated (the model was trained on sources of at most that length).")

    def translate_stream(self, lines: Iterable[str], langs: Sequence[str] | None = None, *, chunk_size: int = 1024,
                         batch_size: int = 32, show_progress: bool = False, **generation) -> Iterator[dict]:
        """Lines -> one {"source": ..., lang: ...} dict per line, in input order, holding one chunk in memory.

        Arguments are checked now, before a line is read; line endings ("\\n", "\\r\\n") are stripped; one warning at
        the end counts the truncated lines of the whole stream."""
        langs = self.check_request(langs, batch_size, generation)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}.")

        def records():
            truncated = total = 0
            lines_ = iter(lines)
            with tqdm(disable=not show_progress, desc="translate", unit=" lines") as progress:
                while chunk := [line.rstrip("\r\n") for line in islice(lines_, chunk_size)]:
                    result, n = self.translate_counting(chunk, langs, batch_size=batch_size, rows=None,
                                                        show_progress=False, **generation)
                    truncated, total = truncated + n, total + len(chunk)
                    progress.update(len(chunk))
                    for i, source in enumerate(chunk):
                        yield {"source": source, **{lang: result[lang][i] for lang in langs}}
            self.warn_truncated(truncated, total)

        return records()


def check_weights_file(folder: str) -> None:
    """The weights are in `model.safetensors` (or its sharded index); a folder with only a pickle is refused."""
    if any(os.path.isfile(os.path.join(folder, f"model.safetensors{end}")) for end in ("", ".index.json")):
        return
    if os.path.isfile(os.path.join(folder, "pytorch_model.bin")):
        raise ValueError(f"{folder} has pytorch_model.bin but no model.safetensors: weights are loaded from "
                         f"safetensors only, because loading a pickle file can run code. Convert it where you trust it "
                         f"(load the model with torch, then model.save_pretrained writes model.safetensors).")
    raise FileNotFoundError(f"{folder} has no model.safetensors (the weights): the copy is incomplete or the model "
                            f"was never saved there.")


def read_lines(stream, name: str) -> Iterator[str]:
    """UTF-8 lines of a binary stream, decoded one by one so that a bad byte is an error naming its line (a UTF-8
    byte-order mark on the first line is dropped). Lines keep their ending; only "\\n" ends a line."""
    for number, raw in enumerate(stream, 1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{name}: line {number} is not valid UTF-8 (byte 0x{raw[err.start]:02x} at byte "
                             f"{err.start + 1} of the line); convert the input to UTF-8, e.g. with "
                             f"`iconv -f <its encoding> -t utf-8`.") from None


def write_jsonl(records: Iterable[dict], stream) -> None:
    for record in records:
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        stream.flush()
