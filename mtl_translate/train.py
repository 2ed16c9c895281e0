"""`mtl-translate train RECIPE.yaml [--key value ...]`: fine-tune a multi-target model with Accelerate.

Stages: data -> tokenizers -> model -> optimizer -> loop (log, evaluate, checkpoint) -> best model -> test -> push.
"""

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer, get_scheduler

from .configs import Recipe
from .data.balancing import RowSampler, language_shares, target_mask, temperature_row_weights
from .data.collator import MultiTargetCollator
from .data.gettext import build_gettext_corpus
from .data.loading import language_coverage, load_multitarget_dataset, sample_rows
from .encoders import resolve_encoder
from .evaluation import evaluate_translator, format_results
from .hub import push_to_hub, save_model_card
from .modeling_mtl import MTLTranslationModel
from .tokenization_mtl import MTLTokenizer, TargetTokenizer
from .translate import Translator

logger = logging.getLogger(__name__)


def load_data(recipe: Recipe, accelerator: Accelerator):
    data = recipe.data
    with accelerator.main_process_first():
        if data.build_gettext and not os.path.exists(data.dataset_name):
            stats = build_gettext_corpus(
                data.target_langs, data.dataset_name, source_lang=data.source_lang, seed=recipe.training.seed,
                test_domains=data.gettext_test_domains, max_source_words=data.gettext_max_source_words,
            )
            accelerator.print(f"built gettext corpus in {data.dataset_name}: {stats['rows']}")
    wanted = [s for s in (data.train_split, data.validation_split, data.test_split) if s]
    splits = {
        name: load_multitarget_dataset(data.dataset_name, data.source_lang, data.target_langs, split=name,
                                       dataset_config=data.dataset_config, column_mapping=data.column_mapping or None)
        for name in wanted
    }
    train = splits[data.train_split].shuffle(seed=recipe.training.seed)
    if data.max_train_samples:
        train = train.select(range(min(data.max_train_samples, len(train))))
    evals = {name: sample_rows(splits[name], data.max_test_samples if name == data.test_split
                               else data.max_eval_samples, recipe.training.seed) for name in wanted[1:]}
    accelerator.print(f"train rows: {len(train)}, target coverage: {language_coverage(train, data.target_langs)}")
    return train, evals


def build_tokenizer(recipe: Recipe, train, encoder_path: str, accelerator: Accelerator) -> MTLTokenizer:
    """Train one SentencePiece model per language on its training targets (reused when resuming)."""
    out, langs = recipe.training.output_dir, recipe.data.target_langs
    with accelerator.main_process_first():
        files = {lang: os.path.join(out, "tokenizers", lang, "tokenizer.model") for lang in langs}
        if all(map(os.path.exists, files.values())):
            targets = {lang: TargetTokenizer(vocab_file=path) for lang, path in files.items()}
            return MTLTokenizer(AutoTokenizer.from_pretrained(encoder_path), targets)
        rows = train.select_columns(["translation"])[:]["translation"]
        texts = {lang: [row[lang] for row in rows if row[lang]] for lang in langs}
        return MTLTokenizer.train(encoder_path, texts, recipe.model.target_vocab_size, out)


def build_model(recipe: Recipe, tokenizer: MTLTokenizer, encoder_path: str, encoder_name: str) -> MTLTranslationModel:
    m = recipe.model
    model = MTLTranslationModel.from_encoder(
        encoder_path, source_lang=recipe.data.source_lang, languages=list(recipe.data.target_langs),
        target_vocab_sizes={lang: len(tok) for lang, tok in tokenizer.targets.items()},
        decoder_layers=m.decoder_layers, decoder_hidden_size=m.decoder_hidden_size,
        decoder_attention_heads=m.decoder_attention_heads, decoder_ffn_dim=m.decoder_ffn_dim,
        decoder_dropout=m.decoder_dropout, max_target_positions=m.max_target_length + 1,
        label_smoothing=m.label_smoothing, sharing=m.sharing, soft_sharing_weight=m.soft_sharing_weight,
        shared_layers=m.shared_layers, language_groups=m.language_groups or None, loss_weighting=m.loss_weighting,
        loss_weights=m.loss_weights, dwa_temperature=m.dwa_temperature, dwa_window=m.dwa_window,
        gradnorm_alpha=m.gradnorm_alpha,
    )
    model.config.encoder_name_or_path = encoder_name
    model.generation_config.max_new_tokens = recipe.training.eval_max_new_tokens
    model.generation_config.num_beams = recipe.training.num_beams
    model.generation_config.no_repeat_ngram_size = recipe.training.no_repeat_ngram_size
    model.freeze_encoder(m.trainable_encoder_layers)
    if recipe.training.gradient_checkpointing:
        model.activation_checkpointing_enable()
    return model


def build_optimizer(recipe: Recipe, model: MTLTranslationModel, num_steps: int):
    """AdamW; no weight decay on biases and norms; the encoder may get its own learning rate."""
    t = recipe.training
    groups = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lr = t.encoder_learning_rate or t.learning_rate if name.startswith("encoder.") else t.learning_rate
        decay = 0.0 if param.ndim < 2 else t.weight_decay
        groups.setdefault((lr, decay), []).append(param)
    optimizer = torch.optim.AdamW([{"params": p, "lr": lr, "weight_decay": wd} for (lr, wd), p in groups.items()])
    scheduler = get_scheduler(t.lr_scheduler_type, optimizer, num_warmup_steps=t.warmup_steps,
                              num_training_steps=num_steps)
    return optimizer, scheduler


def build_loader(recipe: Recipe, train, collator, accelerator: Accelerator) -> DataLoader:
    """Shuffled rows each epoch, grouped into batches of similar source length (less padding, faster steps) and,
    with `language_temperature` != 1, drawn with weights that rebalance the languages."""
    t, data = recipe.training, recipe.data
    rows = train["translation"]
    weights = None
    if data.language_temperature != 1.0:
        has = target_mask(rows, data.target_langs)
        weights = temperature_row_weights(has, data.language_temperature)
        shares = zip(data.target_langs, language_shares(has).tolist(), language_shares(has, weights).tolist())
        accelerator.print("language shares natural -> sampled (T=%g): %s" % (data.language_temperature, ", ".join(
            f"{lang} {a:.3f} -> {b:.3f}" for lang, a, b in shares)))
    lengths = [len(row[data.source_lang]) for row in rows] if t.group_by_length else None
    sampler = RowSampler(len(rows), t.seed, weights, lengths, t.per_device_train_batch_size)
    return DataLoader(train, batch_size=t.per_device_train_batch_size, sampler=sampler, collate_fn=collator)


def latest_checkpoint(output_dir: str) -> str | None:
    found = sorted(Path(output_dir, "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    return str(found[-1]) if found else None


class Trainer:
    """The training loop's state: what `save_state` checkpoints and `resume_from_checkpoint` restores."""

    def __init__(self, recipe: Recipe, accelerator: Accelerator, model, tokenizer, optimizer, scheduler, loader,
                 evals):
        self.recipe, self.accelerator, self.model, self.tokenizer = recipe, accelerator, model, tokenizer
        self.optimizer, self.scheduler, self.loader, self.evals = optimizer, scheduler, loader, evals
        self.state = {"step": 0, "best_mean_bleu": -1.0, "best_step": None, "history": []}

    def translator(self) -> Translator:
        return Translator(self.accelerator.unwrap_model(self.model), self.tokenizer, self.recipe.model.max_source_length)

    def save_checkpoint(self) -> None:
        t, acc = self.recipe.training, self.accelerator
        path = Path(t.output_dir, "checkpoints", f"step_{self.state['step']}")
        acc.save_state(str(path))
        if acc.is_main_process:
            (path / "trainer_state.json").write_text(json.dumps(self.state, indent=2))
            old = sorted(path.parent.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))[: -t.save_total_limit]
            for stale in old:
                shutil.rmtree(stale)

    def resume(self, checkpoint: str) -> None:
        if checkpoint == "latest":
            checkpoint = latest_checkpoint(self.recipe.training.output_dir)
            if checkpoint is None:
                raise ValueError(f"resume_from_checkpoint=latest but {self.recipe.training.output_dir}/checkpoints "
                                 "holds no step_* folder.")
        if not os.path.isdir(checkpoint):
            raise ValueError(f"resume_from_checkpoint={checkpoint} is not a checkpoint folder.")
        self.accelerator.load_state(checkpoint)
        self.state = json.loads(Path(checkpoint, "trainer_state.json").read_text())
        self.accelerator.print(f"resumed from {checkpoint} at step {self.state['step']}")

    def validate(self) -> None:
        acc, t = self.accelerator, self.recipe.training
        translator = self.translator()  # puts the model in eval mode until the end of this method
        results = evaluate_translator(translator, self.evals[self.recipe.data.validation_split],
                                      self.recipe.data.source_lang, batch_size=t.per_device_eval_batch_size,
                                      accelerator=acc)
        step = self.state["step"]
        self.state["history"].append({"step": step, "validation": results})
        acc.log({"eval/mean_bleu": results["mean_bleu"], **{f"eval/bleu_{k}": v for k, v in results["bleu"].items()}},
                step=step)
        acc.print(f"\nstep {step} validation\n{format_results(results)}")
        if results["mean_bleu"] > self.state["best_mean_bleu"]:
            self.state.update(best_mean_bleu=results["mean_bleu"], best_step=step)
            if acc.is_main_process:
                translator.save_pretrained(t.output_dir)
        self.model.train()
        acc.wait_for_everyone()

    def train(self) -> None:
        t = self.recipe.training
        progress = tqdm(total=t.max_steps, initial=self.state["step"], disable=not self.accelerator.is_local_main_process,
                        desc="train")
        deadline = None if t.max_train_minutes is None else time.monotonic() + 60 * t.max_train_minutes
        self.model.train()
        while not self.train_epoch(progress, deadline):
            pass
        progress.close()

    def train_epoch(self, progress, deadline: float | None) -> bool:
        """Runs the rest of the current epoch; True once training is over (max_steps or max_train_minutes)."""
        acc, t = self.accelerator, self.recipe.training
        steps_per_epoch = math.ceil(len(self.loader) / t.gradient_accumulation_steps)
        epoch, done_in_epoch = divmod(self.state["step"], steps_per_epoch)
        self.loader.set_epoch(epoch)
        batches = acc.skip_first_batches(self.loader, done_in_epoch * t.gradient_accumulation_steps) \
            if done_in_epoch else self.loader
        window = []
        for batch in batches:
            with acc.accumulate(self.model):
                out = self.model(**batch)
                acc.backward(out.loss)
                if acc.sync_gradients:
                    acc.clip_grad_norm_(self.model.parameters(), t.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad()
            losses = {"loss": out.loss, **out.language_losses}
            if out.sharing_penalty is not None:
                losses["sharing_penalty"] = out.sharing_penalty
            window.append({k: v.item() for k, v in losses.items()})
            if not acc.sync_gradients:
                continue
            self.state["step"] += 1
            step = self.state["step"]
            progress.update(1)
            if step % t.logging_steps == 0 or step == 1:
                logs = {f"train/{k}": sum(w[k] for w in window if k in w) / sum(k in w for w in window)
                        for k in {key for w in window for key in w}}
                logs["train/lr"] = self.scheduler.get_last_lr()[0]
                weights = acc.unwrap_model(self.model).loss_weighting.current_weights()
                logs.update({f"train/weight_{lang}": w for lang, w in weights.items()})
                acc.log(logs, step=step)
                progress.set_postfix(loss=f"{logs['train/loss']:.3f}")
                window = []
            out_of_time = deadline is not None and time.monotonic() > deadline
            last = step >= t.max_steps or out_of_time
            if step % t.eval_steps == 0 or last:
                self.validate()
            if step % t.save_steps == 0 or last:
                self.save_checkpoint()
            if last:
                if out_of_time:
                    acc.print(f"\nstopping at step {step}: max_train_minutes={t.max_train_minutes} reached")
                return True
        return False


def run(recipe: Recipe) -> dict:
    """Train, keep the best model by mean validation BLEU in `output_dir`, score it on the test split."""
    t, data = recipe.training, recipe.data
    accelerator = Accelerator(
        gradient_accumulation_steps=t.gradient_accumulation_steps, mixed_precision=t.mixed_precision,
        log_with=t.report_to or None, project_dir=t.output_dir,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],  # absent languages skip heads
    )
    set_seed(t.seed)
    os.makedirs(t.output_dir, exist_ok=True)
    encoder_path = resolve_encoder(recipe.model.encoder_name_or_path)
    # 1. data and tokenizers
    train, evals = load_data(recipe, accelerator)
    tokenizer = build_tokenizer(recipe, train, encoder_path, accelerator)
    collator = MultiTargetCollator(tokenizer, data.source_lang, data.target_langs,
                                   recipe.model.max_source_length, recipe.model.max_target_length)
    # 2. model, optimizer, loader
    model = build_model(recipe, tokenizer, encoder_path, recipe.model.encoder_name_or_path)
    optimizer, scheduler = build_optimizer(recipe, model, t.max_steps)
    loader = build_loader(recipe, train, collator, accelerator)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    if t.report_to:
        accelerator.init_trackers("mtl-translate", config={k: str(v) for k, v in recipe.to_dict().items()})
    trainer = Trainer(recipe, accelerator, model, tokenizer, optimizer, scheduler, loader, evals)
    if t.resume_from_checkpoint:
        trainer.resume(t.resume_from_checkpoint)
    # 3. train: the best model by validation BLEU lands in output_dir
    trainer.train()
    # 4. test the best model, write results, recipe and model card
    results = {"best_step": trainer.state["best_step"], "best_validation_mean_bleu": trainer.state["best_mean_bleu"]}
    if accelerator.is_main_process:
        recipe.save(Path(t.output_dir, "recipe.yaml"))
    if data.test_split:
        best = Translator.from_pretrained(t.output_dir, device=str(accelerator.device))
        results = {**evaluate_translator(best, evals[data.test_split], data.source_lang,
                                         batch_size=t.per_device_eval_batch_size, accelerator=accelerator),
                   "split": data.test_split, "dataset": data.dataset_name, **results}
        accelerator.print(f"\ntest ({data.test_split}) of the best model (step {results['best_step']})\n"
                          f"{format_results(results)}")
    if accelerator.is_main_process:
        Path(t.output_dir, "eval_results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
        save_model_card(t.output_dir, t.hub_model_id)
        if t.push_to_hub:
            if not t.hub_model_id:
                raise ValueError("push_to_hub: true needs hub_model_id: ORG/NAME in the recipe.")
            url = push_to_hub(t.output_dir, t.hub_model_id, private=t.hub_private_repo, token=t.hub_token)
            accelerator.print(f"pushed to {url}")
    accelerator.end_training()
    return results
