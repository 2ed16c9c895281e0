"""Same as `mtl-translate train RECIPE.yaml [--key value ...]`; works under `accelerate launch scripts/train.py`."""

import sys

from mtl_translate.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
