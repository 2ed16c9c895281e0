"""Training-step cost of each `loss_weighting:` method, and of the `sharing:` modes with copies of the encoder, against
`static` with hard sharing, at N languages (default 4).

A step is forward + backward + AdamW on the benchmark_train.py model (MiniLM-L6-shaped encoder, trainable, 3-layer
d=384 heads, target vocab 8000), every row with every target. The gradient methods (gradnorm, the torchjd
aggregators) add one B x S x E gradient per language at the encoder output and the aggregation of those N rows in
backward (their Gram matrix, a small solver for some), not an extra backward through the encoder.

One model and optimizer; its `loss_weighting` module is swapped between methods, and the methods take turns step by
step (`--repeats` rounds after one warm-up round, each round starting one method later), so that load from other
processes on shared cores hits them alike. ms per step: a method's fastest round (other processes only ever add
time); ratio: against static's; combine ms: the fastest of its backward's aggregations of the N gradients (the
work a gradient method adds, timed inside the same steps). The sharing rows (`sharing=cross_stitch`,
`sharing=sluice`: one encoder copy per language, static weighting) are models of their own, with their own AdamW,
taking their turns in the same rounds. Last line: `weighting_cost N=4: <slowest method> X.XXx static` (the
loss_weighting methods only).

    python scripts/benchmark_weighting.py [--device cuda] [--dtype bf16] [--threads 2] [--methods upgrad,mgda]
        [--sharing cross_stitch,sluice] [--quick]
"""

import copy
import time

import torch

from benchmark_train import build, parsed, step, step_parser  # beside
from benchmark_translate import SIZES, autocast_for, setup
from mtl_translate.losses import build_loss_weighting
from mtl_translate.weighting_methods import LOSS_WEIGHTINGS


def parse_args():
    p = step_parser(__doc__, 5, "timed rounds after one warm-up round; the fastest counts")
    p.add_argument("--langs", type=int, default=4, help="N")
    p.add_argument("--methods", type=lambda t: t.split(","), default=sorted(LOSS_WEIGHTINGS, key="static".__ne__),
                   help="comma-separated loss_weighting names (static is always measured)")
    p.add_argument("--sharing", type=lambda t: [m for m in t.split(",") if m], default=["cross_stitch", "sluice"],
                   help="comma-separated sharing modes measured with static weighting ('' for none)")
    return parsed(p)


def weighting(model, method: str, device: str):
    """The loss_weighting module of `method` for this model's languages."""
    config = copy.copy(model.config)
    config.loss_weighting = method
    return build_loss_weighting(config).to(device)


def timed(combine, times: list, sync):
    """`combine` that appends its seconds to `times`."""
    def call(*args):
        start = time.perf_counter()
        out = combine(*args)
        sync()
        times.append(time.perf_counter() - start)
        return out
    return call


def main() -> None:
    args = parse_args()
    setup(args)
    s, autocast = SIZES["quick" if args.quick else "full"], autocast_for(args)
    langs = [f"l{i}" for i in range(args.langs)]
    ids = torch.randint(5, s["src_vocab"], (args.batch_size, args.source_length), device=args.device)  # (B, S)
    labels = {lang: torch.randint(4, s["vocab"], (args.batch_size, args.target_length), device=args.device)
              for lang in langs}  # {lang: (B, T)}
    model, optimizer = build(s, langs, args.device)
    methods = ["static", *(m for m in args.methods if m != "static")]
    # {row: (model, its optimizer, the loss_weighting module it steps with)}
    rows = {method: (model, optimizer, weighting(model, method, args.device)) for method in methods}
    for mode in args.sharing:
        other, other_optimizer = build(s, langs, args.device, sharing=mode)
        rows[f"sharing={mode}"] = (other, other_optimizer, other.loss_weighting)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    seconds, combines = {name: [] for name in rows}, {name: [] for name in rows}
    for name, (_, _, module) in rows.items():
        if hasattr(module, "combine"):
            module.combine = timed(module.combine, combines[name], sync)
    names = list(rows)
    for r in range(1 + args.repeats):
        for name in names[r:] + names[:r]:  # each round starts elsewhere: no row always comes first
            row_model, row_optimizer, module = rows[name]
            row_model.loss_weighting = module
            sync()
            start = time.perf_counter()
            step(row_model, row_optimizer, ids, labels, autocast)
            sync()
            seconds[name].append(time.perf_counter() - start)
    print(f"device={args.device} dtype={args.dtype} threads={torch.get_num_threads()} N={args.langs} "
          f"batch={args.batch_size} source_length={args.source_length} target_length={args.target_length} "
          f"rounds={args.repeats} (fastest)\n{'loss_weighting':<22}{'ms/step':>10}{'x static':>10}{'combine ms':>12}")
    ms = {name: 1000 * min(times[1:]) for name, times in seconds.items()}
    for name in names:
        combine = f"{1000 * min(combines[name]):>12.1f}" if combines[name] else f"{'-':>12}"
        print(f"{name:<22}{ms[name]:>10.1f}{ms[name] / ms['static']:>9.2f}x{combine}")
    slowest = max(methods, key=ms.get)
    print(f"weighting_cost N={args.langs}: {slowest} {ms[slowest] / ms['static']:.2f}x static")


if __name__ == "__main__":
    main()
