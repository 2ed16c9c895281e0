"""`mtl-translate train RECIPE.yaml [--key value ...]`: fine-tune a multi-target model with Accelerate.

Stages: data -> tokenizers -> model -> optimizer -> loop (log, evaluate, checkpoint) -> best model -> test -> push.
"""

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import time
from datetime import timedelta
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs, InitProcessGroupKwargs
from accelerate.state import AcceleratorState
from accelerate.utils import broadcast, send_to_device, set_seed
from datasets import Dataset
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from . import metavariables
from .checkpointing import (TrainingError, check_output_dir, check_resume_compatible, clear_folder,
                            complete_checkpoints, describe, injected_delay, recipe_changes, remove_unfinished_saves,
                            replace_folder_contents, resolve_checkpoint, save_checkpoint, saved_recipe, space_checked,
                            tensor_bytes)
from .configs import Recipe
from .conflict import conflict_keys, gradient_conflict
from .data.balancing import (LanguageBatchSampler, OneTargetRows, RowSampler, language_shares,
                             limit_rows_per_language, target_mask, temperature_row_weights)
from .data.collator import MultiTargetCollator
from .data.gettext import build_gettext_corpus, corpus_is_complete
from .data.loading import is_single_file, language_coverage, load_splits, sample_rows
from .data.streaming import RowStream, StreamingRows
from .encoders import encoder_error, load_encoder_tokenizer, resolve_encoder
from .evaluation import PER_LANGUAGE, bleu_metric, evaluate_translator, format_results, summarize
from .hub import push_to_hub, save_model_card
from .languages import add_language, train_only
from .launch import accelerator_kwargs, check_process_group, relaunch_if_single_of_many
from .modeling_mtl import MTLTranslationModel
from .objective import StepObjective
from .optimization import (APPLIED_ON_RESUME, UNSIZED_SCHEDULES, identity_plan, parameter_groups, planned_schedule,
                           replan, schedule_shape, set_rates, settings_on_resume)
from .outputs import TRACKER_PROJECT, TRAIN_RESULTS_FILE, refuse_output_over_input
from .placeholders import mask_rows, unknown_mask_tokens
from .preemption import EXIT_CODE, SigtermFlag
from .tokenization_mtl import MTLTokenizer, TargetTokenizer
from .translate import Translator
from .weighting_methods import AGGREGATOR_OPTIONS

logger = logging.getLogger(__name__)


def trained_languages(recipe: Recipe) -> list[str]:
    """The languages this run trains (`train_languages`, default all): their data is loaded and scored."""
    return list(recipe.training.train_languages or recipe.data.target_langs)


def evaluation_max_new_tokens(recipe: Recipe, translator: Translator) -> int:
    """What validation and the final test decode at most: `eval_max_new_tokens` within the model's positions, as
    transformers' `generation_max_length` (run_translation.py) caps evaluate and predict alike."""
    return min(recipe.training.eval_max_new_tokens, translator.model.config.max_target_positions)


def load_data(recipe: Recipe, accelerator: Accelerator):
    data, langs = recipe.data, trained_languages(recipe)
    with accelerator.main_process_first():
        if data.build_gettext and not corpus_is_complete(data.dataset_name, data.gettext_heldout_domains):
            stats = build_gettext_corpus(
                data.target_langs, data.dataset_name, source_lang=data.source_lang, seed=recipe.training.seed,
                test_domains=data.gettext_test_domains, max_source_words=data.gettext_max_source_words,
                heldout_domains=data.gettext_heldout_domains,
            )
            accelerator.print(f"built gettext corpus in {data.dataset_name}: {stats['rows']}")
    wanted = [s for s in (data.train_split, data.validation_split, data.test_split) if s]
    splits = load_splits(data, langs, [name for name in wanted if not (data.streaming and name == data.train_split)],
                         recipe.training.seed)
    if is_single_file(data.dataset_name):
        accelerator.print(f"{data.dataset_name} is one file, without splits: "
                          f"{', '.join(f'{len(rows)} rows {name}' for name, rows in splits.items())}, drawn with seed "
                          f"{recipe.training.seed} (test_split_percentage {data.test_split_percentage:g}, "
                          f"validation_split_percentage {data.validation_split_percentage:g})")
    evals = {name: sample_rows(splits[name], data.max_test_samples if name == data.test_split
                               else data.max_eval_samples, recipe.training.seed) for name in wanted[1:]}
    if data.streaming:  # read while it trains (data/streaming.py); evaluation splits are small: in memory
        train = RowStream(data.dataset_name, data.train_split, data.source_lang, langs,
                          data.column_mapping or None, data.protect_placeholders)
        accelerator.print(f"train rows: streamed from {train.path} (shuffle buffer {data.shuffle_buffer_size})")
        return train, evals
    splits[data.train_split] = limit_rows_per_language(splits[data.train_split], data.max_rows_per_language, langs,
                                                       recipe.training.seed)
    train = splits[data.train_split].shuffle(seed=recipe.training.seed)
    if data.max_train_samples:
        train = train.select(range(min(data.max_train_samples, len(train))))
    if data.protect_placeholders:  # evaluation rows stay raw: the Translator masks and restores by itself
        rows, protected, missing = mask_rows(train["translation"], data.source_lang)
        train = Dataset.from_dict({"translation": rows}, features=train.features)
        accelerator.print(f"placeholders: {protected} of {len(rows)} training rows have protected spans; targets "
                          f"lacking one of their source's spans (kept): "
                          f"{', '.join(f'{lang} {n}' for lang, n in missing.items())}")
    accelerator.print(f"train rows: {len(train)}, target coverage: {language_coverage(train, langs)}")
    return train, evals


def tokenizer_fingerprint(texts: dict[str, list[str]], vocab_size: int, shared: list[list[str]]) -> str:
    """What the target tokenizers were trained from: languages, vocabulary size, shared vocabularies and every
    training target."""
    digest = hashlib.sha256(json.dumps({"vocab_size": vocab_size, "languages": list(texts),
                                        **({"shared_vocabularies": shared} if shared else {})}).encode())
    for lang, lines in texts.items():
        digest.update(f"\0{lang}\0".encode())
        digest.update("\n".join(lines).encode())
    return digest.hexdigest()


def build_tokenizer(recipe: Recipe, train, encoder_path: str, accelerator: Accelerator,
                    init: Translator | None = None) -> MTLTokenizer:
    """One SentencePiece model per language, trained on its training targets, or per `shared_vocabularies` group,
    trained on its languages' targets together (every member gets a copy in its own tokenizers/<lang>/); languages
    of the `init_model` keep theirs. A resumed run reuses the ones it trained, after checking they came from the
    same data (a fresh run starts in an empty output_dir). A stream trains them on its first `tokenizer_train_rows`
    rows: SentencePiece holds its texts in memory (and samples 2M sentences of them anyway)."""
    out, langs, shared = recipe.training.output_dir, recipe.data.target_langs, recipe.model.shared_vocabularies
    source = init.tokenizer.source if init else load_encoder_tokenizer(encoder_path, recipe.model.encoder_name_or_path)
    targets = {lang: init.tokenizer.targets[lang] for lang in langs if init and lang in init.tokenizer.targets}
    kept = [lang for group in shared for lang in group if lang in targets]
    if kept:
        raise ValueError(f"recipe key 'shared_vocabularies' ({shared}) groups {kept}, which keep the vocabulary of "
                         f"init_model {recipe.model.init_model}; a shared vocabulary is trained for new languages only: "
                         "group only languages the init model lacks.")
    new = [lang for lang in langs if lang not in targets]
    units = [*shared, *([lang] for lang in new if not any(lang in group for group in shared))]  # one model each
    rows = train.head(recipe.data.tokenizer_train_rows) if recipe.data.streaming else \
        train.select_columns(["translation"])[:]["translation"]
    texts = {lang: [row[lang] for row in rows if row[lang]] for lang in new}
    fingerprint = tokenizer_fingerprint(texts, recipe.model.target_vocab_size, shared)
    stamp = Path(out, "tokenizers", "fingerprint.json")
    folder = {lang: os.path.join(out, "tokenizers", lang) for lang in new}
    with accelerator.main_process_first():
        if stamp.is_file():
            if json.loads(stamp.read_text())["fingerprint"] != fingerprint:
                raise ValueError(f"{stamp.parent}: these tokenizers were trained on other data or languages than this "
                                 "run's (fingerprint differs); resume with the data the run started with, or start a "
                                 "fresh run with --overwrite_output_dir true.")
        else:
            for unit in units:
                TargetTokenizer.train([text for lang in unit for text in texts[lang]], recipe.model.target_vocab_size,
                                      folder[unit[0]], "+".join(unit))
                for lang in unit[1:]:
                    os.makedirs(folder[lang], exist_ok=True)
                    shutil.copyfile(os.path.join(folder[unit[0]], "tokenizer.model"),
                                    os.path.join(folder[lang], "tokenizer.model"))
            if accelerator.is_main_process:
                stamp.parent.mkdir(parents=True, exist_ok=True)
                stamp.write_text(json.dumps({"fingerprint": fingerprint}))
        targets.update({lang: TargetTokenizer(vocab_file=os.path.join(folder[lang], "tokenizer.model")) for lang in new})
    return MTLTokenizer(source, {lang: targets[lang] for lang in langs})


def load_init_model(recipe: Recipe) -> Translator | None:
    """`init_model`: the trained model a run continues from. Its languages must all stay in `target_langs`, and a
    language it lacks (added now) must be trained."""
    init = recipe.model.init_model
    if init is None:
        return None
    translator = Translator.from_pretrained(init, device="cpu")
    have, want = translator.model.config.languages, recipe.data.target_langs
    dropped = [lang for lang in have if lang not in want]
    if dropped:
        raise ValueError(f"init_model {init} has {dropped}, missing from target_langs {want}; keep every language "
                         "(remove one with `mtl-translate remove-language`).")
    untrained = [lang for lang in want if lang not in have and lang not in trained_languages(recipe)]
    if untrained:
        raise ValueError(f"target_langs {untrained} are new to init_model {init} but not in train_languages "
                         f"{recipe.training.train_languages}: a new language must be trained.")
    return translator


def build_model(recipe: Recipe, tokenizer: MTLTokenizer, encoder_path: str, encoder_name: str,
                init: Translator | None = None) -> MTLTranslationModel:
    m, protect = recipe.model, recipe.data.protect_placeholders
    unknown = unknown_mask_tokens(tokenizer.source) if protect else []
    if unknown:
        raise ValueError(f"protect_placeholders: the tokenizer of {encoder_name!r} reads the mask tokens {unknown} "
                         "as unknown, so their indices would be lost; set protect_placeholders: false.")
    if init is not None:
        if getattr(init.model.config, "protect_placeholders", False) != protect:
            raise ValueError(f"init_model {m.init_model} was trained with protect_placeholders="
                             f"{not protect}, this recipe has {protect}: one model masks placeholders in all its "
                             f"languages or in none; set protect_placeholders: {str(not protect).lower()}.")
        return continue_model(recipe, init.model, tokenizer)
    try:
        model = MTLTranslationModel.from_encoder(
            encoder_path, source_lang=recipe.data.source_lang, languages=list(recipe.data.target_langs),
            target_vocab_sizes={lang: len(tok) for lang, tok in tokenizer.targets.items()},
            decoder_layers=m.decoder_layers, decoder_hidden_size=m.decoder_hidden_size,
            decoder_attention_heads=m.decoder_attention_heads, decoder_ffn_dim=m.decoder_ffn_dim,
            decoder_dropout=m.decoder_dropout, shared_decoder_layers=m.shared_decoder_layers,
            embedding_groups=m.shared_vocabularies if m.share_group_embeddings else None,
            max_target_positions=m.max_target_length + 1,
            label_smoothing=m.label_smoothing, sharing=m.sharing, soft_sharing_weight=m.soft_sharing_weight,
            shared_layers=m.shared_layers, language_groups=m.language_groups or None, loss_weighting=m.loss_weighting,
            loss_weights=m.loss_weights, dwa_temperature=m.dwa_temperature, dwa_window=m.dwa_window,
            gradnorm_alpha=m.gradnorm_alpha, famo_lr=m.famo_lr, famo_gamma=m.famo_gamma,
            cross_stitch_init=m.cross_stitch_init, adapter_size=m.adapter_size,
            sluice_subspaces=m.sluice_subspaces, sluice_orthogonality_weight=m.sluice_orthogonality_weight,
            **{key: getattr(m, key) for key in AGGREGATOR_OPTIONS},
        )
    except OSError as err:  # transformers' "not a valid model identifier" / missing files
        raise encoder_error(encoder_name, err) from None
    model.config.encoder_name_or_path = encoder_name
    model.config.protect_placeholders = protect  # the Translator masks and restores (placeholders.py)
    model.config.encoder._name_or_path = encoder_name  # not the local copy a package ships (no local paths saved)
    return prepare_model(recipe, model)


def continue_model(recipe: Recipe, model: MTLTranslationModel, tokenizer: MTLTokenizer) -> MTLTranslationModel:
    """The `init_model` with the languages it lacks added (partial sharing: in their `language_groups` group)."""
    group_of = {lang: group for group, members in recipe.model.language_groups.items() for lang in members}
    for lang in recipe.data.target_langs:
        if lang not in model.config.languages:
            add_language(model, lang, len(tokenizer[lang]), group_of.get(lang))
    return prepare_model(recipe, model)


def prepare_model(recipe: Recipe, model: MTLTranslationModel) -> MTLTranslationModel:
    """Generation defaults and limits of this recipe; what trains (encoder layers, `train_languages`). The saved
    `max_new_tokens` is the longest target the model was trained for: `eval_max_new_tokens` only speeds up this
    run's evaluations (`evaluation_max_new_tokens`), it must not cut every later translation."""
    m, t = recipe.model, recipe.training
    model.config.max_source_length = m.max_source_length  # inference truncates (with a warning) where training did
    model.generation_config.max_new_tokens = model.config.max_target_positions
    model.generation_config.num_beams = t.num_beams
    model.generation_config.no_repeat_ngram_size = t.no_repeat_ngram_size
    model.generation_config.repetition_penalty = t.repetition_penalty
    model.freeze_encoder(m.trainable_encoder_layers)
    if t.train_languages:
        train_only(model, t.train_languages)
    if t.gradient_checkpointing:
        model.activation_checkpointing_enable()
    return model


def build_optimizer(recipe: Recipe, model: MTLTranslationModel, num_steps: int, num_processes: int = 1):
    """AdamW over optimization.parameter_groups: no weight decay on biases, norms, mixing weights and loss weights;
    every pretrained encoder parameter (soft-sharing copies and partial-sharing group blocks included) may get its
    own learning rate.

    The scheduler is sized as in Accelerate's examples: once prepared, it steps once per process at each optimizer
    step, so warmup and decay lengths are multiplied by the number of processes."""
    t = recipe.training
    groups = parameter_groups(t, model)
    optimizer = torch.optim.AdamW([{"params": p, "lr": lr, "weight_decay": wd} for (lr, wd), p in groups.items()])
    scheduler = get_scheduler(t.lr_scheduler_type, optimizer, num_warmup_steps=t.warmup_steps * num_processes,
                              num_training_steps=num_steps * num_processes)
    return optimizer, scheduler


def build_loader(recipe: Recipe, train, collator, accelerator: Accelerator) -> DataLoader:
    """Shuffled rows each epoch, grouped into batches of similar source length in tokens (less padding, faster
    steps) and, with `language_temperature` != 1, drawn with weights that rebalance the languages. With
    `language_batches`, each device batch holds B rows of every language instead, each row training that language
    only.

    The row order depends on the seed, the epoch and the global batch (per device x processes x accumulation) only,
    so N processes with batch B see the rows that one process with batch N*B (or accumulation N) sees. The loader
    has its own seeded generator: iterators it creates on resume do not draw from the global RNG (dropout).

    With `streaming`, the stream orders and shards its rows alike (data/streaming.py), endlessly; each batch carries
    the stream position after it, for the checkpoint."""
    t, data = recipe.training, recipe.data
    if data.streaming:
        stream = StreamingRows(train, t.seed, data.shuffle_buffer_size, t.per_device_train_batch_size,
                               accelerator.num_processes, accelerator.process_index, t.gradient_accumulation_steps,
                               t.group_by_length, collator.source_lengths)
        return DataLoader(stream, batch_size=None, generator=torch.Generator().manual_seed(t.seed),
                          collate_fn=lambda item: {**collator(item["rows"]), "stream_position": item["position"]})
    rows = train["translation"]
    lengths = collator.source_lengths(rows) if t.group_by_length else None
    global_batch = t.per_device_train_batch_size * accelerator.num_processes * t.gradient_accumulation_steps
    if data.language_batches:
        langs = trained_languages(recipe)
        sampler = LanguageBatchSampler(target_mask(rows, langs), t.seed, t.per_device_train_batch_size, global_batch,
                                       lengths, langs)
        accelerator.print(f"language batches: {t.per_device_train_batch_size} rows of each of {len(langs)} languages "
                          f"per device batch; an epoch is {sampler.steps} optimizer steps")
        items, batch_size = OneTargetRows(rows, data.source_lang, langs), t.per_device_train_batch_size * len(langs)
    else:
        weights = None
        if data.language_temperature != 1.0:
            has = target_mask(rows, data.target_langs)
            weights = temperature_row_weights(has, data.language_temperature)
            shares = zip(data.target_langs, language_shares(has).tolist(), language_shares(has, weights).tolist())
            accelerator.print("language shares natural -> sampled (T=%g): %s" % (data.language_temperature, ", ".join(
                f"{lang} {a:.3f} -> {b:.3f}" for lang, a, b in shares)))
        sampler = RowSampler(len(rows), t.seed, weights, lengths, global_batch)
        items, batch_size = train, t.per_device_train_batch_size
    return DataLoader(items, batch_size=batch_size, sampler=sampler, collate_fn=collator,
                      generator=torch.Generator().manual_seed(t.seed))


class Trainer:
    """The training loop's state: what a checkpoint saves and `resume_from_checkpoint` restores."""

    def __init__(self, recipe: Recipe, accelerator: Accelerator, model, tokenizer, optimizer, scheduler, loader,
                 evals):
        self.recipe, self.accelerator, self.model, self.tokenizer = recipe, accelerator, model, tokenizer
        self.optimizer, self.scheduler, self.loader, self.evals = optimizer, scheduler, loader, evals
        self.state = {"step": 0, "best_mean_bleu": -1.0, "best_step": None, "history": [], "log_window": [],
                      "skipped_steps": 0, "bad_steps_in_a_row": 0, "num_processes": accelerator.num_processes}
        self.sigterm, self.saved_step = SigtermFlag(), None  # installed around train() by train_and_test
        # this process's times, for train_results.json: in train() in all, inside train_step (no data loading,
        # validation or checkpoints), and its optimizer steps
        self.timing = {"train_runtime": 0.0, "step_seconds": 0.0, "train_steps": 0}

    def translator(self) -> Translator:
        return Translator(self.accelerator.unwrap_model(self.model), self.tokenizer, self.recipe.model.max_source_length)

    def save_checkpoint(self) -> None:
        t = self.recipe.training
        needed = tensor_bytes(self.model.state_dict()) + tensor_bytes(self.optimizer.state_dict())
        save_checkpoint(self.accelerator, t.output_dir, self.state["step"], self.state, self.recipe,
                        t.save_total_limit, self.state["best_step"], needed)
        self.saved_step = self.state["step"]

    def save_best(self, translator: Translator) -> None:
        """Written next to the output folder's files, then moved in file by file (see replace_folder_contents)."""
        if self.accelerator.is_main_process:
            out = Path(self.recipe.training.output_dir)
            kept = "the best model saved before is intact" if (out / "model.safetensors").is_file() else \
                "no best model was saved before"
            with space_checked(out / ".tmp-best", f"the best model (step {self.state['best_step']}) to {out}",
                               tensor_bytes(translator.model.state_dict()),
                               f"{kept}. Free some space, then resume with resume_from_checkpoint: latest"):
                translator.save_pretrained(str(out / ".tmp-best"))
            replace_folder_contents(out / ".tmp-best", out)

    def resume(self, path: Path) -> None:
        """Restores the checkpoint, then applies what the recipe changes of the optimizer and the schedule
        (optimization.py); a change that cannot be applied is refused before anything is loaded."""
        saved = saved_recipe(path)
        changes = recipe_changes(saved, self.recipe.to_dict(), APPLIED_ON_RESUME)
        rates = settings_on_resume(changes, self.recipe.training, self.accelerator.unwrap_model(self.model), path)
        try:
            self.accelerator.load_state(str(path))
        except Exception as err:  # a truncated optimizer.bin / model.safetensors, a missing random_states file, ...
            raise ValueError(f"checkpoint {path} cannot be loaded ({type(err).__name__}: {err}); it is corrupt or "
                             "incomplete: resume from an earlier checkpoint folder (resume_from_checkpoint: "
                             "PATH) or delete this one.") from None
        self.state = json.loads(Path(path, "trainer_state.json").read_text())
        if self.recipe.data.streaming:
            if "stream_position" not in self.state:
                raise ValueError(f"checkpoint {path} was written by a run without streaming; resume it with "
                                 "streaming: false, or start a fresh run.")
            self.loader.dataset.resume(self.state["stream_position"])
        self.accelerator.print(f"resumed from {path} at step {self.state['step']}")
        self.apply_recipe(changes, rates, saved.get("max_steps", self.recipe.training.max_steps))

    def apply_recipe(self, changes: dict, rates: list[tuple[float, float]], old_max_steps: int) -> None:
        """The recipe's rates (`changes`: the keys that differ from the checkpoint's; `rates`: per group) and
        max_steps, set on the loaded optimizer and schedule, and logged."""
        replanned = self.replan_schedule(old_max_steps)
        plan, processes = self.state.get("lr_schedule"), self.accelerator.num_processes
        if changes or plan:
            factor = plan and planned_schedule(schedule_shape(self.recipe.training, plan["sized_for"], processes),
                                               plan, processes)
            set_rates(self.scheduler.scheduler, self.optimizer, rates, factor)
        applied = changes and f"{describe(changes)} applied from step {self.state['step']} on"
        rates_now = " / ".join(sorted({f"{lr:.3g}" for lr in self.scheduler.get_last_lr()}))
        for change in filter(None, (applied, replanned)):
            self.accelerator.print(f"resume: {change}; learning rate now {rates_now}")

    def replan_schedule(self, old_max_steps: int) -> str | None:
        """A new max_steps re-plans the rest of the schedule (optimization.replan), kept in the state for the
        checkpoints to come. Returns what it did, to be logged."""
        t, step = self.recipe.training, self.state["step"]
        if t.max_steps == old_max_steps or step >= t.max_steps:
            return None
        change = f"max_steps {old_max_steps} -> {t.max_steps}"
        if t.lr_scheduler_type in UNSIZED_SCHEDULES:
            return f"{change}: the {t.lr_scheduler_type} schedule does not depend on max_steps and goes on as it was"
        plan = self.state.get("lr_schedule") or identity_plan(old_max_steps)
        self.state["lr_schedule"] = replan(plan, step, t.max_steps)
        start = "the rate of its last step (the run had finished)" if step >= plan["until"] else "its current rate"
        return f"{change}: the {t.lr_scheduler_type} schedule goes on from {start} and ends at step {t.max_steps}"

    def stop_if_signalled(self) -> None:
        """At an optimizer step boundary, once any process got SIGTERM: a checkpoint (unless this step just saved
        one), a line that says so, and the exit code of a job that SIGTERM ended."""
        if not self.sigterm.agreed(self.accelerator):
            return
        if self.saved_step != self.state["step"]:
            self.save_checkpoint()
        path = Path(self.recipe.training.output_dir, "checkpoints", f"step_{self.state['step']}")
        self.accelerator.print(f"\nreceived SIGTERM: saved checkpoint {path}, exiting; resume with "
                               "resume_from_checkpoint: latest")
        self.accelerator.end_training()
        raise SystemExit(EXIT_CODE)

    def validate(self) -> None:
        acc, t = self.accelerator, self.recipe.training
        translator = self.translator()  # puts the model in eval mode until the end of this method
        results = evaluate_translator(translator, self.evals[self.recipe.data.validation_split],
                                      self.recipe.data.source_lang, trained_languages(self.recipe),
                                      batch_size=t.per_device_eval_batch_size, accelerator=acc,
                                      bleu_tokenize=t.bleu_tokenize,
                                      max_new_tokens=evaluation_max_new_tokens(self.recipe, translator))
        step = self.state["step"]
        self.state["history"].append({"step": step, "validation": results})
        acc.log({"eval/mean_bleu": results["mean_bleu"], "eval/mean_chrf": results["mean_chrf"],
                 **{f"eval/{metric}_{k}": v for metric in ("bleu", "chrf") for k, v in results[metric].items()}},
                step=step)
        acc.print(f"\nstep {step} validation\n{format_results(results)}")
        if results["mean_bleu"] > self.state["best_mean_bleu"]:
            self.state.update(best_mean_bleu=results["mean_bleu"], best_step=step)
            self.save_best(translator)
        self.model.train()
        acc.wait_for_everyone()

    def train(self) -> None:
        t = self.recipe.training
        if self.state["step"] >= t.max_steps:
            self.accelerator.print(f"the run is already at step {self.state['step']} >= max_steps={t.max_steps}: "
                                   "nothing to train (raise max_steps to continue it, from its last learning rate)")
            return
        progress = tqdm(total=t.max_steps, initial=self.state["step"], disable=not self.accelerator.is_local_main_process,
                        desc="train")
        deadline = None if t.max_train_minutes is None else time.monotonic() + 60 * t.max_train_minutes
        self.model.train()
        start = time.perf_counter()
        while not self.train_epoch(progress, deadline):
            pass
        self.timing["train_runtime"] += time.perf_counter() - start
        progress.close()

    def out_of_time(self, deadline: float | None) -> bool:
        """Decided by the main process's clock for every process: they must agree on the last step, or one would
        enter validation (collectives) while another trains, and the run would hang."""
        if deadline is None:
            return False
        late = torch.tensor([time.monotonic() > deadline], dtype=torch.int32, device=self.accelerator.device)
        return bool(broadcast(late, from_process=0).item()) if self.accelerator.num_processes > 1 else bool(late)

    def optimizer_step(self) -> bool:
        """Clip, check, step. False when the gradient is not finite: the step is skipped (weights, optimizer and
        schedule unchanged). The clipped norm is computed from gradients already averaged over processes, so every
        process takes the same decision. With fp16, Accelerate's GradScaler skips overflowing steps itself."""
        acc, t = self.accelerator, self.recipe.training
        dump_gradients(acc, self.model, self.state["step"])
        norm = acc.clip_grad_norm_(self.model.parameters(), t.max_grad_norm)
        finite = acc.scaler is not None or bool(torch.isfinite(norm))
        if finite:
            self.optimizer.step()
            self.scheduler.step()
        self.optimizer.zero_grad()
        return finite

    def count_bad_step(self, good: bool) -> None:
        t, state = self.recipe.training, self.state
        if good:
            state["bad_steps_in_a_row"] = 0
            return
        state["skipped_steps"] += 1
        state["bad_steps_in_a_row"] += 1
        self.accelerator.print(f"\nwarning: step {state['step']}: non-finite loss or gradient, optimizer step skipped "
                               f"({state['skipped_steps']} skipped so far)")
        if state["bad_steps_in_a_row"] >= t.max_bad_steps:
            found = complete_checkpoints(t.output_dir)
            last = f"the last checkpoint is {found[-1][1]}" if found else "no checkpoint was saved"
            raise TrainingError(f"training stopped at step {state['step']}: the loss or gradient was not finite for "
                               f"{state['bad_steps_in_a_row']} steps in a row (max_bad_steps={t.max_bad_steps}); "
                               f"{last}. Lower learning_rate, check the data, or use mixed_precision: no.")

    def logs_at(self, step: int) -> bool:
        return step % self.recipe.training.logging_steps == 0 or step == 1

    def log(self, step: int, progress) -> None:
        """Means over the accumulated micro-batches of every process (one all-reduce), as one process with the
        global batch would log them."""
        acc, window = self.accelerator, self.state["log_window"]
        keys = ["loss", *self.recipe.data.target_langs, "sharing_penalty"]
        if self.recipe.training.log_gradient_conflict:
            keys += conflict_keys(self.recipe.data.target_langs)
        sums = torch.tensor([[sum(w.get(k, 0.0) for w in window), sum(k in w for w in window)] for k in keys],
                            dtype=torch.float64, device=acc.device)  # (K, 2) sum and count per key
        sums = acc.reduce(sums, "sum").tolist()
        logs = {f"train/{k}": total / count for k, (total, count) in zip(keys, sums) if count}
        logs["train/lr"] = self.scheduler.get_last_lr()[0]
        logs["train/skipped_steps"] = self.state["skipped_steps"]
        weights = acc.unwrap_model(self.model).loss_weighting.current_weights()
        logs.update({f"train/weight_{lang}": w for lang, w in weights.items()})
        acc.log(logs, step=step)
        self.state["history"].append({"step": step, **logs})
        if "train/loss" in logs:
            progress.set_postfix(loss=f"{logs['train/loss']:.3f}")
        self.state["log_window"] = []

    def epoch_batches(self):
        """The rest of the current epoch: the batches a resumed run already trained on are skipped."""
        t = self.recipe.training
        steps_per_epoch = math.ceil(len(self.loader) / t.gradient_accumulation_steps)
        epoch, done_in_epoch = divmod(self.state["step"], steps_per_epoch)
        self.loader.set_epoch(epoch)
        return self.accelerator.skip_first_batches(self.loader, done_in_epoch * t.gradient_accumulation_steps) \
            if done_in_epoch else self.loader

    def stream_batches(self):
        """Endless (data/streaming.py); the stream position after each batch goes into the state that the next
        checkpoint saves. Batches are pulled one at a time, when trained on."""
        for batch in self.loader:
            self.state["stream_position"] = batch.pop("stream_position")
            yield send_to_device(batch, self.accelerator.device)

    def step_batches(self):
        """The micro-batches of each optimizer step in turn: `gradient_accumulation_steps` of them (the last step of
        an epoch may have fewer). Known before the step's forward passes: the objective counts their tokens."""
        accumulation, batches = self.recipe.training.gradient_accumulation_steps, []
        for batch in self.stream_batches() if self.recipe.data.streaming else self.epoch_batches():
            batches.append(batch)
            if len(batches) == accumulation:
                yield batches
                batches = []
        if batches:
            yield batches

    def train_step(self, batches: list[dict]) -> bool:
        """One optimizer step on this process's micro-batches: forward and backward each with the step's objective
        (objective.py: per-language token counts of the whole step, all processes), gradients synchronised across
        processes at the last one only (as transformers' Trainer accumulates), then clip and step. Logs the step's
        loss and per-language mean losses (over every micro-batch and process) and hands them to the loss
        weighting. False when the step was skipped (not finite)."""
        acc, langs = self.accelerator, trained_languages(self.recipe)
        measure = self.recipe.training.log_gradient_conflict and self.logs_at(self.state["step"] + 1)
        objective = StepObjective.count(batches, langs, acc, self.state["step"])
        totals = torch.zeros(len(langs) + 2, dtype=torch.float64, device=acc.device)  # (K + 2,) S_l..., L, penalty
        conflict = {}
        for i, batch in enumerate(batches):
            with contextlib.nullcontext() if i == len(batches) - 1 else acc.no_sync(self.model):
                out = self.model(**batch, objective=objective.for_pass(i), output_encoder_states=measure and i == 0)
                if measure and i == 0:  # measured on the first micro-batch, before its backward
                    conflict = gradient_conflict(out, batch["labels"], langs)
                acc.backward(out.loss * objective.backward_scale)
            for k, lang in enumerate(langs):
                if lang in out.language_loss_sums:
                    totals[k] += out.language_loss_sums[lang].detach()
            totals[-2] += out.loss.detach()
            if out.sharing_penalty is not None:  # the step's: the mean over its passes (objective.py)
                totals[-1] += out.sharing_penalty.detach() * objective.share
        good = self.optimizer_step()
        totals = (acc.reduce(totals, "sum") if acc.num_processes > 1 else totals).tolist()
        means = {lang: totals[k] / objective.counts[lang] for k, lang in enumerate(langs) if objective.counts[lang]}
        if good:  # the same on every process, as the collectives a weighting may run in end_step
            reduce = (lambda t: acc.reduce(t, "sum")) if acc.num_processes > 1 else None
            acc.unwrap_model(self.model).loss_weighting.end_step(means, reduce)
        penalty = {"sharing_penalty": totals[-1]} if out.sharing_penalty is not None else {}
        self.state["log_window"].append({"loss": totals[-2], **means, **penalty, **conflict})
        return good

    def train_epoch(self, progress, deadline: float | None) -> bool:
        """Runs the rest of the current epoch (a stream: of the run); True once training is over (max_steps or
        max_train_minutes)."""
        t = self.recipe.training
        for batches in self.step_batches():
            start = time.perf_counter()
            good = self.train_step(batches)  # ends with a host sync (the step's losses), so the time is the device's
            self.timing["step_seconds"] += time.perf_counter() - start
            self.timing["train_steps"] += 1
            self.state["step"] += 1
            step = self.state["step"]
            progress.update(1)
            injected_delay("STEP")
            self.count_bad_step(good)
            if self.logs_at(step):
                self.log(step, progress)
            out_of_time = self.out_of_time(deadline)
            last = step >= t.max_steps or out_of_time
            if self.recipe.data.validation_split and (step % t.eval_steps == 0 or last):
                self.validate()
            if step % t.save_steps == 0 or last:
                self.save_checkpoint()
            if last:
                if out_of_time:
                    self.accelerator.print(f"\nstopping at step {step}: max_train_minutes={t.max_train_minutes} "
                                           "reached")
                return True
            self.stop_if_signalled()
        return False


def dump_gradients(accelerator: Accelerator, model, step: int) -> None:
    """Test hook: with MTL_TRANSLATE_TEST_GRADIENTS=PATH, the main process saves every gradient of the first
    optimizer step (after the sync across processes, before clipping) to PATH (safetensors), to compare how one
    objective is split."""
    path = os.environ.get("MTL_TRANSLATE_TEST_GRADIENTS")
    if path and step == 0 and accelerator.is_main_process:
        save_file({name: param.grad.detach().cpu().contiguous()
                   for name, param in accelerator.unwrap_model(model).named_parameters() if param.grad is not None},
                  path)


def train_results(trainer: Trainer) -> dict:
    """This process's training time, as transformers' Trainer names it (`train_runtime`: the whole loop, validation
    and checkpoints included; steps since the start or the resume), and `seconds_per_step`: the mean time inside an
    optimizer step (forward, backward, loss weighting, optimizer), which is what a method's cost changes."""
    timing, accelerator = trainer.timing, trainer.accelerator
    return {"train_runtime": round(timing["train_runtime"], 2), "train_steps": timing["train_steps"],
            "train_steps_per_second": round(timing["train_steps"] / timing["train_runtime"], 3),
            "seconds_per_step": round(timing["step_seconds"] / timing["train_steps"], 4),
            "num_processes": accelerator.num_processes, "device": str(accelerator.device)}


def carry_over_scores(results: dict, init_model: str | None) -> dict:
    """Languages this run did not train are bit-identical to the `init_model`'s: their scores are carried over from
    its eval_results.json (listed under `carried_over`, with the data they were measured on)."""
    path = Path(init_model or "", "eval_results.json")
    if init_model is None or not path.is_file():
        return results
    old = json.loads(path.read_text())
    kept = [lang for lang in old.get("bleu", {}) if lang not in results["bleu"]]
    for key in PER_LANGUAGE:
        results[key] = {**results.get(key, {}), **{lang: old[key][lang] for lang in kept if lang in old.get(key, {})}}
    results["carried_over"] = {"languages": kept, "from": init_model, "dataset": old.get("dataset")}
    return summarize(results)


def held_out(recipe: Recipe) -> dict:
    """How the test rows of a single-file dataset were drawn (data/loading.load_splits), for eval_results.json and
    the model card: {} for data with splits."""
    if not is_single_file(recipe.data.dataset_name):
        return {}
    return {"held_out": {"test_split_percentage": recipe.data.test_split_percentage, "seed": recipe.training.seed}}


def start_accelerator(recipe: Recipe) -> Accelerator:
    """One process group for every launcher (launch.py), then an output_dir that holds only this run."""
    t = recipe.training
    relaunch_if_single_of_many()
    accelerator = Accelerator(
        mixed_precision=t.mixed_precision,  # accumulation is the loop's (Trainer.train_step): no division by its steps
        log_with=t.report_to or None, project_dir=t.output_dir, **accelerator_kwargs(),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True),  # absent languages skip heads
                         InitProcessGroupKwargs(timeout=timedelta(seconds=t.ddp_timeout))],  # a hang becomes an error
    )
    check_process_group(accelerator)
    reads = {"dataset_name": recipe.data.dataset_name, "init_model": recipe.model.init_model,
             "encoder_name_or_path": recipe.model.encoder_name_or_path}
    refuse_output_over_input(t.output_dir, reads, "output_dir", "Keep what a run reads outside its output_dir (the "
                             "run writes there, and overwrite_output_dir clears it)")
    clear = check_output_dir(t.output_dir, resume=bool(t.resume_from_checkpoint), overwrite=t.overwrite_output_dir)
    accelerator.wait_for_everyone()  # every process has checked before the main one writes
    if accelerator.is_main_process:
        os.makedirs(t.output_dir, exist_ok=True)
        if clear:
            clear_folder(t.output_dir)
        remove_unfinished_saves(t.output_dir)
    accelerator.wait_for_everyone()
    return accelerator


def run(recipe: Recipe) -> dict:
    """Train, keep the best model by mean validation BLEU in `output_dir`, score it on the test split.

    Accelerate's state (mixed precision, accumulation) is process-wide: it is reset at the end, so that another run
    in the same process (`compare`'s variants, a notebook) may use other settings."""
    try:
        return train_and_test(recipe)
    finally:
        AcceleratorState._reset_state()


def train_and_test(recipe: Recipe) -> dict:
    t, data = recipe.training, recipe.data
    accelerator = start_accelerator(recipe)
    checkpoint = None
    if t.resume_from_checkpoint:  # checked before anything is built: a wrong resume fails in seconds
        checkpoint = resolve_checkpoint(t.resume_from_checkpoint, t.output_dir)
        check_resume_compatible(checkpoint, recipe, accelerator.num_processes)
    for lang in data.target_langs:  # a BLEU tokenizer that cannot load (mecab, flores200) fails now, not at step 1000
        bleu_metric(lang, t.bleu_tokenize)
    set_seed(t.seed)
    encoder_path = resolve_encoder(recipe.model.encoder_name_or_path)
    # 1. data and tokenizers
    init = load_init_model(recipe)
    train, evals = load_data(recipe, accelerator)
    tokenizer = build_tokenizer(recipe, train, encoder_path, accelerator, init)
    collator = MultiTargetCollator(tokenizer, data.source_lang, trained_languages(recipe),
                                   recipe.model.max_source_length, recipe.model.max_target_length)
    # 2. model, optimizer, loader
    model = build_model(recipe, tokenizer, encoder_path, recipe.model.encoder_name_or_path, init)
    if not data.streaming:  # `--output=FILE` -> `--output=DATEI`, as this corpus translates it (metavariables.py)
        model.generation_config.metavariables = metavariables.mine(train["translation"], data.source_lang,
                                                                   trained_languages(recipe))
    optimizer, scheduler = build_optimizer(recipe, model, t.max_steps, accelerator.num_processes)
    loader = build_loader(recipe, train, collator, accelerator)
    if data.streaming:  # the stream shards itself: Accelerate would shard it again (or dispatch it from process 0)
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    else:
        model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    if t.report_to:
        accelerator.init_trackers(TRACKER_PROJECT, config={k: str(v) for k, v in recipe.to_dict().items()})
    trainer = Trainer(recipe, accelerator, model, tokenizer, optimizer, scheduler, loader, evals)
    if checkpoint is not None:
        trainer.resume(checkpoint)
    # 3. train: the best model by validation BLEU lands in output_dir (without validation: the last one)
    with trainer.sigterm:
        trainer.train()
    trainer.stop_if_signalled()  # SIGTERM during the last step: its checkpoint is saved, test and push are not run
    if not data.validation_split:
        trainer.state["best_step"] = trainer.state["step"]
        trainer.save_best(trainer.translator())
    accelerator.wait_for_everyone()
    # 4. test the best model, write results, recipe and model card
    results = {"best_step": trainer.state["best_step"], "best_validation_mean_bleu": trainer.state["best_mean_bleu"]}
    if accelerator.is_main_process:
        recipe.save(Path(t.output_dir, "recipe.yaml"))
        Path(t.output_dir, "trainer_state.json").write_text(json.dumps(trainer.state, indent=2))
        if trainer.timing["train_steps"]:  # a run resumed at max_steps trained nothing: its earlier file stays
            Path(t.output_dir, TRAIN_RESULTS_FILE).write_text(json.dumps(train_results(trainer), indent=2))
    if data.test_split:
        best = Translator.from_pretrained(t.output_dir, device=str(accelerator.device))
        results = {**evaluate_translator(best, evals[data.test_split], data.source_lang, trained_languages(recipe),
                                         batch_size=t.per_device_eval_batch_size, accelerator=accelerator,
                                         bleu_tokenize=t.bleu_tokenize,
                                         max_new_tokens=evaluation_max_new_tokens(recipe, best)),
                   "split": data.test_split, "dataset": data.dataset_name, **held_out(recipe), **results}
        results = carry_over_scores(results, recipe.model.init_model)
        accelerator.print(f"\ntest ({data.test_split}) of the best model (step {results['best_step']})\n"
                          f"{format_results(results)}")
    if accelerator.is_main_process:
        Path(t.output_dir, "eval_results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
        save_model_card(t.output_dir, t.hub_model_id)
        if t.push_to_hub:
            url = push_to_hub(t.output_dir, t.hub_model_id, private=t.hub_private_repo, token=t.hub_token)
            accelerator.print(f"pushed to {url}")
    accelerator.wait_for_everyone()  # no process tears the group down while another still works
    del trainer, model, optimizer, scheduler, loader  # DDP's reducer goes while its process group still exists
    accelerator.free_memory()
    accelerator.end_training()
    return results
