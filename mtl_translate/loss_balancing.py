"""Loss-only balancing: weights from the losses alone, no per-language gradient, so a step costs what a plain
weighted sum costs however many languages there are. Names and defaults are LibMTL's.

    rlw      Lin et al. 2022, "Reasonable Effectiveness of Random Weighting: A Litmus Test for Multi-Task Learning"
    gls      Chennupati et al. 2019, "MultiNet++: Multi-Stream Feature Aggregation and Geometric Loss Strategy for
             Multi-Task Learning"
    dbmtl    Lin et al. 2023, "Dual-Balancing for Multi-Task Learning": its loss-scale balancing (log losses)
    famo     Liu, Feng, Stone & Liu 2023, "FAMO: Fast Adaptive Multitask Optimization"
    imtl_l   Liu et al. 2021, "Towards Impartial Multi-task Learning": its loss part, IMTL-L

The step objective (objective.py) must be linear in the per-pass loss sums, L = Σ_l w_l S_l / N_l (+ once-per-step
terms), for its gradient to be the same for one batch, accumulation and several processes: the weights of a step
must be known before its passes. GLS, DB-MTL and FAMO weigh each ∇L_l by a function of the step's own losses (the
gradients of (Π L_l)^(1/P), Σ log L_l, Σ z_l log L_l); here that function is taken at each language's latest past
step loss (`end_step`, the same on every process), which linearises the paper's objective around it. RLW's random
weights come from a generator seeded by the step; IMTL-L is a sum with learned scales, exact as it is.
"""

import torch
from transformers import initialization as init

from .losses import LossWeighting, UncertaintyWeighting

EPS = 1e-8  # LibMTL's floor under a loss that is divided by or logged


class StepWeights(LossWeighting):
    """Weights fixed before the step's passes, over the languages present in the step (`weights_of`)."""

    def weights_of(self, langs: list[str]) -> torch.Tensor:
        """(P,) the weights of `langs`, the languages of one step."""
        raise NotImplementedError

    def weights(self):
        return self.weights_of(self.languages).detach()  # as if every language were in the step

    def forward(self, sums, counts, step):
        w = dict(zip(step.present, self.weights_of(step.present)))
        return sum(w[lang] * total / step.counts[lang] for lang, total in sums.items())


class RandomLossWeighting(StepWeights):
    """w = softmax(ε) over the step's languages, ε ~ N(0, I): new random weights summing to 1 at every optimizer step
    (LibMTL's RLW; TorchJD's `Random` weighs gradients so). ε comes from a generator seeded by the step number alone:
    every pass and process of a step uses the same weights, and a resumed run draws the same ones. Nothing to save:
    the step number is the state."""

    _step = 0  # the step of the last forward pass: its weights are the ones logged

    def forward(self, sums, counts, step):
        self._step = step.step
        return super().forward(sums, counts, step)

    def weights_of(self, langs):
        normals = torch.randn(len(self.languages), generator=torch.Generator().manual_seed(self._step))  # (K,) ε
        return torch.softmax(normals[[self.index[lang] for lang in langs]], dim=0)


class PastLossWeights(StepWeights):
    """Weights from each language's latest step loss L̂_l: its mean over a whole past step (`end_step`), known before
    the step's passes. A float32 buffer saved with the model, so a resumed run weighs as the uninterrupted one."""

    def __init__(self, config):
        super().__init__(config)
        self.register_buffer("last_losses", torch.full((len(self.languages),), float("nan")))  # (K,) NaN: none yet

    def reset_parameters(self):
        init.constant_(self.last_losses, float("nan"))

    def end_step(self, losses, reduce=None):
        for lang, loss in losses.items():
            self.last_losses[self.index[lang]] = loss

    def past_losses(self, langs: list[str]) -> torch.Tensor:
        """(P,) L̂ of `langs`, at least EPS. A language without one yet stands at the geometric mean of the others'
        (1 when none has one): it is weighed as an average language, not as a zero or infinite loss."""
        past = self.last_losses[[self.index[lang] for lang in langs]]
        known = ~past.isnan()
        mean_log = torch.where(known, past, 1.0).log().sum() / known.sum().clamp_min(1)
        return torch.where(known, past, mean_log.exp()).clamp_min(EPS)


class GeometricLossStrategy(PastLossWeights):
    """The geometric mean of the step's losses, G = (Π_l L_l)^(1/P), whose gradient is Σ_l G / (P L_l) ∇L_l: every
    relative decrease counts the same, and a language with a small loss gets a large weight. The weights are taken at
    the latest past losses L̂ (before any: 1/P each): the step's gradient is Σ_l ∂G/∂L_l(L̂) ∇L_l."""

    def weights_of(self, langs):
        past = self.past_losses(langs)  # (P,)
        return past.log().mean().exp() / (len(langs) * past)


class DualBalancing(PastLossWeights):
    """DB-MTL's loss-scale balancing: Σ_l log L_l, whose gradient Σ_l ∇L_l / L_l no longer depends on the scale of
    each loss. The weights 1 / L̂_l are taken at the latest past losses (before any: 1, the plain sum). DB-MTL's other
    half, gradient-magnitude balancing (a moving average of each task's gradient of the shared parameters, scaled to
    the largest norm), needs per-language gradients: it is not part of this loss-only method."""

    def weights_of(self, langs):
        return 1.0 / self.past_losses(langs)


class FAMO(PastLossWeights):
    """Fast Adaptive Multitask Optimization: w_l = z_l / (c L_l), z = softmax(ξ), c = Σ_k z_k / L_k (so Σ w = 1): the
    gradient of Σ_l z_l log L_l / c. After each step ξ takes one Adam step of its own (lr `famo_lr`, L2 weight decay
    `famo_gamma`; LibMTL's defaults 0.025 and 1e-3) along J_softmax(ξ)ᵀ δ, with δ_l = log L_l(before) −
    log L_l(after): a language whose log loss fell more than the z-weighted mean loses weight, one that lags gains it.

    On the step objective: L_l in the weights is the latest past step loss L̂_l (FAMO takes the current one, which a
    split step does not know before its passes), and δ compares two consecutive steps' losses, each on its own batch,
    instead of FAMO's extra forward pass on the same batch after the update: no pass is added. The offset FAMO
    subtracts from each loss (its lower bound, 0 in FAMO's and LibMTL's code) stays 0. A language absent from either
    step keeps its ξ and Adam state: softmax and update run over the languages of both steps. ξ, Adam's moments and
    per-language step counts are float32 buffers (not parameters: the model's optimizer never sees them), saved with
    the model, so a resume goes on bit for bit."""

    def __init__(self, config):
        super().__init__(config)
        self.lr = float(getattr(config, "famo_lr", 0.025))
        self.gamma = float(getattr(config, "famo_gamma", 1e-3))
        k = len(self.languages)
        self.register_buffer("previous", torch.full((k,), float("nan")))  # (K,) the last step's losses; NaN: absent
        for name in ("logits", "exp_avg", "exp_avg_sq", "adam_steps"):  # (K,) ξ and its Adam state
            self.register_buffer(name, torch.zeros(k))

    def reset_parameters(self):
        super().reset_parameters()
        init.constant_(self.previous, float("nan"))
        for buffer in (self.logits, self.exp_avg, self.exp_avg_sq, self.adam_steps):
            init.zeros_(buffer)

    def weights_of(self, langs):
        z = torch.softmax(self.logits[[self.index[lang] for lang in langs]], dim=0)  # (P,)
        scaled = z / self.past_losses(langs)
        return scaled / scaled.sum()

    @torch.no_grad()
    def end_step(self, losses, reduce=None):
        current = torch.full_like(self.previous, float("nan"))  # (K,)
        for lang, loss in losses.items():
            current[self.index[lang]] = loss
        both = (~(self.previous.isnan() | current.isnan())).nonzero().squeeze(1)  # (S,) in this step and the last
        if len(both):
            delta = self.previous[both].clamp_min(EPS).log() - current[both].clamp_min(EPS).log()  # (S,)
            z = torch.softmax(self.logits[both], dim=0)
            self.adam_step(both, z * (delta - (z * delta).sum()))  # J_softmax(ξ)ᵀ δ
        self.previous.copy_(current)
        super().end_step(losses)

    def adam_step(self, idx: torch.Tensor, grad: torch.Tensor) -> None:
        """torch.optim.Adam (betas 0.9, 0.999, eps 1e-8, weight_decay γ) on the entries `idx` of ξ, each with its own
        step count (a language that skips a step does not age its moments)."""
        grad = grad + self.gamma * self.logits[idx]
        steps = self.adam_steps[idx] + 1
        m = self.exp_avg[idx].lerp(grad, 0.1)
        v = self.exp_avg_sq[idx] * 0.999 + 0.001 * grad * grad
        correction1, correction2 = 1 - 0.9 ** steps.double(), 1 - 0.999 ** steps.double()  # (S,) in float64, as Adam
        denom = (v.sqrt() / correction2.sqrt()).float() + 1e-8
        self.logits[idx] -= (self.lr / correction1).float() * m / denom
        self.exp_avg[idx], self.exp_avg_sq[idx], self.adam_steps[idx] = m, v, steps


class ImpartialLossScaling(UncertaintyWeighting):
    """IMTL-L: L = Σ_l e^(s_l) L_l − s_l with learned scales s_l, 0 at first, trained with the model by its optimizer
    (without weight decay, as every `loss_weighting.` parameter). For fixed L_l the optimum is s_l = −log L_l, where
    every scaled loss e^(s_l) L_l is 1: no language leads by the scale of its loss. With s_l = −log_vars_l this is
    the function `uncertainty` minimises here (Σ e^(−u_l) L_l + u_l), from the same start, and the optimizers are
    sign-symmetric: the two train identically. The scales are kept as `log_vars` = −s."""
