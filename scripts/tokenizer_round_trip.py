"""How many training targets does each target tokenizer give back exactly? (issue 26 §1)

    python scripts/tokenizer_round_trip.py --data data/gettext [--vocab-size 4000] [--sentencepiece-defaults]

Trains one target tokenizer per language on `<data>/train.jsonl`, masked as training masks it (placeholders.py;
`--no-mask` for raw text), with the recipe's options (`TargetTokenizer.train`) or, with `--sentencepiece-defaults`,
with SentencePiece's default normaliser (NFKC, whitespace collapsed) as models before issue 26 were; prints per
language how many targets come back from decode(encode(t)) exactly, and a few that do not.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mtl_translate.placeholders import mask_rows  # noqa: E402
from mtl_translate.tokenization_mtl import TargetTokenizer  # noqa: E402

DEFAULTS = {"normalization_rule_name": "nmt_nfkc", "remove_extra_whitespaces": True,
            "allow_whitespace_only_pieces": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a corpus folder with train.jsonl (build-data gettext)")
    parser.add_argument("--source-lang", default="en")
    parser.add_argument("--vocab-size", type=int, default=4000, help="the quickstart's target_vocab_size")
    parser.add_argument("--no-mask", action="store_true", help="train on the targets unmasked")
    parser.add_argument("--sentencepiece-defaults", action="store_true", help="NFKC, whitespace collapsed")
    args = parser.parse_args()
    with open(Path(args.data, "train.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line)["translation"] for line in f]
    if not args.no_mask:
        rows = mask_rows(rows, args.source_lang)[0]
    langs = [lang for lang in rows[0] if lang != args.source_lang]
    options = DEFAULTS if args.sentencepiece_defaults else {}
    print(f"{'lang':<6}{'targets':>9}{'exact':>9}{'%':>9}  not exact, e.g.")
    with tempfile.TemporaryDirectory() as folder:
        for lang in langs:
            texts = [row[lang] for row in rows if row.get(lang)]
            tokenizer = TargetTokenizer.train(texts, args.vocab_size, f"{folder}/{lang}", lang, **options)
            failed = tokenizer.round_trip_failures(texts)
            exact = len(texts) - len(failed)
            print(f"{lang:<6}{len(texts):>9}{exact:>9}{100 * exact / len(texts):>9.2f}  {failed[:2]}")


if __name__ == "__main__":
    main()
