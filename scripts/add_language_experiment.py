"""Adding a language after training vs training it from the start, on the quickstart's gettext data.

    python scripts/add_language_experiment.py --sharing hard [--lang ru] [--max-steps 700]

Runs (same recipe and steps): `base` (the other languages), `added` (`mtl-translate add-language` of LANG into
base), `joint` (all languages from the start) and `single` (LANG alone); prints a markdown table of LANG's BLEU/chrF
on the same test rows, the training time and peak memory of each run, and whether the other languages' outputs
stayed identical. Nothing is timed inside the processes: wall time and peak RSS of each training subprocess.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

from mtl_translate import Translator
from mtl_translate.data.gettext import build_gettext_corpus, corpus_is_complete
from mtl_translate.data.loading import load_multitarget_dataset, sample_rows
from mtl_translate.evaluation import evaluate_translator

RECIPE = "recipes/quickstart/config.yaml"


def timed(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in GiB of the process and its children) of a command that must succeed."""
    start, peak = time.monotonic(), 0
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    watched = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)]))
        except psutil.Error:
            pass
        time.sleep(0.5)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}")
    return time.monotonic() - start, peak / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sharing", default="hard")
    parser.add_argument("--lang", default="ru")
    parser.add_argument("--others", default="de,fr,es")
    parser.add_argument("--max-steps", type=int, default=700)
    parser.add_argument("--out", default="outputs/add_language")
    args = parser.parse_args()
    others, out = args.others.split(","), Path(args.out, args.sharing)
    data = str(Path(args.out, "data"))  # the quickstart's corpus (same build arguments), with every language
    if not corpus_is_complete(data):
        build_gettext_corpus([*others, args.lang], data, source_lang="en", seed=42, max_source_words=16)
    train = [sys.executable, "-m", "mtl_translate.cli", "train", RECIPE, "--sharing", args.sharing,
             "--max_steps", str(args.max_steps), "--max_train_minutes", "null", "--dataset_name", data,
             "--build_gettext", "false"]
    runs = {
        "base": train + ["--target_langs", args.others, "--output_dir", str(out / "base")],
        "added": [sys.executable, "-m", "mtl_translate.cli", "add-language", "--model", str(out / "base"), "--lang",
                  args.lang, "--data", data, "--output_dir", str(out / "added")],
        "joint": train + ["--target_langs", f"{args.others},{args.lang}", "--output_dir", str(out / "joint")],
        "single": train + ["--target_langs", args.lang, "--sharing", "hard", "--output_dir", str(out / "single")],
    }
    cost = {name: timed(cmd) if not (out / name / "eval_results.json").exists() else (float("nan"),) * 2
            for name, cmd in runs.items()}
    rows = sample_rows(load_multitarget_dataset(data, "en", [*others, args.lang], split="test"), 1000, 42)
    scores = {name: evaluate_translator(Translator.from_pretrained(str(out / name), device="cpu"), rows, "en",
                                        [args.lang] if name != "base" else others) for name in runs}
    same = {lang: evaluate_translator(Translator.from_pretrained(str(out / "added"), device="cpu"), rows, "en",
                                      [lang])["bleu"][lang] == scores["base"]["bleu"][lang] for lang in others}
    lines = [f"sharing: {args.sharing}; {args.lang} trained {args.max_steps} steps in every run; "
             f"test: the same {len(rows)} rows (seed 42)", "",
             f"| run | {args.lang} BLEU | {args.lang} chrF | train time | peak RSS |", "|---|---:|---:|---:|---:|"]
    for name in ("added", "joint", "single"):
        s, (seconds, gib) = scores[name], cost[name]
        lines.append(f"| {name} | {s['bleu'][args.lang]:.2f} | {s['chrf'][args.lang]:.2f} | {seconds / 60:.1f} min "
                     f"| {gib:.2f} GiB |")
    lines += ["", f"base ({args.others}, {cost['base'][0] / 60:.1f} min): BLEU "
              + ", ".join(f"{lang} {scores['base']['bleu'][lang]:.2f}" for lang in others)
              + f"; identical BLEU after add-language: {same}"]
    print("\n".join(lines))
    Path(out, "report.md").write_text("\n".join(lines) + "\n")
    Path(out, "report.json").write_text(json.dumps({"scores": scores, "cost": cost, "same": same}, indent=2))


if __name__ == "__main__":
    main()
