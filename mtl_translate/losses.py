"""Combining per-language losses into one training loss (one shared encoder, one decoder head per language).

    static       fixed weights from the config: L = sum_l w_l L_l
    uncertainty  Kendall, Gal & Cipolla 2018, "Multi-Task Learning Using Uncertainty to Weigh Losses"
    dwa          Liu, Johns & Davison 2019, "End-to-End Multi-Task Learning with Attention" (Dynamic Weight Average)
    gradnorm     Chen et al. 2018, "GradNorm: Gradient Normalization for Adaptive Loss Balancing"
    pcgrad       Yu et al. 2020, "Gradient Surgery for Multi-Task Learning"

The model calls `route(hidden, langs)` on the shared encoder output before the heads and `loss_weighting(losses)`
on the losses of the languages present in the batch. gradnorm and pcgrad take per-language gradients w.r.t. the
shared encoder output, not w.r.t. every encoder parameter as in the papers: backward holds one extra tensor of size
B x S x E per language and still runs once through the encoder. Under DDP each rank works on its local batch.
"""

import functools

import torch
from torch import nn
from transformers import initialization as init


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

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        w = self.weights()  # (K,)
        return sum(w[self.index[lang]] * loss for lang, loss in losses.items())

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
    and the + s_l term keeps s from growing without bound. For fixed L_l the optimum is s_l = log L_l."""

    def __init__(self, config):
        super().__init__(config)
        self.log_vars = nn.Parameter(torch.zeros(len(self.languages)))  # (K,) s_l
        self.reset_parameters()

    def reset_parameters(self):
        init.zeros_(self.log_vars)

    def weights(self):
        return torch.exp(-self.log_vars).detach()

    def forward(self, losses):
        s = self.log_vars  # (K,)
        return sum(torch.exp(-s[self.index[lang]]) * loss + s[self.index[lang]] for lang, loss in losses.items())


class DynamicWeightAverage(LossWeighting):
    """w = K softmax(r / T) with r_l = mean loss of the last window / of the window before: a language whose loss
    falls slowly gets more weight. Windows of `dwa_window` training forward calls stand in for the paper's epochs;
    weights are 1 until two windows are complete, and a language without data in either window gets r = 1."""

    def __init__(self, config):
        super().__init__(config)
        self.temperature = float(getattr(config, "dwa_temperature", 2.0))
        self.window = int(getattr(config, "dwa_window", 50))
        k = len(self.languages)
        self.register_buffer("history", torch.empty(2, k))  # mean loss per language of windows t-2, t-1
        self.register_buffer("window_sum", torch.empty(k))  # running sums of the current window
        self.register_buffer("window_count", torch.empty(k))
        self.register_buffer("calls", torch.empty(()))  # training forward calls in the current window
        self.reset_parameters()

    def reset_parameters(self):
        init.constant_(self.history, float("nan"))  # NaN: no completed window (yet), gives r = 1
        for buffer in (self.window_sum, self.window_count, self.calls):
            init.zeros_(buffer)

    def weights(self):
        r = (self.history[1] / self.history[0]).nan_to_num(nan=1.0)  # (K,)
        return len(self.languages) * torch.softmax(r / self.temperature, dim=0)

    def forward(self, losses):
        total = super().forward(losses)  # weights of the completed windows; the current one is still open
        if self.training:
            for lang, loss in losses.items():
                self.window_sum[self.index[lang]] += loss.detach().float()
                self.window_count[self.index[lang]] += 1
            self.calls += 1
            if self.calls >= self.window:
                self.history.copy_(torch.stack([self.history[1], self.window_sum / self.window_count]))  # 0/0: NaN
                for buffer in (self.window_sum, self.window_count, self.calls):
                    buffer.zero_()
        return total


class _PerLanguage(torch.autograd.Function):
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
    `forward(losses)` must run after `route` and before backward: it leaves the losses for backward to read."""

    def __init__(self, config):
        super().__init__(config)
        self.alpha = float(getattr(config, "gradnorm_alpha", 1.5))
        self.logits = nn.Parameter(torch.empty(len(self.languages)))  # (K,)
        self.register_buffer("initial_losses", torch.empty(len(self.languages)))  # (K,) L_l(0); NaN: not seen yet
        self.reset_parameters()
        self._losses = {}

    def reset_parameters(self):
        init.zeros_(self.logits)
        init.constant_(self.initial_losses, float("nan"))

    def weights(self):
        return (len(self.languages) * torch.softmax(self.logits, dim=0)).detach()

    def forward(self, losses):
        self._losses = {lang: loss.detach().float() for lang, loss in losses.items()}
        for lang, loss in self._losses.items():
            first = self.initial_losses[self.index[lang]]
            self.initial_losses[self.index[lang]] = torch.where(first.isnan(), loss, first)
        return super().forward(losses)

    def route(self, hidden, langs):
        if torch.is_grad_enabled() and hidden.requires_grad and len(langs) > 1:
            outputs = _PerLanguage.apply(functools.partial(self.combine, langs), len(langs), hidden, self.logits)
            return dict(zip(langs, outputs))
        return super().route(hidden, langs)

    def combine(self, langs, grads):
        """grads: N x (B, S, E) g_l = w_l dL_l/d hidden (times any loss scale of mixed precision or accumulation)."""
        present = [k for k, lang in enumerate(langs) if lang in self._losses]
        if not present:
            return sum(grads), torch.zeros_like(self.logits)
        idx = torch.tensor([self.index[langs[k]] for k in present], device=self.logits.device)  # (P,)
        with torch.enable_grad():
            logits = self.logits.detach().requires_grad_()
            w = len(self.languages) * torch.softmax(logits, dim=0)[idx]  # (P,) equal to the weights of the loss
            unweighted = torch.stack([grads[k].float().norm() for k in present]) / w.detach()  # (P,) ||dL_l/dh||
            G = w * unweighted  # (P,)
            ratio = torch.stack([self._losses[langs[k]] for k in present]) / self.initial_losses[idx]  # (P,)
            target = (G.mean() * (ratio / ratio.mean()) ** self.alpha).detach()
            (logits_grad,) = torch.autograd.grad((G - target).abs().sum(), logits)
        return sum(grads), logits_grad


class PCGrad(LossWeighting):
    """Plain sum of the losses; in backward, each language's gradient at the shared representation loses its
    component along every other language's gradient it conflicts with (negative dot product), others in random
    order (torch's global RNG). The projected gradients are summed."""

    def route(self, hidden, langs):
        if torch.is_grad_enabled() and hidden.requires_grad and len(langs) > 1:
            return dict(zip(langs, _PerLanguage.apply(self.combine, len(langs), hidden)))
        return super().route(hidden, langs)

    @staticmethod
    def combine(grads):
        g = torch.stack([grad.float().flatten() for grad in grads])  # (N, B*S*E), float32 even under autocast
        sq_norms = (g * g).sum(dim=1).clamp_min(torch.finfo(g.dtype).tiny)  # (N,) a zero g_j has zero dots anyway
        out = torch.zeros_like(g[0])  # (B*S*E,)
        for i in range(len(grads)):
            gi = g[i].clone()
            for j in torch.randperm(len(grads)).tolist():
                if j != i:  # project out g_j when conflicting; clamp instead of `if` keeps the GPU free of syncs
                    gi -= (gi @ g[j]).clamp(max=0) / sq_norms[j] * g[j]
            out += gi
        return (out.view_as(grads[0]).to(grads[0].dtype),)


LOSS_WEIGHTINGS = {
    "static": StaticLossWeighting,
    "uncertainty": UncertaintyWeighting,
    "dwa": DynamicWeightAverage,
    "gradnorm": GradNorm,
    "pcgrad": PCGrad,
}


def build_loss_weighting(config) -> LossWeighting:
    if config.loss_weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"loss_weighting={config.loss_weighting!r} is not one of {sorted(LOSS_WEIGHTINGS)}.")
    return LOSS_WEIGHTINGS[config.loss_weighting](config)
