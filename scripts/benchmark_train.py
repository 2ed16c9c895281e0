"""Training cost: one multi-task step over N languages vs N single-task steps on the same rows, and memory as
languages are added.

A step is forward + backward + AdamW (`train.build_optimizer`, default recipe), encoder trainable, dropout on.
Multi-task: one MTLTranslationModel with N heads, every row has all N targets. Single-task: N models, each the same
encoder + one head, each stepping on the same rows with its own language. samples/s: source rows per second, each
with its N targets. Sizes as in benchmark_translate.py (MiniLM-L6 encoder, 3-layer d=384 heads, target vocab 8000),
random weights and token ids.

Memory (multi-task model, per N; without and with activation checkpointing): state = bytes of every parameter, gradient and AdamW state tensor after a step;
peak = CUDA: torch.cuda.max_memory_allocated over build + 2 steps minus the allocation before building the model;
CPU (Linux): peak resident set size (VmHWM, reset through /proc/self/clear_refs) over build + 2 steps minus VmRSS
before, after handing freed heap memory back to the OS (glibc malloc_trim), so that no earlier model's is reused.
N single-task state = N times the state of the N=1 model.
Last line: `train_step_speedup N=4: X.XXx` (N single-task steps' time / one multi-task step's time).

    python scripts/benchmark_train.py [--device cuda] [--dtype bf16] [--threads 2] [--quick]
"""

import argparse
import ctypes
import gc

import torch

from benchmark_translate import (SIZES, autocast_for, benchmark_parser, ints, median_seconds, mtl_config,  # beside
                                 setup)
from mtl_translate import MTLTranslationModel
from mtl_translate.configs import DataArguments, ModelArguments, Recipe, TrainingArguments
from mtl_translate.train import build_optimizer

MiB = 2**20


def step_parser(doc: str, repeats: int, repeats_help: str) -> argparse.ArgumentParser:
    """The options of a training-step benchmark (this one's and benchmark_weighting.py's); `parsed` reads them."""
    p = benchmark_parser(doc, "tiny models, short sequences: a smoke test")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="bf16: forward under torch.autocast")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--target-length", type=int, default=24)
    p.add_argument("--repeats", type=int, default=repeats, help=repeats_help)
    return p


def parsed(p: argparse.ArgumentParser) -> argparse.Namespace:
    """The arguments; --quick: a batch of 4 short rows, one timed repeat."""
    args = p.parse_args()
    if args.quick:
        args.batch_size, args.source_length, args.target_length, args.repeats = 4, 8, 6, 1
    return args


def parse_args() -> argparse.Namespace:
    p = step_parser(__doc__, 3, "timed steps after one warm-up step; the median counts")
    p.add_argument("--langs", type=ints, default=[4], help="N for the step-time comparison")
    p.add_argument("--memory-langs", type=ints, default=[1, 2, 4, 8], help="N for the memory table (1 is added)")
    return parsed(p)


def build(s: dict, langs: list[str], device: str, checkpointing: bool = False, **config):
    """A model with one head per language, in train mode (activation checkpointing on or off), and its AdamW;
    `config`: MTLConfig keys (loss_weighting, ...)."""
    model = MTLTranslationModel(mtl_config(s, langs, **config)).to(device).train()
    if checkpointing:
        model.activation_checkpointing_enable()
    recipe = Recipe(ModelArguments(), DataArguments(), TrainingArguments())
    return model, build_optimizer(recipe, model, num_steps=1000)[0]


def step(model, optimizer, ids, labels: dict, autocast) -> None:
    """One optimizer step as the trainer takes it, the loss weighting's end-of-step update included."""
    optimizer.zero_grad()
    with autocast():
        out = model(ids, torch.ones_like(ids), labels=labels)
    out.loss.backward()
    optimizer.step()
    model.loss_weighting.end_step({lang: loss.item() for lang, loss in out.language_losses.items()})


def state_bytes(params, optimizer) -> int:
    """Bytes of these parameters, their gradients and their AdamW state tensors."""
    tensors = [t for p in params for t in (p, p.grad, *optimizer.state[p].values()) if torch.is_tensor(t)]
    return sum(t.numel() * t.element_size() for t in tensors)


def process_memory(field: str) -> int:
    """VmRSS / VmHWM of this process, in bytes."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def memory_row(s: dict, n: int, ids, labels: dict, args, autocast, checkpointing: bool) -> dict:
    """Params, state bytes, peak memory of training the N-head model for two steps; one head's state bytes."""
    gc.collect()
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current VmRSS
        before = process_memory("VmRSS")
    langs = [f"l{i}" for i in range(n)]
    model, optimizer = build(s, langs, args.device, checkpointing)
    for _ in range(2):  # the second step holds activations, gradients and AdamW state at once
        step(model, optimizer, ids, {lang: labels[lang] for lang in langs}, autocast)
    peak = torch.cuda.max_memory_allocated() if args.device == "cuda" else process_memory("VmHWM")
    return dict(n=n, params=sum(p.numel() for p in model.parameters()), peak=peak - before,
                state=state_bytes(list(model.parameters()), optimizer),
                head=state_bytes(list(model.decoders["l0"].parameters()), optimizer))


def step_seconds(s: dict, n: int, ids, labels: dict, args, autocast) -> tuple[float, float]:
    """Median seconds of one multi-task step over n languages and of n single-task steps (its models are freed on
    return, before the memory table)."""
    langs = [f"l{i}" for i in range(n)]
    multi, multi_opt = build(s, langs, args.device)
    singles = [build(s, [lang], args.device) for lang in langs]
    t_multi = median_seconds(lambda: step(multi, multi_opt, ids, {lang: labels[lang] for lang in langs}, autocast),
                             args.repeats, args.device)
    t_single = median_seconds(lambda: [step(m, o, ids, {lang: labels[lang]}, autocast)
                                       for (m, o), lang in zip(singles, langs)], args.repeats, args.device)
    return t_multi, t_single


def main() -> None:
    args = parse_args()
    setup(args)
    s = SIZES["quick" if args.quick else "full"]
    autocast = autocast_for(args)
    n_max = max(args.langs + args.memory_langs)
    ids = torch.randint(5, s["src_vocab"], (args.batch_size, args.source_length), device=args.device)  # (B, S)
    labels = {f"l{i}": torch.randint(4, s["vocab"], (args.batch_size, args.target_length), device=args.device)
              for i in range(n_max)}  # {lang: (B, T)}, every row has every target
    print(f"device={args.device} dtype={args.dtype} threads={torch.get_num_threads()} batch={args.batch_size} "
          f"source_length={args.source_length} target_length={args.target_length} repeats={args.repeats} (median)")

    print(f"\nstep time (forward+backward+AdamW, encoder trainable)\n{'N':>3}{'multi-task samples/s':>22}"
          f"{'single-task samples/s':>23}{'speedup':>9}")
    speedups = {}
    for n in args.langs:
        t_multi, t_single = step_seconds(s, n, ids, labels, args, autocast)
        speedups[n] = t_single / t_multi
        print(f"{n:>3}{args.batch_size / t_multi:>22.2f}{args.batch_size / t_single:>23.2f}{speedups[n]:>8.2f}x",
              flush=True)

    peak_kind = "max_memory_allocated" if args.device == "cuda" else "peak RSS (VmHWM) delta"
    print(f"\nmemory as languages are added (state = params + grads + AdamW state; peak = {peak_kind}; "
          f"ckpt = with activation checkpointing)\n{'N':>3}{'params':>13}{'state MiB':>11}{'peak MiB':>10}"
          f"{'ckpt peak MiB':>15}{'N single-task state MiB':>25}")
    ns = sorted({1, *args.memory_langs})
    rows = [memory_row(s, n, ids, labels, args, autocast, checkpointing=False) for n in ns]
    memory_row(s, 1, ids, labels, args, autocast, checkpointing=True)  # its first use allocates once: not counted
    ckpt = [memory_row(s, n, ids, labels, args, autocast, checkpointing=True)["peak"] for n in ns]
    for r, peak in zip(rows, ckpt):
        print(f"{r['n']:>3}{r['params']:>13,}{r['state'] / MiB:>11.1f}{r['peak'] / MiB:>10.1f}{peak / MiB:>15.1f}"
              f"{r['n'] * rows[0]['state'] / MiB:>25.1f}", flush=True)
    if len(rows) > 1:
        first, last, head = rows[0], rows[-1], rows[0]["head"]
        per_added = lambda a, b: (b - a) / (last["n"] - first["n"]) / head  # noqa: E731
        print(f"per added language (N={first['n']} -> {last['n']}), relative to one head's params+grads+AdamW state "
              f"({head / MiB:.1f} MiB): state {per_added(first['state'], last['state']):.2f}x, "
              f"peak {per_added(first['peak'], last['peak']):.2f}x, "
              f"peak with activation checkpointing {per_added(ckpt[0], ckpt[-1]):.2f}x")
    key = 4 if 4 in speedups else max(speedups)
    print(f"train_step_speedup N={key}: {speedups[key]:.2f}x")


if __name__ == "__main__":
    main()
