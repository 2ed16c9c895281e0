"""Translate-all on real data: speed and BLEU of a trained model's inference paths on its test split.

Paths: fp32 decoding head by head (`stacked=False`, what generate did before the stacked path), fp32 stacked (the
default), int8 (`quantize_int8`: dynamic int8 heads, head by head). Each translates the same rows into every
language (a language only on the rows that have its reference, as `mtl-translate evaluate`), with the model's
generation config (real EOS: sentences stop at their own length). Prints sentences/s, BLEU and chrF per language and
the change against fp32 stacked. Needs a trained model, e.g. the quickstart's:

    python scripts/benchmark_quickstart.py --model outputs/quickstart --data data/gettext --max-samples 1000
"""

import argparse
import time

import torch

from mtl_translate import Translator
from mtl_translate.data.loading import load_multitarget_dataset, sample_rows
from mtl_translate.evaluation import evaluate_translator
from mtl_translate.quantization import quantize_int8


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a trained model folder")
    p.add_argument("--data", required=True, help="a dataset folder/file or Hub id, as `mtl-translate evaluate`")
    p.add_argument("--split", default="test")
    p.add_argument("--max-samples", type=int, default=1000, help="seeded sample of rows, as `evaluate`")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    translator = Translator.from_pretrained(args.model, device="cpu")
    source, langs = translator.model.config.source_lang, translator.model.config.languages
    rows = load_multitarget_dataset(args.data, source, langs, split=args.split)
    rows = sample_rows(rows, args.max_samples, args.seed)
    print(f"{len(rows)} rows of {args.data} ({args.split}), languages {langs}, batch {args.batch_size}, "
          f"threads {torch.get_num_threads()}")

    def run(name: str, **generation) -> dict:
        start = time.perf_counter()
        results = evaluate_translator(translator, rows, source, langs, batch_size=args.batch_size, **generation)
        results["seconds"] = time.perf_counter() - start
        print(f"{name}: {len(rows) / results['seconds']:.1f} sentences/s into {len(langs)} languages", flush=True)
        return results

    evaluate_translator(translator, rows[: args.batch_size], source, langs)  # warm-up
    paths = {"fp32 head by head": run("fp32 head by head", stacked=False), "fp32 stacked": run("fp32 stacked")}
    quantize_int8(translator.model)
    paths["int8"] = run("int8")

    base = paths["fp32 stacked"]
    print(f"\n{'path':<20}{'sent/s':>8}{'speed':>8}" + "".join(f"{lang + ' BLEU (change)':>18}" for lang in langs)
          + f"{'mean BLEU':>11}{'mean chrF':>11}")
    for name, r in paths.items():
        bleu = "".join(f"{r['bleu'][lang]:.2f} ({r['bleu'][lang] - base['bleu'][lang]:+.2f})".rjust(18) for lang in langs)
        print(f"{name:<20}{len(rows) / r['seconds']:>8.1f}{base['seconds'] / r['seconds']:>7.2f}x{bleu}"
              f"{r['mean_bleu']:>11.2f}{r['mean_chrf']:>11.2f}")
    print(f"BLEU signature: {base['signature']}")


if __name__ == "__main__":
    main()
