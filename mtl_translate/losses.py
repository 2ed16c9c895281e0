"""Combining per-language losses into one training loss (one shared encoder, one decoder head per language).

    static       fixed weights from the config: L = sum_l w_l L_l
    uncertainty  Kendall, Gal & Cipolla 2018, "Multi-Task Learning Using Uncertainty to Weigh Losses"
    dwa          Liu, Johns & Davison 2019, "End-to-End Multi-Task Learning with Attention" (Dynamic Weight Average)
    gradnorm     Chen et al. 2018, "GradNorm: Gradient Normalization for Adaptive Loss Balancing"

and the gradient aggregators of TorchJD (pcgrad, upgrad, mgda, cagrad, gradvac, ...: aggregators.py).

The model calls `route(hidden, langs)` on the shared encoder output before the heads and `loss_weighting(sums,
counts, step)` with the per-language token-loss sums and counts of its forward pass and the step's `StepObjective`
(objective.py): the pass's part of the step's weighted loss. The trainer calls `end_step(losses, reduce)` once per
optimizer step with the step's per-language mean losses over every micro-batch and process (identical on every
process): DWA's windows, GradNorm's initial losses and GradVac's targets are updated then.

gradnorm and the aggregators take per-language gradients w.r.t. the shared encoder output, not w.r.t. every encoder
parameter as in the papers: backward holds one extra tensor of size B x S x E per language and still runs once
through the encoder. They work per forward pass (micro-batch): with accumulation or several processes, each pass's
gradients are combined on their own, then summed, so 2 processes x batch B equal 1 process x B x accumulation 2, not
one batch 2B.
"""

import functools

import torch
from torch import nn
from transformers import initialization as init

from .weighting_methods import weighting_class


class LossWeighting(nn.Module):
    """Base: plain weighted sum with `weights()`, and every head reading the shared encoder output as is.

    Learned parameters and dynamic statistics are float32 tensors with one entry per language of the model (in
    `config.languages` order), so they are saved with the model and load into any instance of the same config.
    """

    def __init__(self, config):
        super().__init__()
        self.languages = list(config.languages)
        self.index = {lang: i for i, lang in enumerate(self.languages)}

    def weights(self) -> torch.Tensor:
        """(K,) the present weight of every language, without gradient."""
        return torch.ones(len(self.languages))

    def forward(self, sums: dict[str, torch.Tensor], counts: dict[str, torch.Tensor], step) -> torch.Tensor:
        """This pass's part of the step's loss, sum_l w_l s_l / N_l (objective.py); `counts`: this pass's own token
        counts n_l (what per-pass methods need)."""
        w = self.weights()  # (K,)
        return sum(w[self.index[lang]] * total / step.counts[lang] for lang, total in sums.items())

    def end_step(self, losses: dict[str, float], reduce=None) -> None:
        """Once per optimizer step: the step's mean loss of each language present in it, over every micro-batch and
        process (the same on every process). `reduce(tensor)`: its sum over the processes (the trainer's all-reduce,
        called by every process alike; None: one process), for statistics gathered in backward."""

    def route(self, hidden: torch.Tensor, langs: list[str]) -> dict[str, torch.Tensor]:
        """The tensor each language's head reads; hidden: (B, S, E)."""
        return {lang: hidden for lang in langs}

    def current_weights(self) -> dict[str, float]:
        return dict(zip(self.languages, self.weights().tolist()))

    def reset_parameters(self):
        """Initial values of parameters and buffers not loaded from a checkpoint (`transformers.initialization`
        skips loaded ones); for the model's `_init_weights`, as transformers builds models on the meta device."""

    @torch.no_grad()
    def carry_over(self, old: "LossWeighting") -> None:
        """Takes the state of `old`, a module of the same method built for other languages (a language added or
        removed): per-language entries (the last dimension, in `languages` order) follow their language, the new
        language keeps its initial values, scalars are copied."""
        shared = [lang for lang in self.languages if lang in old.index]
        mine, theirs = [self.index[lang] for lang in shared], [old.index[lang] for lang in shared]
        state = self.state_dict()
        for name, value in old.state_dict().items():
            if value.dim() == 0:
                state[name].copy_(value)
            else:
                state[name][..., mine] = value[..., theirs]
        self.load_state_dict(state)


class StaticLossWeighting(LossWeighting):
    """L = sum_l w_l L_l with fixed weights from `config.loss_weights` (missing language: 1). Kept as Python floats:
    the config already saves them, so they are no state of the model."""

    def __init__(self, config):
        super().__init__(config)
        configured = getattr(config, "loss_weights", None) or {}
        self.static = {lang: float(configured.get(lang, 1.0)) for lang in self.languages}

    def weights(self):
        return torch.tensor([self.static[lang] for lang in self.languages])


class UncertaintyWeighting(LossWeighting):
    """L = sum_l exp(-s_l) L_l + s_l with learned log variances s_l: a noisy (high-loss) language gets a small weight,
    and the + s_l term keeps s from growing without bound. For fixed L_l the optimum is s_l = log L_l. The + s_l term
    counts once per step for each language present in the step (each pass adds its share)."""

    def __init__(self, config):
        super().__init__(config)
        self.log_vars = nn.Parameter(torch.zeros(len(self.languages)))  # (K,) s_l
        self.reset_parameters()

    def reset_parameters(self):
        init.zeros_(self.log_vars)

    def weights(self):
        return torch.exp(-self.log_vars).detach()

    def forward(self, sums, counts, step):
        s = self.log_vars  # (K,)
        data = sum(torch.exp(-s[self.index[lang]]) * total / step.counts[lang] for lang, total in sums.items())
        return data + step.share * sum(s[self.index[lang]] for lang in step.present)


class DynamicWeightAverage(LossWeighting):
    """w = K softmax(r / T) with r_l = mean loss of the last window / of the window before: a language whose loss
    falls slowly gets more weight. Windows of `dwa_window` optimizer steps stand in for the paper's epochs (a step's
    loss: its mean over every micro-batch and process); weights are 1 until two windows are complete, and a language
    without data in either window gets r = 1."""

    def __init__(self, config):
        super().__init__(config)
        self.temperature = float(getattr(config, "dwa_temperature", 2.0))
        self.window = int(getattr(config, "dwa_window", 50))
        k = len(self.languages)
        self.register_buffer("history", torch.empty(2, k))  # mean loss per language of windows t-2, t-1
        self.register_buffer("window_sum", torch.empty(k))  # running sums of the current window
        self.register_buffer("window_count", torch.empty(k))
        self.register_buffer("calls", torch.empty(()))  # optimizer steps in the current window
        self.reset_parameters()

    def reset_parameters(self):
        init.constant_(self.history, float("nan"))  # NaN: no completed window (yet), gives r = 1
        for buffer in (self.window_sum, self.window_count, self.calls):
            init.zeros_(buffer)

    def weights(self):
        r = (self.history[1] / self.history[0]).nan_to_num(nan=1.0)  # (K,)
        return len(self.languages) * torch.softmax(r / self.temperature, dim=0)

    def end_step(self, losses, reduce=None):
        for lang, loss in losses.items():
            self.window_sum[self.index[lang]] += loss
            self.window_count[self.index[lang]] += 1
        self.calls += 1
        if self.calls >= self.window:
            self.history.copy_(torch.stack([self.history[1], self.window_sum / self.window_count]))  # 0/0: NaN
            for buffer in (self.window_sum, self.window_count, self.calls):
                buffer.zero_()


class PerLanguage(torch.autograd.Function):
    """Identity with one output per language. Backward gets all per-language gradients at once and hands them to
    `combine`, which returns the gradient of `hidden` and of `params`: one backward through the encoder, not N."""

    @staticmethod
    def forward(ctx, combine, n, hidden, *params):
        ctx.combine = combine
        return tuple(hidden.view_as(hidden) for _ in range(n))

    @staticmethod
    def backward(ctx, *grads):  # grads: N x (B, S, E); zeros for an output nobody read (materialized by autograd)
        return None, None, *ctx.combine(grads)


class GradNorm(LossWeighting):
    """Learned weights w = K softmax(logits) (so w > 0 and sum w = K), used as constants in the main loss. The
    weights are trained only by sum_l |G_l - mean(G) r_l^alpha| with G_l = ||d(w_l L_l)/d hidden||, the relative
    inverse training rate r_l = (L_l / L_l(0)) / mean_k(L_k / L_k(0)), and the target mean(G) r^alpha a constant:
    languages that train slowly get larger gradients. Its gradient reaches `logits` through autograd, in backward.

    Per forward pass: L_l is the pass's own mean token loss of l, G_l its gradient's norm (whatever the step's token
    counts scale it by), and the gradient of `logits` is the mean over the step's passes. L_l(0) is the mean loss of
    the first step with l (`end_step`, the same on every process); before it, r_l = 1. `forward` must run after
    `route` and before backward: it leaves the pass's losses for backward to read."""

    def __init__(self, config):
        super().__init__(config)
        self.alpha = float(getattr(config, "gradnorm_alpha", 1.5))
        self.logits = nn.Parameter(torch.empty(len(self.languages)))  # (K,)
        self.register_buffer("initial_losses", torch.empty(len(self.languages)))  # (K,) L_l(0); NaN: not seen yet
        self.reset_parameters()
        self._pass = {}

    def reset_parameters(self):
        init.zeros_(self.logits)
        init.constant_(self.initial_losses, float("nan"))

    def weights(self):
        return (len(self.languages) * torch.softmax(self.logits, dim=0)).detach()

    def forward(self, sums, counts, step):
        """Keeps, per language of the pass: its mean loss L_l and the factor N_l / (P n_l) that turns the gradient
        backward receives (P d(w_l s_l / N_l)/dh, objective.py) into d(w_l L_l)/dh."""
        self._pass = {"step": step, "losses": {lang: (sums[lang] / counts[lang]).detach().float() for lang in sums},
                      "factors": {lang: step.counts[lang] / (step.backward_scale * counts[lang].float()) for lang in sums}}
        return super().forward(sums, counts, step)

    def end_step(self, losses, reduce=None):
        for lang, loss in losses.items():
            first = self.initial_losses[self.index[lang]]
            self.initial_losses[self.index[lang]] = torch.where(first.isnan(), loss, first)

    def route(self, hidden, langs):
        if torch.is_grad_enabled() and hidden.requires_grad and len(langs) > 1:
            outputs = PerLanguage.apply(functools.partial(self.combine, langs), len(langs), hidden, self.logits)
            return dict(zip(langs, outputs))
        return super().route(hidden, langs)

    def combine(self, langs, grads):
        """grads: N x (B, S, E), P w_l ds_l/dh / N_l (times the loss scale of mixed precision, which the returned
        gradient of `logits` keeps, as the optimizer unscales every gradient)."""
        losses, factors, step = self._pass["losses"], self._pass["factors"], self._pass["step"]
        present = [k for k, lang in enumerate(langs) if lang in losses]
        if not present:
            return sum(grads), torch.zeros_like(self.logits)
        idx = torch.tensor([self.index[langs[k]] for k in present], device=self.logits.device)  # (P,)
        with torch.enable_grad():
            logits = self.logits.detach().requires_grad_()
            w = len(self.languages) * torch.softmax(logits, dim=0)[idx]  # (P,) equal to the weights of the loss
            unweighted = torch.stack([grads[k].float().norm() * factors[langs[k]] for k in present]) / w.detach()
            G = w * unweighted  # (P,) ||d(w_l L_l)/dh||
            loss = torch.stack([losses[langs[k]] for k in present])  # (P,)
            ratio = torch.where(self.initial_losses[idx].isnan(), 1.0, loss / self.initial_losses[idx])
            target = (G.mean() * (ratio / ratio.mean()) ** self.alpha).detach()
            (logits_grad,) = torch.autograd.grad((G - target).abs().sum(), logits)
        return sum(grads), logits_grad * step.backward_scale * step.share  # summed over passes, / P by DDP: the mean


def build_loss_weighting(config) -> LossWeighting:
    """The `LossWeighting` of `config.loss_weighting` (registry: weighting_methods.py)."""
    return weighting_class(config.loss_weighting)(config)
