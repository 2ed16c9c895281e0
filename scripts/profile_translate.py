"""Where translate-all spends its time, before and after the stacked decoding path: torch.profiler over one
`generate` call of the benchmark's model (scripts/benchmark_translate.py sizes, EOS disabled), decoding head by head
(`stacked=False`, what generate did before) and all heads at once (`stacked=True`). Prints, per path, the wall time,
the share of the encoder (timed alone) and the operators with the most self CPU time.

    python scripts/profile_translate.py [--langs 4] [--batch-size 32] [--num-beams 1] [--new-tokens 32] [--top 10]
"""

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from benchmark_translate import SIZES, benchmark_parser, build_ours, median_seconds, setup  # beside this script


def parse_args() -> argparse.Namespace:
    p = benchmark_parser(__doc__, "tiny model: a smoke test")
    p.add_argument("--langs", type=int, default=4, help="N")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-beams", type=int, default=1)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--top", type=int, default=10, help="operators listed per path")
    return p.parse_args()


@torch.no_grad()
def main() -> None:
    args = parse_args()
    setup(args)
    sizes = SIZES["quick" if args.quick else "full"]
    model = build_ours(sizes, args.langs, args.new_tokens)
    ids = torch.randint(5, sizes["src_vocab"], (args.batch_size, args.source_length))  # (B, S)
    mask = torch.ones_like(ids)
    gen = dict(max_new_tokens=args.new_tokens, num_beams=args.num_beams)
    encode = lambda: model.encode(ids, mask, dict.fromkeys(model.config.languages, slice(None)))  # noqa: E731
    print(f"N={args.langs} batch={args.batch_size} beams={args.num_beams} new_tokens={args.new_tokens} "
          f"threads={torch.get_num_threads()}")
    for name, stacked in [("head by head (stacked=False, before)", False), ("stacked (after)", True)]:
        run = lambda: model.generate(ids, mask, stacked=stacked, **gen)  # noqa: E731
        wall = median_seconds(run, 1, "cpu")  # after one warm-up call: it builds the stack, primes the allocator
        encoder = median_seconds(encode, 1, "cpu", warmup=0)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run()
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        print(f"\n{name}: {wall * 1e3:.0f} ms per call, encoder {encoder / wall:.1%} of it; "
              f"top operators by self CPU time (profiled call, {total / 1e3:.0f} ms):")
        print(f"{'operator':<36}{'self ms':>10}{'share':>8}{'calls':>8}")
        for e in events[: args.top]:
            print(f"{e.key:<36}{e.self_cpu_time_total / 1e3:>10.1f}{e.self_cpu_time_total / total:>8.1%}{e.count:>8}")


if __name__ == "__main__":
    main()
