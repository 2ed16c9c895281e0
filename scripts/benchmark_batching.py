"""Length grouping by characters (before) vs by tokens (`train.build_loader` now): the quickstart model trained on the
quickstart corpus's real batches both ways, in one run. Per way: the padding share of the source positions (and of
the target positions of the targets present), and the median seconds of a training step (forward + backward +
AdamW, the recipe's model and optimizer), the two ways' steps interleaved in rounds so that a busy machine slows
both alike. Needs the quickstart corpus (data/gettext: the quickstart builds it) and MiniLM.

    python scripts/benchmark_batching.py [--steps 60] [--threads 2] [--recipe recipes/quickstart/config.yaml]

Last line: `batching_speedup: X.XXx` (median step seconds grouped by characters / by tokens).
"""

import argparse
import statistics
import tempfile
import time

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from mtl_translate import train
from mtl_translate.configs import load_recipe
from mtl_translate.data.balancing import RowSampler
from mtl_translate.data.collator import MultiTargetCollator

ROUND = 5  # steps of one way before switching to the other


def padding(batch: dict) -> tuple[int, int, int, int]:
    """(padded, all) source positions and (padded, all) target positions of the rows holding that target."""
    mask = batch["attention_mask"]  # (B, S)
    pad_t = all_t = 0
    for labels in batch["labels"].values():  # (B, T), -100 where padded or absent
        present = labels[(labels != -100).any(1)]
        pad_t, all_t = pad_t + int((present == -100).sum()), all_t + present.numel()
    return int((mask == 0).sum()), mask.numel(), pad_t, all_t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="recipes/quickstart/config.yaml")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per way (after 2 warm-up steps each)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as out:
        recipe = load_recipe(args.recipe, ["--output_dir", out])
        t, data, accelerator = recipe.training, recipe.data, Accelerator(cpu=True)
        rows, _ = train.load_data(recipe, accelerator)
        encoder_path = train.resolve_encoder(recipe.model.encoder_name_or_path)
        tokenizer = train.build_tokenizer(recipe, rows, encoder_path, accelerator)
        collator = MultiTargetCollator(tokenizer, data.source_lang, data.target_langs, recipe.model.max_source_length,
                                       recipe.model.max_target_length)
        model = train.build_model(recipe, tokenizer, encoder_path, recipe.model.encoder_name_or_path, None).train()
        optimizer, _ = train.build_optimizer(recipe, model, t.max_steps)
        chars = [len(row[data.source_lang]) for row in rows["translation"]]
        by_chars = DataLoader(rows, batch_size=t.per_device_train_batch_size, collate_fn=collator,
                              sampler=RowSampler(len(rows), t.seed, None, chars, t.per_device_train_batch_size))
        loaders = {"characters": iter(by_chars), "tokens": iter(train.build_loader(recipe, rows, collator, accelerator))}
        seconds, pads = {way: [] for way in loaders}, {way: [0, 0, 0, 0] for way in loaders}

        def step(way: str) -> float:
            batch = next(loaders[way])
            pads[way] = [a + b for a, b in zip(pads[way], padding(batch))]
            start = time.perf_counter()
            optimizer.zero_grad()
            model(**batch).loss.backward()
            optimizer.step()
            return time.perf_counter() - start

        for way in loaders:
            for _ in range(2):
                step(way)
        pads = {way: [0, 0, 0, 0] for way in loaders}  # count the timed batches only
        for _ in range(0, args.steps, ROUND):
            for way in loaders:
                seconds[way] += [step(way) for _ in range(ROUND)]
    print(f"{args.recipe}: {args.steps} steps per way, batch {t.per_device_train_batch_size}, "
          f"threads {torch.get_num_threads()}")
    print(f"{'grouped by':<12}{'source padding':>16}{'target padding':>16}{'s/step (median)':>17}")
    median = {way: statistics.median(s) for way, s in seconds.items()}
    for way, (pad_s, all_s, pad_t, all_t) in pads.items():
        print(f"{way:<12}{pad_s / all_s:>16.1%}{pad_t / all_t:>16.1%}{median[way]:>17.3f}")
    print(f"batching_speedup: {median['characters'] / median['tokens']:.2f}x")


if __name__ == "__main__":
    main()
