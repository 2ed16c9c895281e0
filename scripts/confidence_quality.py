"""Does the confidence of a machine translation rank its quality? (issue 26 §3)

Translates the rows of a split with `Translator.translate(..., return_confidence=True)` (exp of each output's mean
token log-probability) and prints, per language, the Spearman rank correlation of that confidence with the
output's sentence-level chrF (sacrebleu) against the reference, and the mean chrF of the least and the most
confident quarter of the outputs: what `translate-po --min-confidence` would hold back, and what it keeps.

    python scripts/confidence_quality.py --model outputs/quickstart --data data/gettext --split heldout
"""

import argparse

import pandas as pd
import sacrebleu

from mtl_translate.data.loading import load_multitarget_dataset, sample_rows
from mtl_translate.translate import Translator


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="trained model folder or Hub repo id")
    p.add_argument("--data", required=True, help="local file/folder or Hub dataset id")
    p.add_argument("--split", default="heldout")
    p.add_argument("--langs", default=None, help="comma-separated; default: every language of the model")
    p.add_argument("--max-samples", type=int, default=None, help="a seeded sample of this many rows (default: all)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-beams", type=int, default=None, help="default: the model's generation config")
    p.add_argument("--device", default=None)
    return p.parse_args()


def quality_table(translator: Translator, rows: list[dict], source: str, langs: list[str],
                  **generation) -> pd.DataFrame:
    """One row per language: n, Spearman(confidence, sentence chrF), mean chrF of the lowest / highest quarter."""
    texts = [row[source] for row in rows]
    wanted = {lang: [bool(row.get(lang)) for row in rows] for lang in langs}
    out, confidence = translator.translate(texts, langs, rows=wanted, return_confidence=True, **generation)
    table = {}
    for lang in langs:
        scored = pd.DataFrame([(confidence[lang][i], sacrebleu.sentence_chrf(out[lang][i], [row[lang]]).score)
                               for i, row in enumerate(rows) if wanted[lang][i] and confidence[lang][i] is not None],
                              columns=["confidence", "chrf"]).sort_values("confidence")
        quarter = max(1, len(scored) // 4)
        table[lang] = {"n": len(scored), "spearman": scored["confidence"].corr(scored["chrf"], method="spearman"),
                       "chrF lowest 25%": scored["chrf"].head(quarter).mean(),
                       "chrF highest 25%": scored["chrf"].tail(quarter).mean(),
                       "median confidence": scored["confidence"].median()}
    return pd.DataFrame(table).T


def main() -> None:
    args = parse_args()
    translator = Translator.from_pretrained(args.model, device=args.device)
    langs = translator.check_languages(args.langs.split(",") if args.langs else None)
    source = translator.model.config.source_lang
    rows = sample_rows(load_multitarget_dataset(args.data, source, langs, split=args.split), args.max_samples, 42)
    table = quality_table(translator, rows, source, langs, batch_size=args.batch_size, num_beams=args.num_beams)
    print(table.to_string(float_format=lambda x: f"{x:.3f}", formatters={"n": "{:.0f}".format}))


if __name__ == "__main__":
    main()
