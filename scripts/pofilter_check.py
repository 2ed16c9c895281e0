"""translate-po on installed catalogs a model never trained on, measured with pofilter against their human translations.

    python scripts/pofilter_check.py --model outputs/quickstart --out-dir pofilter-runs/quickstart

For each domain: a template from its installed .mo files (`localization/installed.py`), translate-po into
`<out-dir>/<domain>/<lang>.po`, then per language the machine-only pofilter failures and `msgfmt -c` with the fuzzy
flags removed (`localization/qa.py`). Prints a line per catalog, the machine-only failures per check, and a summary
against issue 26's goals: 0 critical, <= 5 % functional (of the compared entries), every file valid.
"""

import argparse
from collections import Counter
from pathlib import Path

from mtl_translate.localization import translate_po
from mtl_translate.localization.installed import LOCALE_ROOT, installed_catalog, template_from_catalogs
from mtl_translate.localization.qa import machine_only_failures
from mtl_translate.translate import Translator

HELDOUT = ["diffutils", "findutils", "grep", "sed", "xz"]  # data/gettext's held-out domains
# The issue's "functional" list; translate-toolkit files brackets and doublespacing under cosmetic.
ISSUE_FUNCTIONAL = ("options", "accelerators", "numbers", "urls", "filepaths", "emails", "brackets", "doublespacing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--domains", nargs="+", default=HELDOUT)
    parser.add_argument("--langs", nargs="+", help="default: the model's languages")
    parser.add_argument("--root", default=str(LOCALE_ROOT), help="the installed catalogs' folder")
    parser.add_argument("--out-dir", required=True, help="the templates and machine-translated catalogs go here")
    parser.add_argument("--num-beams", type=int, help="default: the model's generation config")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    translator = Translator.from_pretrained(args.model)
    langs = translator.check_languages(args.langs)
    results = []
    for domain in args.domains:
        catalogs = {lang: installed_catalog(domain, lang, args.root) for lang in langs}
        for lang in [lang for lang, path in catalogs.items() if path is None]:
            print(f"{domain}: no {lang} catalog under {args.root}, so no {lang} reference: not translated")
        catalogs = {lang: path for lang, path in catalogs.items() if path}
        if not catalogs:
            continue
        template = f"{args.out_dir}/{domain}/{domain}.pot"
        Path(template).parent.mkdir(parents=True, exist_ok=True)
        template_from_catalogs(list(catalogs.values()), domain).save(template)
        report = translate_po(template, translator, list(catalogs), f"{args.out_dir}/{domain}",
                              model_name=args.model, batch_size=args.batch_size, num_beams=args.num_beams)
        results += [machine_only_failures(report[lang]["path"], path, lang) for lang, path in catalogs.items()]
    print(format_results(results))


def format_results(results: list) -> str:
    """A line per catalog, the machine-only failures per check and language, and the summary against the goals."""
    lines = [f"{'catalog':<40}{'filled':>7}{'compared':>9}{'critical':>9}{'functional':>11}{'cosmetic':>9}  msgfmt -c"]
    for qa in results:
        lines.append(f"{qa.path:<40}{qa.filled:>7}{qa.compared:>9}{qa.entries('critical'):>9}"
                     f"{qa.entries('functional'):>11}{qa.entries('cosmetic'):>9}  {'ok' if not qa.msgfmt else 'FAILS'}")
        lines += [f"    {line}" for line in qa.msgfmt.splitlines()]
    langs = list(dict.fromkeys(qa.lang for qa in results))
    categories = {check: category for qa in results for check, category in qa.categories.items()}
    per_lang = {lang: sum((qa.failures for qa in results if qa.lang == lang), Counter()) for lang in langs}
    lines.append(f"\nmachine-only failures (entries) per check\n{'check':<16}{'category':<12}"
                 + "".join(f"{lang:>6}" for lang in langs) + f"{'all':>6}")
    for check in sorted(categories, key=lambda c: (-_RANK[categories[c]], c)):
        counts = [per_lang[lang][check] for lang in langs]
        lines.append(f"{check:<16}{categories[check]:<12}" + "".join(f"{n:>6}" for n in counts) + f"{sum(counts):>6}")
    compared = sum(qa.compared for qa in results) or 1
    critical = sum(qa.entries("critical") for qa in results)
    functional = sum(qa.entries("functional") for qa in results)
    listed = sum(qa.entries(names=ISSUE_FUNCTIONAL) for qa in results)
    valid = sum(not qa.msgfmt for qa in results)
    lines.append(f"\nsummary: {sum(qa.filled for qa in results)} filled, {compared} compared entries; "
                 f"critical {critical} (goal 0); functional {functional} = {100 * functional / compared:.1f} % "
                 f"(goal <= 5 %); the issue's list ({', '.join(ISSUE_FUNCTIONAL)}) {listed} entries = "
                 f"{100 * listed / compared:.1f} %; msgfmt -c without fuzzy: {valid}/{len(results)} files valid")
    return "\n".join(lines)


_RANK = {"critical": 3, "functional": 2, "cosmetic": 1}

if __name__ == "__main__":
    main()
