"""AdamW's parameter groups and the learning-rate schedule, and what a resume may change about them.

A resume restores the checkpoint's optimizer and scheduler, then applies the recipe: a new `learning_rate`,
`encoder_learning_rate` or `weight_decay` is set in the groups it concerns, unless it would regroup the parameters
(refused, naming the key: the checkpoint's optimizer state is per group); a new `max_steps` re-plans the rest of
the schedule (`replan`). A new `warmup_steps` or `lr_scheduler_type` is refused before anything is built
(checkpointing.check_resume_compatible).
"""

import dataclasses
from collections.abc import Callable

import torch
from transformers import get_scheduler

from .checkpointing import describe

APPLIED_ON_RESUME = ("learning_rate", "encoder_learning_rate", "weight_decay")
# Schedules whose rate does not depend on max_steps: a new max_steps only moves the end of the run.
UNSIZED_SCHEDULES = ("constant", "constant_with_warmup", "inverse_sqrt")


def parameter_groups(t, model) -> dict[tuple[float, float], list[torch.nn.Parameter]]:
    """Trainable parameters by (learning rate, weight decay): no weight decay on biases, norms, mixing weights and
    loss weights (`model.no_decay_parameter_names`); every pretrained
    encoder parameter (soft-sharing copies and partial-sharing group blocks included) at `encoder_learning_rate`,
    the new modules (heads, adapters, cross-stitch α, loss weights) at `learning_rate`. Parameters with equal
    values share a group."""
    groups, no_decay = {}, set(model.no_decay_parameter_names())
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        in_encoder = name.startswith(("encoder.", "encoders.", "encoder_groups."))
        lr = t.encoder_learning_rate or t.learning_rate if in_encoder else t.learning_rate
        groups.setdefault((lr, 0.0 if name in no_decay else t.weight_decay), []).append(param)
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


def schedule_shape(t, num_steps: int, num_processes: int) -> Callable[[float], float]:
    """The recipe's schedule factor by scheduler step (steps x processes, as build_optimizer sizes it), taken from
    transformers' scheduler on a throwaway optimizer so that every lr_scheduler_type keeps its own shape."""
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    return get_scheduler(t.lr_scheduler_type, probe, num_warmup_steps=t.warmup_steps * num_processes,
                         num_training_steps=num_steps * num_processes).lr_lambdas[0]


def identity_plan(max_steps: int) -> dict:
    """The schedule as built: sized for `max_steps`, followed step for step."""
    return {"sized_for": max_steps, "from_step": 0, "at": 0, "until": max_steps}


def position(plan: dict, step: float) -> float:
    """Where in the schedule (sized for plan["sized_for"]) optimizer step `step` is: from plan["at"] at
    plan["from_step"], moving so as to reach the schedule's end at plan["until"]."""
    end, start, at = plan["sized_for"], plan["from_step"], plan["at"]
    return at + (step - start) * (end - at) / (plan["until"] - start)


def replan(plan: dict, step: int, max_steps: int) -> dict:
    """A new max_steps at `step`: the rest of the schedule is stretched (or squeezed) to end at max_steps, so the
    rate goes on from its current value without a jump. A finished run (its rate at the schedule's end, 0 for
    linear or cosine) has no rest: it goes on from the rate of its last step, over the schedule's last step
    stretched to the new ones (linear: from that rate straight down to 0), never from a re-sized schedule's
    higher rate."""
    at = position(plan, step if step < plan["until"] else step - 1)
    return {"sized_for": plan["sized_for"], "from_step": step, "at": at, "until": max_steps}


def planned_schedule(shape: Callable[[float], float], plan: dict, num_processes: int) -> Callable[[int], float]:
    """The factor LambdaLR multiplies the base rates with, by scheduler step. A plain function: LambdaLR saves
    nothing of it, the plan lives in trainer_state.json."""
    def factor(scheduler_step: int) -> float:
        return shape(num_processes * position(plan, scheduler_step / num_processes))
    return factor


def set_rates(scheduler, optimizer, rates: list[tuple[float, float]], factor) -> None:
    """Sets (base learning rate, weight decay) per group, and a new schedule factor unless None, on a loaded
    optimizer and LambdaLR; the current rates follow at once (the next optimizer step uses them)."""
    groups = optimizer.param_groups
    for group, (lr, decay) in zip(groups, rates, strict=True):
        group.update(initial_lr=lr, weight_decay=decay)
    if factor is not None:
        scheduler.lr_lambdas = [factor] * len(groups)
    scheduler.base_lrs = [group["initial_lr"] for group in groups]
    for group, base, fn in zip(groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * fn(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in groups]
