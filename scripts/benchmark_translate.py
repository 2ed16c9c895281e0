"""Translate-all speed: one MTLTranslationModel (shared encoder, N decoder heads) vs N separate `transformers`
MarianMTModels of the same size (what a user runs today), each translating the same batch with `generate`.

Sizes: a MiniLM-L6 encoder (d=384, 6 layers, 12 heads, ffn 1536, vocab 30522) and 3-layer decoders (d=384, 6 heads,
ffn 1536, target vocab 8000); random weights, random source ids of length --source-length. Both sides generate
exactly --new-tokens tokens (EOS disabled: our model gets EOS id -1, which no token has; Marian's generation config
has no EOS; checked before timing). sentences/s counts source sentences translated into all N languages. Last line:
`translate_all_speedup N=4 batch=32 greedy fp32: X.XXx` (Marian time / our time).

    python scripts/benchmark_translate.py [--device cuda] [--dtype bf16] [--quantize int8] [--threads 2] [--quick]
"""

import argparse
import contextlib
import copy
import inspect
import itertools
import statistics
import time

import torch
from transformers import BertConfig, GenerationConfig, MarianConfig, MarianMTModel

from mtl_translate import MTLConfig, MTLTranslationModel
from mtl_translate.quantization import quantize_int8

SIZES = {
    "full": dict(src_vocab=30522, vocab=8000, dim=384, ffn=1536, enc_layers=6, enc_heads=12, dec_layers=3, dec_heads=6),
    "quick": dict(src_vocab=128, vocab=64, dim=32, ffn=64, enc_layers=1, enc_heads=2, dec_layers=1, dec_heads=2),
}
BOS, PAD = 2, 0


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def benchmark_parser(doc: str, quick_help: str) -> argparse.ArgumentParser:
    """The options every benchmark script has; `setup(args)` applies them."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source-length", type=int, default=24)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help=quick_help)
    return p


def setup(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)


def parse_args() -> argparse.Namespace:
    p = benchmark_parser(__doc__, "smoke test: tiny models, N=4, batch 32, greedy, 4 tokens")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="bf16: both sides under torch.autocast")
    p.add_argument("--langs", type=ints, default=[2, 4, 8], help="values of N")
    p.add_argument("--batch-sizes", type=ints, default=[1, 8, 32])
    p.add_argument("--beams", type=ints, default=[1, 4], help="1 = greedy")
    p.add_argument("--new-tokens", type=int, default=32, help="tokens generated per sentence")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per cell (after one warm-up run of each path); "
                   "the median counts")
    p.add_argument("--stacked", choices=["auto", "on", "off"], default="auto", help="our generate's stacked path")
    p.add_argument("--quantize", choices=["none", "int8"], default="none", help="also time quantize_int8(ours), CPU")
    args = p.parse_args()
    if args.quick:
        args.langs, args.batch_sizes, args.beams, args.new_tokens, args.repeats = [4], [32], [1], 4, 1
    return args


def mtl_config(s: dict, langs: list[str], **kwargs) -> MTLConfig:
    """Our model at these sizes: a BERT encoder of MiniLM's shape, one decoder head per language."""
    encoder = BertConfig(vocab_size=s["src_vocab"], hidden_size=s["dim"], num_hidden_layers=s["enc_layers"],
                         num_attention_heads=s["enc_heads"], intermediate_size=s["ffn"])
    return MTLConfig(encoder=encoder.to_dict(), languages=langs, target_vocab_sizes=dict.fromkeys(langs, s["vocab"]),
                     decoder_layers=s["dec_layers"], decoder_hidden_size=s["dim"], decoder_ffn_dim=s["ffn"],
                     decoder_attention_heads=s["dec_heads"], **kwargs)


def build_ours(s: dict, n: int, new_tokens: int) -> MTLTranslationModel:
    config = mtl_config(s, [f"l{i}" for i in range(n)], max_target_positions=new_tokens, target_bos_token_id=BOS,
                        target_pad_token_id=PAD)
    model = MTLTranslationModel(config).eval()
    model.config.target_eos_token_id = -1  # no token is -1: every sentence runs to max_new_tokens
    return model


def build_marian(s: dict) -> MarianMTModel:
    config = MarianConfig(vocab_size=s["src_vocab"], decoder_vocab_size=s["vocab"], d_model=s["dim"],
                          share_encoder_decoder_embeddings=False, encoder_layers=s["enc_layers"],
                          encoder_attention_heads=s["enc_heads"], encoder_ffn_dim=s["ffn"],
                          decoder_layers=s["dec_layers"], decoder_attention_heads=s["dec_heads"],
                          decoder_ffn_dim=s["ffn"], pad_token_id=PAD, decoder_start_token_id=BOS, eos_token_id=None,
                          forced_eos_token_id=None)
    model = MarianMTModel(config).eval()
    model.generation_config = GenerationConfig(decoder_start_token_id=BOS, pad_token_id=PAD)  # no EOS, no processors
    return model


def translate_all(model, ids, n: int, gen: dict, **extra) -> dict:
    """Our model: the first n languages at once. ids: (B, S) -> {lang: (B, T)}."""
    return model.generate(ids, torch.ones_like(ids), langs=model.config.languages[:n], **gen, **extra)


def translate_each(marians, ids, n: int, gen: dict) -> list:
    """Today: n separate models, one after the other. ids: (B, S) -> n x (B, 1 + T)."""
    return [m.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, **gen) for m in marians[:n]]


@torch.no_grad()
def warm_up_and_check(model, marians, ids, args, **extra) -> None:
    """Runs every code path once (our stacked heads are built per language set) and checks that both sides generate
    exactly --new-tokens tokens (Marian's output starts with its decoder start token)."""
    for n, beams in itertools.product(args.langs, args.beams):
        gen = dict(max_new_tokens=args.new_tokens, num_beams=beams)
        widths = {x.shape[1] for x in translate_all(model, ids, n, gen, **extra).values()}
        widths |= {x.shape[1] - 1 for x in translate_each(marians, ids, 1, gen)}
        if widths != {args.new_tokens}:
            raise RuntimeError(f"expected {args.new_tokens} new tokens everywhere, got widths {widths}")


def autocast_for(args):
    """A factory of the context each timed call runs in: torch.autocast for --dtype bf16."""
    if args.dtype == "fp32":
        return contextlib.nullcontext
    return lambda: torch.autocast(args.device, dtype=torch.bfloat16)


def median_seconds(fn, repeats: int, device: str, warmup: int = 1) -> float:
    """`warmup` untimed calls, then the median of `repeats` timed calls."""
    sync, times = torch.cuda.synchronize if device == "cuda" else (lambda: None), []
    for _ in range(warmup + repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times[warmup:])


def main() -> None:
    args = parse_args()
    setup(args)
    sizes, n_max = SIZES["quick" if args.quick else "full"], max(args.langs)
    ours = build_ours(sizes, n_max, args.new_tokens).to(args.device)
    marians = [build_marian(sizes).to(args.device) for _ in range(n_max)]
    int8 = quantize_int8(copy.deepcopy(ours)) if args.quantize == "int8" else None
    stacked = {"auto": None, "on": True, "off": False}[args.stacked]
    extra = {"stacked": stacked} if "stacked" in inspect.signature(ours.generate).parameters else {}
    autocast = autocast_for(args)  # not for int8: float32 activations
    print(f"device={args.device} dtype={args.dtype} threads={torch.get_num_threads()} new_tokens={args.new_tokens} "
          f"source_length={args.source_length} repeats={args.repeats} (median) "
          f"stacked path: {args.stacked if extra else 'absent from generate'}")
    inputs = {batch: torch.randint(5, sizes["src_vocab"], (batch, args.source_length), device=args.device)
              for batch in args.batch_sizes}  # {B: (B, S)}
    with autocast():
        warm_up_and_check(ours, marians, inputs[min(inputs)], args, **extra)
    if int8:
        warm_up_and_check(int8, marians, inputs[min(inputs)], args)

    print(f"{'N':>3}{'batch':>6}{'beams':>6}{'ours sent/s':>13}{'marian sent/s':>15}{'speedup':>9}"
          + (f"{'int8 sent/s':>13}{'int8 speedup':>14}" if int8 else ""))
    speedups = {}
    for n, batch, beams in itertools.product(args.langs, args.batch_sizes, args.beams):
        ids, gen = inputs[batch], dict(max_new_tokens=args.new_tokens, num_beams=beams)
        with torch.no_grad(), autocast():
            t_ours = median_seconds(lambda: translate_all(ours, ids, n, gen, **extra), args.repeats, args.device, 0)
            t_hf = median_seconds(lambda: translate_each(marians, ids, n, gen), args.repeats, args.device, 0)
        speedups[n, batch, beams] = t_hf / t_ours
        row = f"{n:>3}{batch:>6}{beams:>6}{batch / t_ours:>13.1f}{batch / t_hf:>15.1f}{t_hf / t_ours:>8.2f}x"
        if int8:
            t_int8 = median_seconds(lambda: translate_all(int8, ids, n, gen), args.repeats, "cpu", 0)
            row += f"{batch / t_int8:>13.1f}{t_hf / t_int8:>13.2f}x"
        print(row, flush=True)

    n, batch, beams = key = (4, 32, 1) if (4, 32, 1) in speedups else list(speedups)[-1]  # else: the last cell
    print(f"translate_all_speedup N={n} batch={batch} {'greedy' if beams == 1 else f'beam{beams}'} {args.dtype}: "
          f"{speedups[key]:.2f}x")


if __name__ == "__main__":
    main()
