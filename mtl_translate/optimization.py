"""AdamW's parameter groups and the learning-rate schedule, and what a resume may change about them.

A resume restores the checkpoint's optimizer and scheduler, then applies the recipe: a new `learning_rate`,
`encoder_learning_rate` or `weight_decay` is set in the groups it concerns, unless it would regroup the parameters
(refused, naming the key: the checkpoint's optimizer state is per group). A new `warmup_steps` or
`lr_scheduler_type` is refused before anything is built (checkpointing.check_resume_compatible).
"""

import dataclasses

import torch

from .checkpointing import describe

APPLIED_ON_RESUME = ("learning_rate", "encoder_learning_rate", "weight_decay")


def parameter_groups(t, model) -> dict[tuple[float, float], list[torch.nn.Parameter]]:
    """Trainable parameters by (learning rate, weight decay): no weight decay on biases and norms; every pretrained
    encoder parameter (soft-sharing copies and partial-sharing group blocks included) at `encoder_learning_rate`,
    the new modules (heads, adapters, cross-stitch α, loss weights) at `learning_rate`. Parameters with equal
    values share a group."""
    groups = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        in_encoder = name.startswith(("encoder.", "encoders.", "encoder_groups."))
        lr = t.encoder_learning_rate or t.learning_rate if in_encoder else t.learning_rate
        groups.setdefault((lr, 0.0 if param.ndim < 2 else t.weight_decay), []).append(param)
    return groups


def settings_on_resume(changes: dict[str, tuple], t, model, checkpoint) -> list[tuple[float, float]]:
    """The recipe's (learning rate, weight decay) of each of the checkpoint's parameter groups, given the
    APPLIED_ON_RESUME keys that changed. Checked before the checkpoint is loaded: values that regroup the parameters
    (encoder_learning_rate set where the encoder shared the heads' group, weight_decay 0 where biases had their
    own) cannot be applied to the state saved per group, and are an error naming the key, not a corrupt checkpoint."""
    now = parameter_groups(t, model)
    before = parameter_groups(dataclasses.replace(t, **{key: old for key, (old, _) in changes.items()}), model)
    if [[id(p) for p in ps] for ps in now.values()] != [[id(p) for p in ps] for ps in before.values()]:
        raise ValueError(
            f"cannot resume from {checkpoint} with {describe(changes)}: the optimizer state is saved per parameter "
            f"group, and these values group the parameters differently ({len(before)} groups -> {len(now)}: the "
            "encoder shares the heads' group when encoder_learning_rate is unset or equal to learning_rate, biases "
            "and norms share the weights' group when weight_decay is 0). Keep the checkpoint's values, or start a "
            f"new run from the trained model (init_model: {t.output_dir}) in another output_dir.")
    return list(now)


def set_rates(scheduler, optimizer, rates: list[tuple[float, float]]) -> None:
    """Sets (base learning rate, weight decay) per group on a loaded optimizer and LambdaLR; the current rates
    follow at once (the next optimizer step uses them)."""
    groups = optimizer.param_groups
    for group, (lr, decay) in zip(groups, rates, strict=True):
        group.update(initial_lr=lr, weight_decay=decay)
    scheduler.base_lrs = [group["initial_lr"] for group in groups]
    for group, base, fn in zip(groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * fn(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in groups]
