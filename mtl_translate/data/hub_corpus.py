"""Multi-target corpora from Hub translation datasets: ted_multi, FLORES-style configs, English-centric pairs.

The three layouts hold the same thing -- a source sentence and its translations -- in different shapes:
ted_multi puts every language of a sentence in one row (parallel lists), FLORES puts each language in its
own config (joined here by ``id``), and pair datasets such as opus-100 hold one language per config (joined
here on the normalised source text, the pivot). Each layout becomes a stream of ``(source, {lang: target})``
records; one merger turns them into one row per distinct normalised source per split, with ``null`` for a
missing target -- the files ``build-data gettext`` writes, so training reads both alike.
"""

from __future__ import annotations

import json
import logging
import os
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import datasets
import pyarrow as pa

from .gettext import check_replaceable, replacing
from .loading import checked_text, lists_to_dict

logger = logging.getLogger(__name__)

OUT_SPLITS = ("train", "validation", "test")
LAYOUTS = {  # layout: (default {output split: dataset split}, default revision)
    # the script version of neulab/ted_multi no longer runs: its parquet conversion does
    "ted_multi": (dict(zip(OUT_SPLITS, OUT_SPLITS)), "refs/convert/parquet"),
    "flores": ({"validation": "dev", "test": "devtest"}, None),  # FLORES has no train split
    "pairs": (dict(zip(OUT_SPLITS, OUT_SPLITS)), None),
}
LOCAL_SUFFIXES = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}
BATCH_ROWS = 10_000

Records = Iterator[tuple[str | None, dict[str, str | None]]]  # (source text, {lang: target text})
Reader = Callable[[str | None, str], Iterator[pa.Table]]  # (config, split) -> flattened batches


def normalise_source(text: str) -> str:
    """The join key: "Thank  you." and "thank you." are one sentence (NFKC, casefolded, whitespace collapsed)."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def load_split(dataset: str, config: str | None, split: str, revision: str | None = None,
               streaming: bool = False) -> datasets.Dataset | datasets.IterableDataset:
    """One split of a Hub dataset, or of a local folder laid out ``<dataset>/[<config>/]<split>.parquet|.jsonl``
    (or ``<split>/*.parquet``, as a download of a Hub parquet conversion): the one place that touches the Hub."""
    folder = Path(dataset).expanduser()
    if folder.is_dir():
        folder = folder / config if config else folder
        candidates = [*folder.glob(f"{split}.*"), *folder.glob(f"{split}/*")]
        files = sorted(f for f in candidates if f.suffix in LOCAL_SUFFIXES)
        if not files:
            raise ValueError(f"{folder}: no file for split {split!r}; expected {split}.parquet, {split}.jsonl or "
                             f"{split}/*.parquet (pick the split with --splits OUT=SPLIT)")
        builder = LOCAL_SUFFIXES[files[0].suffix]
        return datasets.load_dataset(builder, data_files={split: list(map(str, files))}, split=split,
                                     streaming=streaming)
    try:
        return datasets.load_dataset(dataset, config, split=split, revision=revision, streaming=streaming)
    except Exception as err:  # the Hub's errors name neither our flags nor what to change
        raise ValueError(f"could not load {_where(dataset, config, split)} (revision {revision or 'main'}): {err}; "
                         "check the dataset id, its configs (--langs CODE=CONFIG) and splits (--splits OUT=SPLIT)"
                         ) from err


def _where(dataset: str, config: str | None, split: str) -> str:
    return f"{dataset}" + (f" config {config!r}" if config else "") + f" split {split!r}"


def _column(table: pa.Table, name: str, where: str, hint: str) -> list:
    if name not in table.column_names:
        raise ValueError(f"{where}: no column {name!r} (columns: {', '.join(table.column_names)}); {hint}")
    return table.column(name).to_pylist()


def ted_multi_records(read: Reader, dataset: str, split: str, source: tuple[str, str], langs: dict[str, str],
                      config: str | None, seen: set[str]) -> Records:
    """One record per row of ``translations`` = {language: [codes], translation: [texts]}; adds its codes to
    ``seen`` (to name them when a requested code never appears)."""
    where, hint = _where(dataset, config, split), "the ted_multi layout reads neulab/ted_multi's parquet conversion"
    row = 0
    for table in read(config, split):
        codes_of = _column(table, "translations.language", where, hint)
        for codes, texts in zip(codes_of, _column(table, "translations.translation", where, hint)):
            by_code = lists_to_dict({"language": codes, "translation": texts}, where, None, row, "translations")
            seen.update(by_code)
            yield (checked_text(by_code.get(source[1]), where, None, row, f"translations[{source[1]}]"),
                   {code: checked_text(by_code.get(name), where, None, row, f"translations[{name}]")
                    for code, name in langs.items()})
            row += 1


def flores_records(read: Reader, dataset: str, split: str, source: tuple[str, str], langs: dict[str, str],
                   text_column: str) -> Records:
    """One record per ``id`` of any config, in first-seen order; a config without that id gives ``None``."""
    by_code: dict[str, dict] = {}
    for code, config in {source[0]: source[1], **langs}.items():
        texts, where = by_code.setdefault(code, {}), _where(dataset, config, split)
        for table in read(config, split):
            ids = _column(table, "id", where, "FLORES-style configs join on an 'id' column")
            hint = "pass --text-column (facebook/flores calls it 'sentence')"
            for i, (key, text) in enumerate(zip(ids, _column(table, text_column, where, hint)), len(texts)):
                if key in texts:
                    raise ValueError(f"{where}: id {key!r} appears twice (rows {list(texts).index(key) + 1} and "
                                     f"{i + 1}); ids must be unique within a config")
                texts[key] = checked_text(text, where, None, i, text_column)
    for key in dict.fromkeys(key for texts in by_code.values() for key in texts):
        yield by_code[source[0]].get(key), {code: by_code[code].get(key) for code in langs}


def pairs_records(read: Reader, dataset: str, split: str, source: tuple[str, str], langs: dict[str, str]) -> Records:
    """One record per pair row ``translation`` = {source: ..., other: ...}, one config per target language."""
    for code, config in langs.items():
        where, row = _where(dataset, config, split), 0
        for table in read(config, split):
            keys = [name.removeprefix("translation.") for name in table.column_names if name.startswith("translation.")]
            if len(keys) != 2 or source[1] not in keys:
                raise ValueError(f"{where}: expected a column 'translation' = {{{source[1]!r}: ..., <lang>: ...}}, "
                                 f"found keys {keys} in columns {table.column_names}; check --source and the config")
            other = keys[1 - keys.index(source[1])]
            for src, tgt in zip(table.column(f"translation.{source[1]}").to_pylist(),
                                table.column(f"translation.{other}").to_pylist()):
                yield (checked_text(src, where, None, row, f"translation.{source[1]}"),
                       {code: checked_text(tgt, where, None, row, f"translation.{other}")})
                row += 1


def merge_records(records: Records, source_lang: str, langs: Sequence[str]) -> tuple[dict[str, dict], dict]:
    """One row per normalised source (first source text and first target per language kept) and the counts:
    ``duplicates_merged[lang]`` = later targets that differ from the kept one, ``dropped`` = records without
    a source or without any target."""
    rows: dict[str, dict] = {}
    duplicates, dropped, read = dict.fromkeys(langs, 0), {"no_source": 0, "no_target": 0}, 0
    for source, targets in records:
        read += 1
        targets = {lang: text for lang, text in targets.items() if text is not None}
        if source is None or not targets:
            dropped["no_source" if source is None else "no_target"] += 1
            continue
        row = rows.setdefault(normalise_source(source), {source_lang: source})
        for lang, text in targets.items():
            duplicates[lang] += row.setdefault(lang, text) != text
    return rows, {"rows_read": read, "duplicates_merged": duplicates, "dropped": dropped}


def _language_names(layout: str, source: str, source_name: str | None,
                    langs: Mapping[str, str | None]) -> tuple[tuple[str, str], dict[str, str]]:
    """``(source code, its name)`` and ``{code: name}``: the code in a ted_multi row, the config of FLORES and of a
    pair (default: the two codes sorted, ``de-en``, as opus-100 names them)."""
    source_name = source_name or source
    if layout == "pairs":
        names = {code: name or "-".join(sorted((source_name, code))) for code, name in langs.items()}
    else:
        names = {code: name or code for code, name in langs.items()}
    return (source, source_name), names


def build_hub_corpus(
    layout: str,
    dataset: str,
    source: str,
    langs: Mapping[str, str | None] | Sequence[str],
    out_dir: str | os.PathLike,
    *,
    source_name: str | None = None,
    config: str | None = None,
    revision: str | None = None,
    splits: Mapping[str, str | None] | None = None,
    text_column: str | None = None,
    max_rows_per_split: int | None = None,
    streaming: bool = False,
) -> dict:
    """Write ``<out_dir>/<split>.jsonl`` (rows ``{"translation": {source: ..., lang: str | None}}``) and
    ``stats.json``, replacing a previous corpus there all at once; return the stats.

    ``langs`` maps our codes to the dataset's names for them (``None``: the layout's default, see
    `_language_names`); ``splits`` maps output splits (train/validation/test) to dataset splits.
    ``max_rows_per_split`` reads at most that many rows of each config's split (a quick sample).
    Train rows whose normalised source is also in validation or test are dropped: no test sentence is trained on.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; pick one of {', '.join(LAYOUTS)}")
    default_splits, default_revision = LAYOUTS[layout]
    if config and layout != "ted_multi":
        raise ValueError(f"--config is for ted_multi; the {layout} layout takes one config per language from "
                         "--langs CODE=CONFIG")
    if text_column and layout != "flores":
        raise ValueError(f"--text-column is for the flores layout, not {layout}")
    langs = dict(langs) if isinstance(langs, Mapping) else dict.fromkeys(langs)
    if not langs or source in langs:
        raise ValueError(f"--langs must name at least one target language other than the source {source!r}; "
                         f"got {list(langs)}")
    splits = {out: name or out for out, name in (splits or default_splits).items()}
    unknown = sorted(set(splits) - set(OUT_SPLITS))
    if unknown:
        raise ValueError(f"--splits: output split(s) {unknown} are not {', '.join(OUT_SPLITS)}; map them as "
                         "OUT=SPLIT, e.g. validation=dev,test=devtest")
    out = Path(os.path.abspath(out_dir))
    check_replaceable(out)
    src, names = _language_names(layout, source, source_name, langs)
    revision = revision or default_revision

    def read(cfg: str | None, split: str) -> Iterator[pa.Table]:
        ds = load_split(dataset, cfg, split, revision, streaming)
        ds = ds.take(max_rows_per_split) if max_rows_per_split is not None else ds
        for table in ds.with_format("arrow").iter(batch_size=BATCH_ROWS):
            yield table.flatten()

    seen: set[str] = set()
    layouts = {
        "ted_multi": lambda split: ted_multi_records(read, dataset, split, src, names, config, seen),
        "flores": lambda split: flores_records(read, dataset, split, src, names, text_column or "text"),
        "pairs": lambda split: pairs_records(read, dataset, split, src, names),
    }
    rows, stats = {}, {"layout": layout, "dataset": dataset, "revision": revision, "source_lang": source,
                       "langs": list(langs), "names": {source: src[1], **names}, "splits": splits}
    for out_split, split in splits.items():
        rows[out_split], counts = merge_records(layouts[layout](split), source, list(langs))
        for key, value in counts.items():
            stats.setdefault(key, {})[out_split] = value
    held_out = {key for split in ("validation", "test") for key in rows.get(split, ())}
    overlap = [key for key in rows.get("train", ()) if key in held_out]
    for key in overlap:
        del rows["train"][key]
    stats["train_rows_dropped_overlap"] = len(overlap)
    stats["rows"] = {split: len(split_rows) for split, split_rows in rows.items()}
    stats["coverage"] = {split: {lang: sum(lang in row for row in split_rows.values()) for lang in langs}
                         for split, split_rows in rows.items()}
    stats["rows_joined"] = {split: sum(len(row) > 2 for row in split_rows.values())
                            for split, split_rows in rows.items()}  # source + two or more targets
    _check_result(stats, dataset, sorted(seen))
    with replacing(out) as partial:
        for split, split_rows in rows.items():
            with open(partial / f"{split}.jsonl", "w", encoding="utf-8") as f:
                for row in split_rows.values():
                    row = {source: row[source], **{lang: row.get(lang) for lang in langs}}
                    f.write(json.dumps({"translation": row}, ensure_ascii=False) + "\n")
        (partial / "stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return stats


def _check_result(stats: dict, dataset: str, seen: list[str]) -> None:
    """A split without rows, a language without any target or a pivot join that joined nothing is an error (a
    wrong code, config or source); a language missing from one split only is a warning (sparse data)."""
    for lang in stats["langs"]:
        if not any(cov[lang] for cov in stats["coverage"].values()):
            codes = f"; language codes in its rows: {', '.join(seen)}" if seen else ""
            raise ValueError(f"{dataset}: language {lang!r} ({stats['names'][lang]}) has no target in any "
                             f"split{codes}; check --langs CODE=NAME")
        for split, cov in stats["coverage"].items():
            if not cov[lang]:
                logger.warning("%s split %r: no row has a %r target", dataset, stats["splits"][split], lang)
    for split, count in stats["rows"].items():
        if not count:
            raise ValueError(f"{dataset} split {stats['splits'][split]!r}: no row with a {stats['source_lang']!r} "
                             f"source and a target among {stats['langs']} (dropped: {stats['dropped'][split]}); "
                             "check --source, --langs and --splits")
    if stats["layout"] == "pairs" and len(stats["langs"]) > 1 and not any(stats["rows_joined"].values()):
        raise ValueError(f"{dataset}: no {stats['source_lang']!r} sentence is shared by two of the pair configs "
                         f"{list(stats['names'].values())[1:]}, so the pivot join made no multi-target row; check "
                         "that they are pairs of one corpus (or raise --max-rows-per-split)")
