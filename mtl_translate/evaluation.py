"""Per-language sacrebleu BLEU and chrF over the rows where that language's reference exists."""

from collections.abc import Mapping, Sequence

import sacrebleu
from accelerate.utils import gather_object


def bleu_metric(lang: str) -> sacrebleu.BLEU:
    """13a tokenization, except Chinese, whose text has no spaces to split words on."""
    return sacrebleu.BLEU(tokenize="zh" if lang.split("_")[0] == "zh" else "13a")


def score_translations(hypotheses: Mapping[str, Sequence[str]], references: Mapping[str, Sequence[str]]) -> dict:
    """{lang: hyps}, {lang: refs} -> {"bleu", "chrf", "n", "mean_bleu", "mean_chrf", "signature", ...}."""
    results = {"bleu": {}, "chrf": {}, "n": {}, "signatures": {}}
    chrf = sacrebleu.CHRF()
    for lang, refs in references.items():
        hyps = list(hypotheses[lang])
        if len(hyps) != len(refs):
            raise ValueError(f"{lang}: {len(hyps)} hypotheses for {len(refs)} references.")
        if not refs:
            continue
        bleu = bleu_metric(lang)
        results["bleu"][lang] = round(bleu.corpus_score(hyps, [list(refs)]).score, 2)
        results["chrf"][lang] = round(chrf.corpus_score(hyps, [list(refs)]).score, 2)
        results["n"][lang] = len(refs)
        results["signatures"][lang] = str(bleu.get_signature())
    scored = list(results["bleu"])
    if not scored:
        raise ValueError("no references to score: every language has zero rows with a reference.")
    results["mean_bleu"] = round(sum(results["bleu"].values()) / len(scored), 2)
    results["mean_chrf"] = round(sum(results["chrf"].values()) / len(scored), 2)
    results["signature"] = results["signatures"][scored[0]]
    results["chrf_signature"] = str(chrf.get_signature())
    return results


def evaluate_translator(translator, rows: Sequence[Mapping], source_lang: str, langs: Sequence[str] | None = None,
                        batch_size: int = 64, show_progress: bool = False, accelerator=None, **generation) -> dict:
    """Translate `rows` (`translation` dicts) into every language and score each on its non-missing references.

    With an `accelerator`, each process translates its share of the rows and the hypotheses are gathered.
    """
    langs = translator.check_languages(langs)
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
    refs = {lang: [row[lang] for row in rows if row.get(lang)] for lang in langs}
    hyps = {lang: [p[lang] for p, row in zip(predictions, rows) if row.get(lang)] for lang in langs}
    return score_translations(hyps, refs)


def format_results(results: dict) -> str:
    """A plain-text table for the terminal."""
    lines = [f"{'lang':<8}{'BLEU':>8}{'chrF':>8}{'rows':>8}"]
    for lang in results["bleu"]:
        lines.append(f"{lang:<8}{results['bleu'][lang]:>8.2f}{results['chrf'][lang]:>8.2f}{results['n'][lang]:>8}")
    lines.append(f"{'mean':<8}{results['mean_bleu']:>8.2f}{results['mean_chrf']:>8.2f}{sum(results['n'].values()):>8}")
    lines.append(f"BLEU signature: {results['signature']}")
    return "\n".join(lines)
