"""Give a model trained before metavariables were mined (metavariables.py) the names its corpus translates.

    python scripts/add_metavariables.py --model outputs/quickstart

Training does this by itself now; this reads the train split of the recipe the folder was trained with
(`recipe.yaml`) and writes `metavariables` into its generation_config.json, for translate / translate-po to apply
to option tables.
"""

import argparse
import json
from pathlib import Path

from mtl_translate.configs import load_recipe
from mtl_translate.data.loading import load_splits
from mtl_translate.metavariables import mine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a model folder written by `mtl-translate train`")
    folder = Path(parser.parse_args().model)
    data = load_recipe(str(folder / "recipe.yaml")).data
    langs = json.loads((folder / "config.json").read_text(encoding="utf-8"))["languages"]
    rows = load_splits(data, langs, [data.train_split], seed=0)[data.train_split]["translation"]
    path = folder / "generation_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["metavariables"] = mine(rows, data.source_lang, langs)
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print({lang: len(names) for lang, names in config["metavariables"].items()}, "names written to", path)


if __name__ == "__main__":
    main()
