"""Load a multi-target translation dataset and normalise it to the `translation` convention.

Every split comes out with exactly one column, `translation`: a dict holding the source
language and every requested target, each a stripped `str` or `None` (= missing; targets are
sparse). Bad input fails early with a `ValueError` that names the file, the row and the field,
because a typo in a language code or one broken line would otherwise surface as an opaque
pyarrow traceback, or worse as a silently empty language, hours into training.

Row numbers in messages are 1-based: the line number for JSON-lines files (blank lines are
skipped by the loader, so the row index is not the line), the row number otherwise.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence

import datasets
import pyarrow as pa
import pyarrow.json as paj

logger = logging.getLogger(__name__)

BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}
SUFFIXES = "/".join(BUILDERS)
METADATA_FILES = {"stats.json"}  # what `build-data` writes next to the splits: not a split


def load_multitarget_dataset(
    dataset_name: str,
    source_lang: str,
    target_langs: Sequence[str],
    split: str | None = None,
    dataset_config: str | None = None,
    column_mapping: Mapping[str, str] | None = None,
) -> datasets.Dataset | datasets.DatasetDict:
    """Load `dataset_name` (a local file, a directory of `<split>.<ext>` files, or a Hub id).

    Returns the Dataset of `split`, or a DatasetDict of every split found when `split` is None.
    Rows with none of the requested targets are useless for training: they are dropped and the
    count is logged as a WARNING. `column_mapping` is `{lang: column}` for flat layouts (languages not
    in it default to a column named after the code) or `{"translation": column}` when the
    translation dict lives in another column. That column may also hold the parallel lists of
    HF `TranslationVariableLanguages` (e.g. neulab/ted_multi, column "translations"):
    `{"language": ["de", "en"], "translation": ["Hallo", "Hello"]}`; it is detected automatically,
    a language absent from a row is a missing target, and a language listed twice in one row keeps
    its first text. `dataset_config` only applies to Hub datasets.
    """
    targets = list(dict.fromkeys(target_langs))
    if not targets:
        raise ValueError("target_langs is empty; pass at least one target language code")
    if source_lang in targets:
        raise ValueError(f"source language {source_lang!r} is also in target_langs; remove it from the targets")
    langs = [source_lang, *targets]
    mapping = dict(column_mapping or {})
    unknown = [k for k in mapping if k != "translation" and k not in langs]
    if unknown:
        raise ValueError(f"column_mapping keys {unknown} are neither 'translation' nor a requested language {langs}")
    if "translation" in mapping and len(mapping) > 1:
        raise ValueError("column_mapping is either {'translation': column} or {lang: column, ...}, not both")

    out = {}
    for name, (ds, where, path) in _load_raw(dataset_name, split, dataset_config).items():
        out[name] = _normalise(ds, where, path, langs, mapping)
    return out[split] if split is not None else datasets.DatasetDict(out)


def load_splits(data, langs: Sequence[str], names: Sequence[str], seed: int) -> dict[str, datasets.Dataset]:
    """The splits `names` of a recipe's data (`data`: its DataArguments). A single file has no splits, and using it
    whole as train, validation and test would report test scores measured on training rows. So, like transformers'
    examples with `validation_split_percentage`, a seeded share of its rows is held out: `held_out_split` puts
    `test_split_percentage` % of its source texts in the test split, `validation_split_percentage` % in the
    validation split, the rest in the train split. A row's split depends on its source text and the seed only:
    every copy of a sentence lands in the same split, and runs that read other languages of the file (`compare`'s
    single-task models) hold out the same rows."""
    kwargs = dict(dataset_config=data.dataset_config, column_mapping=data.column_mapping or None)
    if not is_single_file(data.dataset_name):
        return {name: load_multitarget_dataset(data.dataset_name, data.source_lang, langs, split=name, **kwargs)
                for name in names}
    if data.streaming:  # `names` are the splits held out of the streamed train split
        if names:
            raise ValueError(f"dataset_name {data.dataset_name} is one file: its {' and '.join(names)} rows would be "
                             "held out of it, which a stream cannot do. Split it into train/validation/test files in "
                             "a folder, set validation_split and test_split to null, or set streaming: false.")
        return {}
    rows = load_multitarget_dataset(data.dataset_name, data.source_lang, langs, split="train", **kwargs)
    shares = {data.test_split: data.test_split_percentage, data.validation_split: data.validation_split_percentage}
    chosen = [held_out_split(row[data.source_lang], seed, shares) or data.train_split for row in rows["translation"]]
    parts = {name: rows.select([i for i, split in enumerate(chosen) if split == name]) for name in names}
    empty = [name for name, part in parts.items() if not len(part)]
    if empty:
        raise ValueError(f"dataset_name {data.dataset_name} is one file of {len(rows)} rows, and the seeded share of "
                         f"it for {', '.join(empty)} drew no row: raise test_split_percentage / "
                         "validation_split_percentage, or give a folder of train/validation/test files.")
    return parts


def held_out_split(source: str, seed: int, shares: Mapping[str | None, float]) -> str | None:
    """The split ({name: percent}, in order; a None name holds out nothing) a source text falls in, from a seeded
    hash of it: uniform in [0, 100), stable across runs, machines and row orders; None for the rest."""
    digest = hashlib.sha256(f"{seed}\0{source}".encode()).digest()
    point, bound = int.from_bytes(digest[:8], "big") / 2**64 * 100, 0.0
    for name, percent in shares.items():
        bound += percent
        if point < bound:
            return name
    return None


def is_single_file(dataset_name: str) -> bool:
    """A local file, as opposed to a folder of split files or a Hub dataset (which have splits)."""
    return os.path.isfile(os.path.expanduser(dataset_name))


def sample_rows(ds: datasets.Dataset, limit: int | None, seed: int) -> list[dict]:
    """The `translation` dicts of a seeded random sample of `limit` rows (all rows when None); files may be sorted,
    so evaluation samples rather than taking the head. Training, `evaluate` and `compare` draw the same sample."""
    limit = min(limit or len(ds), len(ds))
    return ds.shuffle(seed=seed).select_columns(["translation"])[:limit]["translation"]


def language_coverage(ds: datasets.Dataset, langs: Sequence[str]) -> dict[str, int]:
    """Rows with a non-missing value per language (arrow null counts: no Python loop)."""
    table = ds.select_columns(["translation"]).with_format("arrow")[:].flatten()
    cols = set(table.column_names)
    return {
        lang: len(table) - table.column(f"translation.{lang}").null_count if f"translation.{lang}" in cols else 0
        for lang in langs
    }


# ---------------------------------------------------------------------------------- loading


def _load_raw(name: str, split: str | None, config: str | None) -> dict[str, tuple]:
    """Map split -> (raw Dataset, where-label for messages, local path or None)."""
    path = os.path.expanduser(name)
    if os.path.isdir(path):
        files = split_files(path)
        if split is not None:
            if split not in files:
                raise ValueError(f"{name}: no file for split {split!r}; found splits {sorted(files)}")
            files = {split: files[split]}
        return {s: (_load_file(f, s), f, f) for s, f in files.items()}
    if os.path.isfile(path):
        return {split or "train": (_load_file(path, split or "train"), name, path)}
    if os.path.splitext(path)[1].lower() in BUILDERS or name.startswith((".", "/", "~")):
        raise ValueError(
            f"{name}: no such file or directory; expected a local {SUFFIXES} file, "
            "a directory of split files (train.jsonl, validation.jsonl, ...), or a Hub dataset id"
        )
    return _load_hub(name, split, config)


def split_files(directory: str) -> dict[str, str]:
    """`<split>.<ext>` files in a directory: the file stem is the split name."""
    files: dict[str, str] = {}
    for entry in sorted(os.listdir(directory)):
        stem, ext = os.path.splitext(entry)
        full = os.path.join(directory, entry)
        if ext.lower() not in BUILDERS or entry.startswith(".") or entry in METADATA_FILES or not os.path.isfile(full):
            continue
        if stem in files:
            raise ValueError(f"{directory}: two files for split {stem!r} ({files[stem]}, {full}); keep one")
        files[stem] = full
    if not files:
        raise ValueError(
            f"{directory}: no split files found; looked for <split>{{{SUFFIXES.replace('/', ',')}}} "
            "such as train.jsonl, validation.jsonl, test.jsonl"
        )
    return files


def _load_file(path: str, split: str) -> datasets.Dataset | pa.Table | dict[str, list]:
    """Load one local file as one split, checking encoding, JSON and CSV field counts ourselves for precise errors.

    JSON lines are read by pyarrow itself, not the datasets json builder: the builder fixes its schema on the first
    10 MB (a language first seen later, or null there, fails the load) and re-encodes rows whose keys vary with
    ujson, which silently keeps the last of a key repeated in one object; pyarrow refuses repeated keys and
    widens its schema as it reads. What pyarrow cannot read is parsed again with `json` to name the line.
    """
    ext = os.path.splitext(path)[1].lower()
    builder, kwargs = BUILDERS[ext], {}
    if builder != "parquet":
        text = _read_utf8(path)
        if not text.strip():
            raise ValueError(f"{path}: file is empty; it needs at least one row")
    if builder == "json":
        if not _is_json_lines(path, text):
            return _parse_json(path, text)  # one array: needs a whole-file parse anyway
        try:
            return paj.read_json(path)
        except pa.ArrowException as err:  # a value that changes type, a broken line
            logger.info("%s: pyarrow could not read it (%s); parsing it with json instead", path, err)
            return _parse_json(path, text)
    if builder == "csv":
        # Read every column as text: "NA", "null", "1984" are sentences too, not NaN or ints.
        delimiter = "\t" if ext == ".tsv" else ","
        quoting = csv.QUOTE_NONE if ext == ".tsv" else csv.QUOTE_MINIMAL  # MT corpora hold bare quotes: TSV has none
        header = _check_csv_fields(path, text, delimiter, quoting)
        features = datasets.Features({col: datasets.Value("string") for col in header})
        kwargs = dict(delimiter=delimiter, keep_default_na=False, features=features, quoting=quoting)
    try:
        return datasets.load_dataset(builder, data_files={split: path}, split=split, **kwargs)
    except Exception as err:  # datasets/pyarrow errors are opaque
        raise ValueError(f"{path}: could not be loaded as {ext[1:]}: {err}") from err


def _check_csv_fields(path: str, text: str, delimiter: str, quoting: int) -> list[str]:
    """The header, after checking that every record has as many fields as it: pandas fills a short row with
    empty values and turns the extra field of a long one into an index, shifting the row (~10% of the load time)."""
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))  # a long sentence is data, not an error
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), delimiter=delimiter, quoting=quoting)
    header = next(reader)
    repeated = sorted({col for col in header if header.count(col) > 1})
    if repeated:
        raise ValueError(f"{path}: column(s) {repeated} appear twice in the header; rename or remove one")
    hint = "quote a field that holds a comma" if delimiter == "," else "a field cannot hold a tab"
    rows = 0
    for fields in reader:
        if fields and len(fields) != len(header):
            raise ValueError(
                f"{path}: line {reader.line_num} has {len(fields)} fields, expected {len(header)} "
                f"(the header's columns: {', '.join(header)}); fix that line ({hint})"
            )
        rows += bool(fields)
    if not rows:
        raise ValueError(f"{path}: only a header ({', '.join(header)}), no rows; it needs at least one row")
    return header


def _load_hub(name: str, split: str | None, config: str | None) -> dict[str, tuple]:
    label = name + (f" ({config})" if config else "")
    try:
        loaded = datasets.load_dataset(name, config, split=split)
    except Exception as err:
        raise ValueError(
            f"could not load Hub dataset {label!r} (split {split!r}): {err}. "
            f"There is no local file or directory named {name!r} either; check the id, config and split."
        ) from err
    if isinstance(loaded, datasets.Dataset):
        return {split or "train": (loaded, f"{label} split {split or 'train'!r}", None)}
    if not isinstance(loaded, datasets.DatasetDict):
        raise ValueError(f"{label}: got {type(loaded).__name__}; streaming datasets are not supported")
    return {s: (ds, f"{label} split {s!r}", None) for s, ds in loaded.items()}


def _read_utf8(path: str) -> str:
    """Decode the whole file once: cheap, and the only way to name the bad line."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ValueError(
            f"{path}: line {line} is not valid UTF-8 (byte {raw[err.start]:#04x}); "
            "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def _is_json_lines(path: str, text: str) -> bool:
    return path.lower().endswith(".jsonl") or not text.lstrip().startswith("[")


class RepeatedKey(ValueError):
    """A key given twice in one JSON object; the caller adds the file and line."""


def unique_keys(pairs: list[tuple]) -> dict:
    """`object_pairs_hook`: json would silently keep the last of a repeated key, losing a translation."""
    obj = dict(pairs)
    if len(obj) < len(pairs):
        key = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise RepeatedKey(f"key {key!r} appears twice in one object ({str(pairs)[:80]}); keep one of them")
    return obj


def _parse_json(path: str, text: str) -> dict[str, list]:
    """JSON lines (or one array of objects) parsed with `json` into columns `{name: [value or None per row]}`.

    Slower than pyarrow (~9 s against ~2-4 s per million lines), so only used for arrays and when pyarrow fails;
    every problem names its line.
    """
    if _is_json_lines(path, text):
        numbers, rows = [], []
        for number, line in enumerate(text.split("\n"), 1):  # not splitlines: U+2028 is valid inside a JSON string
            if line.strip():
                try:
                    rows.append(json.loads(line, object_pairs_hook=unique_keys))
                except json.JSONDecodeError as err:
                    problem = f"line {number} is not valid JSON ({err.msg}); fix or remove that line"
                    raise ValueError(f"{path}: {problem}") from err
                except RepeatedKey as err:
                    raise ValueError(f"{path}: line {number}: {err}") from None
                numbers.append(number)
        what = "line"
    else:
        try:
            rows = json.loads(text, object_pairs_hook=unique_keys)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: line {err.lineno} is not valid JSON ({err.msg}); fix that line") from err
        except RepeatedKey as err:
            raise ValueError(f"{path}: {err}") from None
        numbers, what = range(1, len(rows) + 1), "row"
    for number, row in zip(numbers, rows):
        if not isinstance(row, dict):
            raise ValueError(
                f"{path}: {what} {number} is a {type(row).__name__} ({str(row)[:40]!r}), not an object like "
                '{"translation": {...}}; fix or remove it'
            )
    names = dict.fromkeys(key for row in rows for key in row)
    return {name: [row.get(name) for row in rows] for name in names}


# ------------------------------------------------------------------------------ normalising


def _normalise(ds: datasets.Dataset | pa.Table | dict, where: str, path: str | None, langs: list[str], mapping: dict):
    """Validate every row and rebuild the split as a single `translation` struct column."""
    source, targets = langs[0], langs[1:]
    columns = list(ds) if isinstance(ds, dict) else ds.column_names
    dict_col = mapping.get("translation", "translation" if "translation" in columns and not mapping else None)

    if dict_col is not None:  # layout: {"translation": {"en": ..., "de": ...}} or parallel lists
        if dict_col not in columns:
            raise ValueError(f"{where}: no column {dict_col!r} (columns: {', '.join(columns)}); fix column_mapping")
        rows = _read_columns(ds, [dict_col])[dict_col]
        for i, row in enumerate(rows):
            if isinstance(row, dict) and set(row) == {"language", "translation"}:  # TranslationVariableLanguages
                rows[i] = row = lists_to_dict(row, where, path, i, dict_col)
            if row is not None and not isinstance(row, dict):
                raise ValueError(
                    f"{_row(where, path, i)}: field {dict_col} is a {type(row).__name__}, "
                    f"expected an object like {{{source!r}: ..., {targets[0]!r}: ...}}"
                )
        rows = [row or {} for row in rows]
        present = set().union(*(r for r in rows if r)) if rows else set()
        _check_languages(where, langs, {lang for lang in langs if lang in present}, sorted(present), "translation keys")
        fields = {lang: f"{dict_col}.{lang}" for lang in langs}
    else:  # flat layout: one column per language
        cols = {lang: mapping.get(lang, lang) for lang in langs}
        if not mapping and not any(c in columns for c in cols.values()):
            raise ValueError(
                f"{where}: no 'translation' column and no column named after a requested language "
                f"(columns: {', '.join(columns)}); pass column_mapping={{'translation': <column>}} "
                f"or {{{source!r}: <column>, ...}}"
            )
        for lang, col in mapping.items():
            if col not in columns:
                raise ValueError(
                    f"{where}: column_mapping maps {lang!r} to column {col!r}, which does not exist "
                    f"(columns: {', '.join(columns)})"
                )
        _check_languages(where, langs, {lang for lang, c in cols.items() if c in columns}, columns, "columns")
        data = _read_columns(ds, list(dict.fromkeys(cols.values())))
        rows = [dict(zip(langs, values)) for values in zip(*(data[cols[lang]] for lang in langs))]
        fields = cols

    out, dropped = [], 0
    for i, row in enumerate(rows):
        clean = {lang: checked_text(row.get(lang), where, path, i, fields[lang]) for lang in langs}
        if clean[source] is None:
            raise ValueError(
                f"{_row(where, path, i)} has no source text in field {fields[source]}; "
                f"every row needs a non-empty {source!r} string (fix or remove that row)"
            )
        if all(clean[t] is None for t in targets):
            dropped += 1
        else:
            out.append(clean)
    if dropped:  # WARNING: shown on stderr even when nobody configured logging
        logger.warning("%s: dropped %d of %d rows that have none of the targets %s", where, dropped, len(rows), targets)
    if not out:
        raise ValueError(
            f"{where}: no row has any of the target languages {targets} ({len(rows)} rows read); "
            "check target_langs or the data"
        )
    features = datasets.Features({"translation": {lang: datasets.Value("string") for lang in langs}})
    return datasets.Dataset.from_dict({"translation": out}, features=features)


def _read_columns(ds: datasets.Dataset | pa.Table | dict, names: list[str]) -> dict[str, list]:
    """Some columns as Python lists (one slice of a Dataset: iterating a Column is ~50x slower)."""
    if isinstance(ds, dict):
        return {name: ds[name] for name in names}
    if isinstance(ds, pa.Table):
        return {name: ds.column(name).to_pylist() for name in names}
    return ds.select_columns(names)[:]


def lists_to_dict(row: dict, where: str, path: str | None, i: int, field: str) -> dict:
    """`{"language": [codes], "translation": [texts]}` -> `{code: text}`; a repeated code keeps its first text."""
    codes, texts = row["language"] or [], row["translation"] or []
    if not (isinstance(codes, list) and isinstance(texts, list) and len(codes) == len(texts)) or not all(
        isinstance(code, str) for code in codes
    ):
        raise ValueError(
            f"{_row(where, path, i)}: field {field} ({str(row)[:60]!r}) is not two equal-length lists "
            "{'language': [codes], 'translation': [texts]}; fix that row"
        )
    out: dict = {}
    for code, text in zip(codes, texts):
        out.setdefault(code, text)
    return out


def _check_languages(where: str, langs: list[str], found: set, available, kind: str) -> None:
    missing = [lang for lang in langs if lang not in found]
    if missing:
        raise ValueError(
            f"{where}: language {', '.join(map(repr, missing))} appears in no row "
            f"({kind} found: {', '.join(map(str, available)) or 'none'}); "
            "check the language code, or map it with column_mapping"
        )


def checked_text(value, where: str, path: str | None, i: int, field: str) -> str | None:
    """Strip a value; None/empty/whitespace-only means missing. Non-strings are an error."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(
            f"{_row(where, path, i)}: field {field} is a {type(value).__name__} ({str(value)[:40]!r}), "
            "not a string; translations must be text (quote it, or fix that row)"
        )
    return value.strip() or None


def _row(where: str, path: str | None, index: int) -> str:
    """'file: line N' for JSON lines (mapping past skipped blank lines), else 'where: row N'."""
    if path and BUILDERS.get(os.path.splitext(path)[1].lower()) == "json":
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if _is_json_lines(path, text):
            numbers = (n for n, line in enumerate(text.split("\n"), 1) if line.strip())
            for _ in range(index):
                next(numbers)
            return f"{where}: line {next(numbers)}"
    return f"{where}: row {index + 1}"
