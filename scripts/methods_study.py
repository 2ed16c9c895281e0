"""The methods study's goal check and selection (issue 27 §4), read from a `compare --seeds` comparison.json.

    python scripts/methods_study.py outputs/methods-lowres/comparison.json --sparse ru --top 3 --exclude mtl,sluice
    python scripts/methods_study.py outputs/methods-fulldata/comparison.json

--sparse L: the low-resource goal, mean Δ BLEU of L ≥ +1.00 and every other language's mean Δ BLEU ≥ −(its std
over seeds), i.e. no language loses by more than its std; runs ranked by mean Δ BLEU of L (ties: mean Δ BLEU over
the languages), the first --top of them outside --exclude named (part (b) runs static and sluice anyway): the rule
fixed before the study ran (docs/results.md).
Without it: the full-data goal, mean Δ BLEU > 0 on every language; runs ranked by mean Δ BLEU over the languages.
"""

import argparse
import json
from pathlib import Path

from mtl_translate.compare import mean_std

GAIN = 1.0  # BLEU the sparse language must gain


def failures(row_deltas: dict[str, dict], sparse: str | None) -> list[str]:
    """Why one run misses the goal ([] when it meets it): {lang: its Δ BLEU spread} of every language."""
    out = []
    for lang, d in row_deltas.items():
        if sparse is None and d["mean"] <= 0:
            out.append(f"{lang} {d['mean']:+.2f} ≤ 0")
        elif lang == sparse and d["mean"] < GAIN:
            out.append(f"{lang} {d['mean']:+.2f} < +{GAIN:.2f}")
        elif sparse is not None and lang != sparse and d["mean"] < -(d["std"] or 0.0):
            out.append(f"{lang} {d['mean']:+.2f} loses more than its std {d['std']:.2f}")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("comparison", type=Path, help="comparison.json written by `mtl-translate compare --seeds`")
    parser.add_argument("--sparse", help="the low-resource language (low-resource goal); omit for the full-data goal")
    parser.add_argument("--top", type=int, default=3, help="how many of the ranked runs to name")
    parser.add_argument("--exclude", default="", help="runs not to name among the best, comma-separated")
    args = parser.parse_args(argv)
    report = json.loads(args.comparison.read_text(encoding="utf-8"))
    if "table" not in report:
        raise SystemExit(f"{args.comparison}: no per-seed table; give the comparison.json of a `compare --seeds` run")
    rows = {r["lang"]: r["delta"] for r in report["table"]}  # lang (then "mean") -> {run: {"bleu": spread, ...}}
    langs = [lang for lang in rows if lang != "mean"]
    if args.sparse is not None and args.sparse not in langs:
        raise SystemExit(f"--sparse {args.sparse}: not a language of {args.comparison} ({', '.join(langs)})")
    runs = list(rows["mean"])
    if args.sparse:
        key = lambda run: (rows[args.sparse][run]["bleu"]["mean"], rows["mean"][run]["bleu"]["mean"])  # noqa: E731
    else:
        key = lambda run: rows["mean"][run]["bleu"]["mean"]  # noqa: E731
    ranked = sorted(runs, key=key, reverse=True)
    goal = (f"{args.sparse} gains ≥ +{GAIN:.2f} BLEU, no other language loses more than its std" if args.sparse
            else "above single-task on every language")
    print(f"Goal: {goal} (mean Δ BLEU over seeds {report['seeds']}), {args.comparison}\n")
    print(f"| rank | run | {' | '.join(f'Δ BLEU {lang}' for lang in langs)} | Δ BLEU mean | goal |")
    print("|" + "---|" * (len(langs) + 4))
    missed = {run: failures({lang: rows[lang][run]["bleu"] for lang in langs}, args.sparse) for run in ranked}
    for i, run in enumerate(ranked, 1):
        cells = [mean_std(rows[lang][run]["bleu"], "+") for lang in [*langs, "mean"]]
        verdict = "missed: " + "; ".join(missed[run]) if missed[run] else "met"
        print(f"| {i} | {run} | {' | '.join(cells)} | {verdict} |")
    met = [run for run in ranked if not missed[run]]
    print(f"\nmeet the goal: {', '.join(met) or 'none'}")
    excluded = set(filter(None, args.exclude.split(",")))
    print(f"best {args.top}: {', '.join([run for run in ranked if run not in excluded][:args.top])}")


if __name__ == "__main__":
    main()
