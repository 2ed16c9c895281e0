"""The training objective of one optimizer step, the same however its batch is split into micro-batches and processes.

    L = Σ_l w_l · S_l / N_l  +  R

S_l: the sum of language l's token losses over every micro-batch of the step on every process; N_l: its target tokens
over the same, counted before the step's forward passes (`StepObjective.count`). R: the terms that count once per
step: those that depend on parameters only (uncertainty weighting's Σ_l s_l, the soft-sharing penalty), and the mean
over the step's passes of a penalty on activations (sluice networks' orthogonality term, each pass's value on its own
activations). A missing target adds nothing to S_l nor to N_l, so a language weighs w_l wherever its rows fall:
transformers' `num_items_in_batch`, per language.

Each of the step's F forward passes (all processes) returns its part of L: Σ_l w_l · s_l / N_l + R_f / F, with s_l its
own token-loss sums (the weighting computes it: losses.py) and R_f the penalty it computed (the same in every pass
when it depends on parameters only); the parts sum to L. An activation penalty is not a sum over rows (sluice's is
quadratic in a pass's activations, as batch statistics are), so its mean over passes, unlike the rest of L, depends
on how the step is split: the same for accumulation and processes of equal micro-batches, not for one batch of all.
DDP averages gradients over the P processes, so each part is backpropagated times P (`backward_scale`), and the
summed gradients are ∇L. The model knows nothing of this: it takes a `StepObjective` and returns its part (without
one: its batch is the whole step).
"""

from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class StepObjective:
    counts: dict[str, float]  # {lang: N_l}, target tokens of the whole step
    forwards: int = 1  # F: forward passes in the step, all processes together
    processes: int = 1  # P: DDP averages the gradients over them
    step: int = 0  # the optimizer step (0-based), for per-pass randomness that must not depend on the split
    pass_index: int = 0  # this forward pass's index in the step, the same for any split (see `count`)

    @classmethod
    def of_batch(cls, counts: dict[str, torch.Tensor]) -> "StepObjective":
        """One forward pass that is a whole step: per-language means of this batch (a plain model call)."""
        return cls({lang: float(n) for lang, n in counts.items()})

    @classmethod
    def count(cls, batches: list[dict], langs: list[str], accelerator, step: int) -> "StepObjective":
        """The objective of a step made of this process's `batches` (their `labels` {lang: (B, T)}, -100 = no
        target): token counts and passes summed over the processes (one all-reduce)."""
        device = batches[0]["input_ids"].device
        local = torch.zeros(len(langs) + 1, dtype=torch.float64, device=device)  # (K + 1,) N_l..., F
        for batch in batches:
            for k, lang in enumerate(langs):
                if lang in batch["labels"]:
                    local[k] += (batch["labels"][lang] != -100).sum()
        local[-1] = len(batches)
        total = accelerator.reduce(local, "sum") if accelerator.num_processes > 1 else local
        total = total.tolist()
        return cls(dict(zip(langs, total[:-1])), int(total[-1]), accelerator.num_processes, step,
                   accelerator.process_index * len(batches))

    def for_pass(self, index: int) -> "StepObjective":
        """The objective seen by this process's `index`-th pass: pass i of process p is the pass that one process
        with accumulation would run (p * passes per process + i)-th, as the data loader hands out rows."""
        return replace(self, pass_index=self.pass_index + index)

    @property
    def present(self) -> list[str]:
        """Languages with at least one target token in the step: those whose once-per-step terms count."""
        return [lang for lang, n in self.counts.items() if n > 0]

    @property
    def share(self) -> float:
        """Each pass's share of a once-per-step term."""
        return 1.0 / self.forwards

    @property
    def backward_scale(self) -> float:
        """What a pass's part is multiplied by before backward: undoes DDP's average over processes."""
        return float(self.processes)

    @property
    def seed(self) -> int:
        """A seed of (step, pass): random choices inside a pass that are the same for any split and on resume."""
        return 1_000_003 * self.step + self.pass_index

    def part(self, sums: dict[str, torch.Tensor], counts: dict[str, torch.Tensor], weighting,
             penalty: torch.Tensor | None = None, penalty_weight: float = 0.0) -> torch.Tensor | None:
        """This pass's part of L from its per-language token-loss sums and token counts; None without targets."""
        if not sums:
            return None
        loss = weighting(sums, counts, self)
        return loss if penalty is None else loss + penalty_weight * penalty * self.share
