"""TorchJD's gradient aggregators (https://torchjd.org) on the per-language gradients at the shared encoder output.

    pcgrad      Yu et al. 2020, "Gradient Surgery for Multi-Task Learning"
    upgrad      Quinton & Rey 2024, "Jacobian Descent for Multi-Objective Optimization"
    dualproj    Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory for Continual Learning" (Eq. 11)
    mgda        Désidéri 2012; Sener & Koltun 2018, "Multi-Task Learning as Multi-Objective Optimization"
    cagrad      Liu et al. 2021, "Conflict-Averse Gradient Descent for Multi-task Learning"
    nashmtl     Navon et al. 2022, "Multi-Task Learning as a Bargaining Game"
    fairgrad    Ban & Ji 2024, "Fair Resource Allocation in Multi-Task Learning"
    alignedmtl  Senushkin et al. 2023, "Independent Component Alignment for Multi-Task Learning"
    imtlg       Liu et al. 2021, "Towards Impartial Multi-task Learning" (IMTL-G)
    config      Liu et al. 2024, "ConFIG: Towards Conflict-free Training of Physics Informed Neural Networks"
    graddrop    Chen et al. 2020, "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout"
    random      Lin et al. 2021, "Reasonable Effectiveness of Random Weighting" (RLW)
    gradvac     Wang et al. 2021, "Gradient Vaccine: ... in Massively Multilingual Models"

The loss is the plain sum (weights 1). In backward, the gradients w.r.t. the encoder output h of the P languages
that ran in the forward pass, each its part of the step's objective (objective.py), are the rows of J (P, B*S*E,
float32); the aggregator turns J into the gradient of h, and the encoder's backward runs once. A pass with one
language has nothing to combine: its gradient passes unchanged.

Randomness (pcgrad's and gradvac's orders, graddrop's and random's draws) comes from torch's global RNG inside
torchjd, which takes no generator: each call runs in `torch.random.fork_rng`, seeded by (step, pass)
(`StepObjective.seed`), so a pass draws the same whatever the split of the step, on resume too, and the training's
own RNG stream is untouched. pcgrad with that seed is the hand-written PCGrad it replaces, in the same order
(tests/test_aggregators.py).

Not offered: mean, sum and constant (the `static` weighting); krum and trimmed_mean (Byzantine-robust averaging of
many clients' gradients, whose options count rows that are not faulty: not a multi-task method); excessmtl, pcd,
cr_mogm, modo and sdmgrad (their state is per row and moves at every call; here the rows are the languages of each
micro-batch, and a step's micro-batches run on several processes: each needs the treatment given to gradvac below).
"""

import functools
import warnings

import torch
from torchjd.aggregation import (IMTLG, MGDA, AlignedMTL, CAGrad, ConFIG, DualProj, FairGrad, GradDrop, GradVac,
                                 NashMTL, PCGrad, Random, UPGrad)
from transformers import initialization as init

from .losses import LossWeighting, PerLanguage
from .weighting_methods import AGGREGATOR_OPTIONS, check_loss_weighting

# Each nashmtl call builds its cvxpy problem anew (no warm start), so cvxpy's advice on faster re-solves is moot.
warnings.filterwarnings("ignore", "You are solving a parameterized problem that is not DPP", UserWarning)

# name: (options, m rows) -> a new torchjd aggregator. New at every call: stateless, whatever the previous pass.
AGGREGATORS = {
    "pcgrad": lambda o, m: PCGrad(),
    "upgrad": lambda o, m: UPGrad(),
    "dualproj": lambda o, m: DualProj(),
    "mgda": lambda o, m: MGDA(),
    "cagrad": lambda o, m: CAGrad(c=o["cagrad_c"]),
    "nashmtl": lambda o, m: NashMTL(n_tasks=m, max_norm=o["nashmtl_max_norm"], optim_niter=o["nashmtl_optim_niter"]),
    "fairgrad": lambda o, m: FairGrad(alpha=o["fairgrad_alpha"]),
    "alignedmtl": lambda o, m: AlignedMTL(scale_mode=o["alignedmtl_scale_mode"]),
    "imtlg": lambda o, m: IMTLG(),
    "config": lambda o, m: ConFIG(),
    "graddrop": lambda o, m: GradDrop(leak=torch.full((m,), o["graddrop_leak"])),
    "random": lambda o, m: Random(),
    "gradvac": lambda o, m: GradVac(beta=1.0, eps=o["gradvac_eps"]),  # beta 1: after a call, its state holds φ
}


class Aggregation(LossWeighting):
    """Plain sum of the losses; in backward, the torchjd aggregator of `config.loss_weighting` combines the
    per-language gradients at the shared encoder output.

    Rows are the pass's parts of each language's step gradient, without DDP's factor P (`backward_scale`, put back
    on the result). With one pass per step they are the papers' per-task mean-loss gradients. Scale-free
    aggregators (all but nashmtl and fairgrad) sum their per-pass updates like gradients; nashmtl's update keeps the
    paper's size whatever the rows' scale (fairgrad's does not follow it either), so each pass adds its `share` of
    it: the step's update is their mean over the step's passes. NashMTL starts each solve from torchjd's initial state (no warm start from the
    previous step), so that a pass does not depend on which process ran the one before. `forward` must run after
    `route` and before backward: it leaves the pass's step and languages for backward to read."""

    def __init__(self, config):
        super().__init__(config)
        self.method = config.loss_weighting
        self.scale_free = check_loss_weighting(self.method).scale_free
        self.options = {key: getattr(config, key, default) for key, default in AGGREGATOR_OPTIONS.items()}
        self._pass = None

    def forward(self, sums, counts, step):
        self._pass = step, set(sums)
        return super().forward(sums, counts, step)

    def route(self, hidden, langs):
        if torch.is_grad_enabled() and hidden.requires_grad and len(langs) > 1:
            return dict(zip(langs, PerLanguage.apply(functools.partial(self.combine, langs), len(langs), hidden)))
        return super().route(hidden, langs)

    def combine(self, langs, grads):
        """grads: N x (B, S, E), P ∂(s_l / N_l)/∂h per routed language (zeros for one whose head did not run)."""
        step, ran = self._pass
        rows = [k for k, lang in enumerate(langs) if lang in ran]
        if len(rows) < 2:
            return (sum(grads),)
        J = torch.stack([grads[k].float().flatten() for k in rows]) / step.backward_scale  # (P, B*S*E)
        others = [J.device] if J.device.type != "cpu" else []
        with torch.random.fork_rng(others, device_type=J.device.type), torch.autocast(J.device.type, enabled=False):
            torch.manual_seed(step.seed)
            update = self.aggregate([langs[k] for k in rows], J)  # (B*S*E,)
        update = update * step.backward_scale * (1.0 if self.scale_free else step.share)
        return (update.view_as(grads[0]).to(grads[0].dtype),)

    def aggregate(self, langs: list[str], J: torch.Tensor) -> torch.Tensor:
        """J: (P, D), the rows of `langs` -> (D,)."""
        return AGGREGATORS[self.method](self.options, len(langs))(J)


class GradVacAggregation(Aggregation):
    """GradVac: language i's gradient gets a multiple of j's added when their cosine φ_ij falls below the target
    φ̂_ij, so that it reaches it; φ̂ is an EMA of the observed φ (rate `gradvac_beta`), one per ordered pair of the
    model's languages (`targets`, saved with the model). Wang et al. apply it per layer group of a massively
    multilingual Transformer; here it works on the shared encoder output, as the other aggregators.

    torchjd's GradVac moves φ̂ inside each call; here every pass of a step reads φ̂ as it was at the step's start, and
    `end_step` moves it once with the mean φ of each pair over the step's passes and processes (for one pass per
    step: the paper's update; for any split: the same). torchjd runs with beta 1 on the present languages' block of
    φ̂, so that its state after the call is the observed φ (torchjd keeps φ̂ in the private `_phi_t`: tested)."""

    def __init__(self, config):
        super().__init__(config)
        self.beta = float(self.options["gradvac_beta"])
        self.register_buffer("targets", torch.empty(len(self.languages), len(self.languages)))  # (K, K) φ̂_ij
        self.reset_parameters()
        self._observed = None  # (step, (2, K, K) sums of φ_ij and their counts), kept out of DDP's buffer broadcast

    def reset_parameters(self):
        init.zeros_(self.targets)  # as the paper, LibMTL and torchjd

    def forward(self, sums, counts, step):
        if self._observed is None or self._observed[0] != step.step:  # a new step (the last one may have been skipped)
            self._observed = step.step, self.targets.new_zeros(2, *self.targets.shape)
        return super().forward(sums, counts, step)

    def aggregate(self, langs, J):
        idx = torch.tensor([self.index[lang] for lang in langs])  # (P,)
        gradvac = AGGREGATORS["gradvac"](self.options, len(langs))
        gradvac.gramian_weighting._phi_t = self.targets.cpu()[idx[:, None], idx].to(J.dtype)  # (P, P) φ̂, on CPU
        gradvac.gramian_weighting._state_key = (len(langs), J.dtype)
        update = gradvac(J)
        pairs = ~torch.eye(len(langs), dtype=torch.bool)  # (P, P) i != j
        observed = torch.stack([gradvac.gramian_weighting._phi_t * pairs, pairs.float()])  # (2, P, P)
        self._observed[1][:, idx[:, None], idx] += observed.to(self.targets)
        return update

    def end_step(self, losses, reduce=None):
        local = self._observed[1] if self._observed is not None else self.targets.new_zeros(2, *self.targets.shape)
        total, count = (reduce or (lambda t: t))(local)  # (K, K) each, over every pass and process of the step
        mean = total / count.clamp_min(1)
        self.targets.copy_(torch.where(count > 0, (1 - self.beta) * self.targets + self.beta * mean, self.targets))
        self._observed = None

    @torch.no_grad()
    def carry_over(self, old):
        """Targets of the pairs of languages both modules have follow them; pairs with a new language start at 0."""
        shared = [lang for lang in self.languages if lang in old.index]
        mine = torch.tensor([self.index[lang] for lang in shared])
        theirs = torch.tensor([old.index[lang] for lang in shared])
        self.targets[mine[:, None], mine] = old.targets[theirs[:, None], theirs]
