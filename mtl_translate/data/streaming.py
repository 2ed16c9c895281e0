"""The train split read as a stream (`streaming: true`): corpora larger than memory, sharded across processes,
resumed bit for bit.

`RowStream` reads one local file (JSON lines, CSV/TSV, parquet) record by record and checks each row as
loading.py checks a loaded split, when the row is read: an error names the file, the line and the field.
`StreamingRows` turns it into endless micro-batches for one process:

    file -> buffer shuffle (seeded by seed and epoch) -> rows checked, rows without a target skipped
         -> windows of whole global batches (grouped by source length with group_by_length) -> this process's slice

Every process reads and checks the whole stream (cheap next to tokenising and the model) and keeps its slice of
each global batch, as Accelerate's BatchSamplerShard does for map-style data: the shards are disjoint by
construction, N processes with batch B train on the rows one process with accumulation N trains on, and every
process stands at the same stream position. The first row of the next epoch (reshuffled) follows the last one of
an epoch: no length, no epoch loop, `max_steps` ends the run.

The position (epoch and records drawn from the shuffle where the current window starts, micro-batches done in it)
travels with each batch into the checkpoint. A resume replays the shuffle up to it without parsing the records it
passes (reads and random draws only) and goes on with the very batches the uninterrupted run had. datasets'
IterableDataset is not used: its `state_dict` drops the shuffle buffer, so a resumed run would see other rows.
"""

import csv
import itertools
import json
import os
import random
import zlib
from collections.abc import Callable, Iterator

import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset
from transformers.trainer_pt_utils import get_length_grouped_indices

from ..placeholders import mask_rows
from .loading import BUILDERS, SUFFIXES, RepeatedKey, split_files, unique_keys

WINDOW_BATCHES = 50  # group_by_length sorts this many global batches at a time (the mega-batch of HF's Trainer)


class RowStream:
    """One local split file, record by record: `records()` yields (line or row number, raw record) without parsing,
    `parse` checks one record and returns its `translation` dict, or None for a row without any target (skipped,
    as loading.py drops it)."""

    def __init__(self, dataset_name: str, split: str, source_lang: str, target_langs: list[str],
                 column_mapping: dict[str, str] | None = None, protect_placeholders: bool = False):
        self.langs, self.mapping = [source_lang, *target_langs], dict(column_mapping or {})
        self.protect = protect_placeholders  # mask placeholders as load_data masks a loaded split
        path = os.path.expanduser(dataset_name)
        if os.path.isdir(path):
            files = split_files(path)
            if split not in files:
                raise ValueError(f"{dataset_name}: no file for split {split!r}; found splits {sorted(files)}")
            path = files[split]
        extension = os.path.splitext(path)[1].lower()
        if not os.path.isfile(path) or extension not in BUILDERS:
            raise ValueError(f"streaming: {dataset_name} is not a local {SUFFIXES} file or a folder of split files; "
                             "streaming reads local files (write a Hub dataset to JSON lines first with "
                             "`mtl-translate build-data hub`), or set streaming: false.")
        self.path, self.format = path, BUILDERS[extension]
        if self.format == "json":
            with open(path, "rb") as f:
                if f.read(4096).lstrip().startswith(b"["):
                    raise ValueError(f"{path}: one JSON array cannot be streamed; write it as JSON lines (one object "
                                     "per line), or set streaming: false.")
        if self.format == "csv":  # every field is text, as loading.py reads it
            self.dialect = dict(delimiter="\t", quoting=csv.QUOTE_NONE) if extension == ".tsv" else \
                dict(delimiter=",", quoting=csv.QUOTE_MINIMAL)
            with open(path, encoding="utf-8-sig", newline="") as f:
                self.header = next(csv.reader(f, **self.dialect), [])

    def records(self) -> Iterator[tuple[int, object]]:
        """(number, raw record): a JSON line as bytes, a CSV record as its fields, a parquet row as a dict."""
        if self.format == "json":
            with open(self.path, "rb") as f:
                yield from ((number, line) for number, line in enumerate(f, 1) if line.strip())
        elif self.format == "csv":
            with open(self.path, encoding="utf-8-sig", newline="") as f:
                reader = csv.reader(f, **self.dialect)
                try:
                    next(reader)  # the header
                    yield from ((reader.line_num, fields) for fields in reader if fields)
                except (UnicodeDecodeError, csv.Error) as err:
                    raise ValueError(f"{self.path}: line {reader.line_num + 1} cannot be read ({err}); fix that line "
                                     "(the file must be UTF-8)") from None
        else:
            numbers = itertools.count(1)
            for batch in pq.ParquetFile(self.path).iter_batches():
                yield from zip(numbers, batch.to_pylist())

    def parse(self, number: int, raw) -> dict | None:
        where = f"{self.path}: {'row' if self.format == 'parquet' else 'line'} {number}"
        if self.format == "json":
            try:
                raw = json.loads(raw.decode("utf-8-sig"), object_pairs_hook=unique_keys)
            except UnicodeDecodeError:
                raise ValueError(f"{where} is not valid UTF-8; re-encode the file as UTF-8 (e.g. iconv -f latin1 -t "
                                 "utf-8)") from None
            except json.JSONDecodeError as err:
                raise ValueError(f"{where} is not valid JSON ({err.msg}); fix or remove that line") from None
            except RepeatedKey as err:
                raise ValueError(f"{where}: {err}") from None
            if not isinstance(raw, dict):
                raise ValueError(f"{where} is a {type(raw).__name__} ({str(raw)[:40]!r}), not an object like "
                                 '{"translation": {...}}; fix or remove it')
        elif self.format == "csv":
            if len(raw) != len(self.header):
                raise ValueError(f"{where} has {len(raw)} fields, expected {len(self.header)} (the header's columns: "
                                 f"{', '.join(self.header)}); fix that line")
            raw = dict(zip(self.header, raw))
        texts, fields = self.languages(raw, where)
        row = {lang: text_or_none(texts.get(lang), where, fields[lang]) for lang in self.langs}
        source = self.langs[0]
        if row[source] is None:
            raise ValueError(f"{where} has no source text in field {fields[source]}; every row needs a non-empty "
                             f"{source!r} string (fix or remove that row)")
        if not any(row[lang] for lang in self.langs[1:]):
            return None
        return mask_rows([row], source)[0][0] if self.protect else row

    def languages(self, raw: dict, where: str) -> tuple[dict, dict[str, str]]:
        """({lang: raw value}, {lang: field name for messages}) of one record, in any layout loading.py reads."""
        column = self.mapping.get("translation", "translation" if "translation" in raw and not self.mapping else None)
        if column is None:  # flat: one column per language
            columns = {lang: self.mapping.get(lang, lang) for lang in self.langs}
            return {lang: raw.get(name) for lang, name in columns.items()}, columns
        value = raw.get(column)
        if isinstance(value, dict) and set(value) == {"language", "translation"}:  # TranslationVariableLanguages
            value = parallel_lists(value, where, column)
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{where}: field {column} is a {type(value).__name__}, expected an object like "
                             f"{{{self.langs[0]!r}: ..., {self.langs[1]!r}: ...}}")
        return value or {}, {lang: f"{column}.{lang}" for lang in self.langs}

    def head(self, limit: int) -> list[dict]:
        """The first `limit` rows with a target, in file order: what the target tokenizers learn from
        (`tokenizer_train_rows`), since SentencePiece holds its texts in memory."""
        rows = list(itertools.islice(filter(None, itertools.starmap(self.parse, self.records())), limit))
        if not rows:
            raise ValueError(f"{self.path}: no row has any of the target languages {self.langs[1:]}; check "
                             "target_langs or the data")
        missing = [lang for lang in self.langs[1:] if not any(row[lang] for row in rows)]
        if missing:
            raise ValueError(f"{self.path}: the first {len(rows)} rows have no {missing} target, and the target "
                             f"tokenizers learn from the first tokenizer_train_rows={limit} rows; check the language "
                             "code or column_mapping, shuffle the file, or raise tokenizer_train_rows.")
        return rows


def text_or_none(value, where: str, field: str) -> str | None:
    """A stripped text; None, empty or blank is a missing one. Anything but a string is an error."""
    if value is None or isinstance(value, str):
        return (value or "").strip() or None
    raise ValueError(f"{where}: field {field} is a {type(value).__name__} ({str(value)[:40]!r}), not a string; "
                     "translations must be text (quote it, or fix that row)")


def parallel_lists(value: dict, where: str, field: str) -> dict:
    """`{"language": [codes], "translation": [texts]}` -> `{code: text}`; a repeated code keeps its first text."""
    codes, texts = value["language"] or [], value["translation"] or []
    if not (isinstance(codes, list) and isinstance(texts, list) and len(codes) == len(texts)
            and all(isinstance(code, str) for code in codes)):
        raise ValueError(f"{where}: field {field} ({str(value)[:60]!r}) is not two equal-length lists "
                         "{'language': [codes], 'translation': [texts]}; fix that row")
    return dict(reversed(list(zip(codes, texts))))


def buffer_shuffled(records: Iterator, rng: random.Random, size: int) -> Iterator:
    """A stream in random order through a buffer of `size` records (as tf.data and datasets shuffle): each record
    read replaces a random one of the buffer, which is yielded; the last `size` come out in random order."""
    buffer = []
    for record in records:
        if len(buffer) < size:
            buffer.append(record)
            continue
        i = rng.randrange(size)
        yield buffer[i]
        buffer[i] = record
    rng.shuffle(buffer)
    yield from buffer


class StreamingRows(IterableDataset):
    """Endless micro-batches of one process: items `{"rows": [batch_size rows {"translation": {...}}], "position":
    ...}`, the position being where the stream stands after these rows (`resume` starts there). `source_lengths`:
    the `{lang: text}` rows' source lengths for `group_by_length` (the collator's, in tokens; default: characters)."""

    def __init__(self, stream: RowStream, seed: int, buffer_size: int, batch_size: int, num_processes: int = 1,
                 process_index: int = 0, accumulation: int = 1, group_by_length: bool = False,
                 source_lengths: Callable[[list[dict]], list[int]] | None = None):
        self.stream, self.seed, self.buffer_size, self.group_by_length = stream, seed, buffer_size, group_by_length
        self.source_lengths = source_lengths or (lambda rows: [len(row[stream.langs[0]]) for row in rows])
        self.batch_size, self.num_processes, self.process_index = batch_size, num_processes, process_index
        self.global_batch = batch_size * num_processes * accumulation  # rows of one optimizer step
        self.window = self.global_batch * (WINDOW_BATCHES if group_by_length else 1)
        self.position = {"epoch": 0, "drawn": 0, "batches": 0}

    def resume(self, position: dict) -> None:
        self.position = dict(position)

    def __iter__(self) -> Iterator[dict]:
        epoch, drawn, done = self.position["epoch"], self.position["drawn"], self.position["batches"]
        rows = self.rows_from(epoch, drawn)
        micro = self.batch_size * self.num_processes  # rows of one micro-batch of every process
        mine = self.process_index * self.batch_size
        while True:
            window = list(itertools.islice(rows, self.window))  # (row, position after it)
            order = self.order([row for row, _ in window], epoch, drawn)
            for j in range(done, self.window // micro):
                slice_ = order[j * micro + mine: j * micro + mine + self.batch_size]
                yield {"rows": [{"translation": window[i][0]} for i in slice_],
                       "position": {"epoch": epoch, "drawn": drawn, "batches": j + 1}}
            (epoch, drawn), done = window[-1][1], 0

    def rows_from(self, epoch: int, drawn: int) -> Iterator[tuple[dict, tuple[int, int]]]:
        """Checked rows with a target from (epoch, records drawn) on, forever, each with the position after it."""
        while True:
            records = buffer_shuffled(self.stream.records(), random.Random(f"{self.seed}/{epoch}"), self.buffer_size)
            found = drawn > 0  # a resume near the end of an epoch may find no row left in it
            for k, record in enumerate(records, 1):
                row = self.stream.parse(*record) if k > drawn else None
                if row is not None:
                    found = True
                    yield row, (epoch, k)
            if not found:
                raise ValueError(f"{self.stream.path}: no row has any of the target languages "
                                 f"{self.stream.langs[1:]}; check target_langs or the data")
            epoch, drawn = epoch + 1, 0

    def order(self, rows: list[dict], epoch: int, drawn: int) -> list[int]:
        """The window's rows in training order: as drawn, or global batches of similar source length (less
        padding), seeded by where the window starts."""
        if not self.group_by_length:
            return list(range(len(rows)))
        generator = torch.Generator().manual_seed(zlib.crc32(f"{self.seed}/{epoch}/{drawn}".encode()))
        return get_length_grouped_indices(self.source_lengths(rows), self.global_batch, WINDOW_BATCHES, generator)
