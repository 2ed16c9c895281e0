"""Loss weightings on toy problems whose answer is known."""

import math
from types import SimpleNamespace

import pytest
import torch

from mtl_translate.losses import build_loss_weighting
from mtl_translate.weighting_methods import LOSS_WEIGHTINGS
from mtl_translate.objective import StepObjective

LANGS = ["de", "fr", "es"]


def make(method, languages=LANGS, **kwargs):
    return build_loss_weighting(SimpleNamespace(languages=languages, loss_weighting=method, **kwargs))


def weigh(lw, losses: dict) -> torch.Tensor:
    """A one-pass step whose per-language means are `losses` (each one token)."""
    ones = {lang: torch.tensor(1.0) for lang in losses}
    return lw(losses, ones, StepObjective.of_batch(ones))


def flat_dot(a, b):
    return (a.flatten() @ b.flatten()).item()


def test_static_is_weighted_sum_over_present_languages():
    lw = make("static", loss_weights={"de": 2.0, "fr": 0.5})
    losses = {"de": torch.tensor(3.0), "es": torch.tensor(5.0)}  # fr absent; es has no configured weight: 1
    assert weigh(lw, losses).item() == 2 * 3 + 5
    assert lw.current_weights() == {"de": 2.0, "fr": 0.5, "es": 1.0}
    assert lw.state_dict() == {}  # the config holds static weights: no new checkpoint keys


def test_methods_other_than_static_ignore_loss_weights():
    losses = {"de": torch.tensor(3.0), "fr": torch.tensor(2.0)}
    for method in ("dwa", "gradnorm", "pcgrad"):
        assert weigh(make(method, loss_weights={"de": 7.0}), losses).item() == 5.0, method


def test_unknown_method_names_the_valid_ones():
    with pytest.raises(ValueError, match="loss_weighting='nope'") as err:
        make("nope")
    assert all(name in str(err.value) for name in LOSS_WEIGHTINGS)


def noisy_regression(method):
    """Two tasks, clean and noisy, regress the same linear target through one shared model, with noise std 0.1 and
    1.0, for 400 Adam steps; returns the weighting and the mean losses of the last 100 steps, (2,)."""
    torch.manual_seed(0)
    lw = make(method, languages=["clean", "noisy"])
    theta = torch.randn(4, 1)
    model = torch.nn.Linear(4, 1, bias=False)
    opt = torch.optim.Adam([*model.parameters(), *lw.parameters()], lr=0.05)
    recent = []
    for step in range(400):
        x = torch.randn(256, 4)
        pred = model(x)  # (256, 1)
        losses = {
            name: ((pred - (x @ theta + std * torch.randn(256, 1))) ** 2).mean()
            for name, std in (("clean", 0.1), ("noisy", 1.0))
        }
        opt.zero_grad()
        weigh(lw, losses).backward()
        opt.step()
        if step >= 300:
            recent.append([losses["clean"].item(), losses["noisy"].item()])
    return lw, torch.tensor(recent).mean(0)


def test_uncertainty_gives_noisy_task_the_smaller_weight_and_s_tends_to_log_loss():
    lw, mean_loss = noisy_regression("uncertainty")
    w = lw.current_weights()
    assert w["clean"] > 10 * w["noisy"]
    log_mean_loss = mean_loss.log()  # (2,) about log 0.01 and log 1
    assert torch.allclose(lw.log_vars.detach(), log_mean_loss, atol=0.3)
    assert w["clean"] == pytest.approx(math.exp(-lw.log_vars[0].item()))


def feed(lw, stream):
    """stream: one {lang: loss} per optimizer step (its forward, then `end_step`); returns the total losses."""
    totals = []
    for losses in stream:
        totals.append(weigh(lw, {lang: torch.tensor(v) for lang, v in losses.items()}))
        lw.end_step(losses)
    return totals


def test_dwa_weights_favour_the_language_whose_loss_stalls():
    lw = make("dwa", dwa_window=3, dwa_temperature=2.0)
    window1 = [{"de": 5.0, "fr": 1.0, "es": 7.0}, {"de": 4.0, "fr": 1.0}, {"de": 3.0, "fr": 1.0}]
    window2 = [{"de": 2.0, "fr": 1.0}] * 3  # de halves, fr stays flat, es has no data (ratio 1)
    totals = feed(lw, window1 + window2[:2])
    assert lw.current_weights() == {"de": 1.0, "fr": 1.0, "es": 1.0}  # fewer than two complete windows
    assert [t.item() for t in totals] == [13.0, 5.0, 4.0, 3.0, 3.0]
    feed(lw, window2[2:])
    r = torch.tensor([2.0 / 4.0, 1.0, 1.0])
    expected = 3 * torch.softmax(r / 2.0, dim=0)
    w = lw.current_weights()
    assert w["fr"] > w["de"] and w["fr"] == pytest.approx(w["es"])
    assert torch.allclose(torch.tensor(list(w.values())), expected)
    assert sum(w.values()) == pytest.approx(3.0)
    total = weigh(lw, {"de": torch.tensor(2.0, requires_grad=True), "fr": torch.tensor(1.0)})
    assert total.item() == pytest.approx(expected[0].item() * 2 + expected[1].item())
    total.backward()  # weights are constants: nothing of the module gets a gradient
    assert list(lw.parameters()) == []


def test_dwa_windows_count_optimizer_steps_not_forward_passes():
    """Forward passes (micro-batches, evaluation) leave the state alone; each `end_step` is one step of a window."""
    lw = make("dwa", dwa_window=2)
    feed(lw, [{"de": 4.0}] * 2)
    before = {k: v.clone() for k, v in lw.state_dict().items()}
    for _ in range(5):
        weigh(lw, {"de": torch.tensor(1.0)})
    assert all(torch.allclose(before[k], v, equal_nan=True) for k, v in lw.state_dict().items())
    lw.end_step({"de": 1.0})
    assert lw.calls.item() == 1 and lw.window_sum[0].item() == 1.0


def toy_tasks(routed, a, b):
    """Two regression tasks on a shared representation; task fr is 10x the scale of task de."""
    return {
        "de": ((routed["de"] * a).sum(-1) - 1).pow(2).mean(),
        "fr": 10 * ((routed["fr"] * b).sum(-1) - 1).pow(2).mean(),
    }


def test_gradnorm_first_step_gradient_and_unchanged_hidden_gradient():
    torch.manual_seed(0)
    lw = make("gradnorm", languages=["de", "fr"], gradnorm_alpha=1.5)
    hidden = torch.randn(4, 5, 8, requires_grad=True)
    a, b = torch.randn(8), torch.randn(8)
    weigh(lw, toy_tasks(lw.route(hidden, ["de", "fr"]), a, b)).backward()
    plain = toy_tasks({"de": hidden, "fr": hidden}, a, b)
    n = torch.stack([torch.autograd.grad(loss, hidden, retain_graph=True)[0].norm() for loss in plain.values()])
    # weights start at 1, so the representation gets the plain gradient of the sum
    assert torch.allclose(hidden.grad, torch.autograd.grad(sum(plain.values()), hidden)[0])
    # w = 1, r = 1: d/dw_l = sign(G_l - mean G) n_l; through w = 2 softmax(logits) that is -+ (n_de + n_fr) / 2
    assert n[1] > n[0]
    assert torch.allclose(lw.logits.grad, torch.stack([-n.sum() / 2, n.sum() / 2]), rtol=1e-4)


def test_gradnorm_raises_weight_of_language_that_trains_slowly():
    """Equal losses and gradients, but de's loss fell to half of its first value and fr's did not."""
    lw = make("gradnorm", languages=["de", "fr"])
    lw.initial_losses.copy_(torch.tensor([2.0, 1.0]))
    hidden = torch.zeros(2, 3, 4, requires_grad=True)
    routed = lw.route(hidden, ["de", "fr"])
    weigh(lw, {lang: 1 + routed[lang].sum() for lang in ("de", "fr")}).backward()  # L = 1, dL/dh = 1 for both
    # r = (2/3, 4/3): G_de is above its target, G_fr below; d/dw = (+n, -n) with n = ||1|| = sqrt(24)
    assert torch.allclose(lw.logits.grad, torch.tensor([1.0, -1.0]) * 24**0.5)


def test_gradnorm_equalises_gradient_norms_at_the_representation():
    torch.manual_seed(0)
    lw = make("gradnorm", languages=["de", "fr"])
    hidden = torch.randn(4, 5, 8, requires_grad=True)
    a, b = torch.randn(8), torch.randn(8)
    opt = torch.optim.Adam(lw.parameters(), lr=0.01)

    def grad_norms():
        w = lw.weights()
        losses = toy_tasks({"de": hidden, "fr": hidden}, a, b)
        return [torch.autograd.grad(w[i] * losses[lang], hidden)[0].norm().item() for i, lang in enumerate(losses)]

    g_de, g_fr = grad_norms()
    assert g_fr > 3 * g_de
    for _ in range(400):
        opt.zero_grad()
        weigh(lw, toy_tasks(lw.route(hidden, ["de", "fr"]), a, b)).backward()
        opt.step()
        assert sum(lw.current_weights().values()) == pytest.approx(2.0)
    g_de, g_fr = grad_norms()
    assert g_de == pytest.approx(g_fr, rel=0.03)
    assert lw.current_weights()["de"] > lw.current_weights()["fr"]


def test_gradnorm_language_routed_but_not_run_is_ignored():
    lw = make("gradnorm")
    hidden = torch.randn(2, 3, 4, requires_grad=True)
    routed = lw.route(hidden, ["de", "fr", "es"])
    weigh(lw, {"de": (routed["de"] ** 2).sum(), "fr": routed["fr"].sum()}).backward()
    assert torch.allclose(hidden.grad, 2 * hidden.detach() + 1)
    assert torch.isfinite(lw.logits.grad).all() and lw.logits.grad[2] != 0  # es' weight still shares the softmax
    assert torch.isnan(lw.initial_losses[2])


def pcgrad_backward(a, b, dtype=torch.float32, langs=("de", "fr")):
    """Losses with known gradients a (de) and b (fr) at the shared tensor; returns (grad at x, backward count)."""
    lw = make("pcgrad")
    x = torch.zeros(a.shape, requires_grad=True)
    shared = (x * 2).to(dtype)  # the "encoder": its backward must run once
    calls = []
    shared.register_hook(lambda g: calls.append(1))
    routed = lw.route(shared, list(langs))
    assert routed["de"] is not routed["fr"]
    weigh(lw, {"de": (routed["de"] * a.to(dtype)).sum(), "fr": (routed["fr"] * b.to(dtype)).sum()}).backward()
    return x.grad / 2, len(calls)


def test_pcgrad_projects_conflicting_gradients():
    torch.manual_seed(0)
    a = torch.randn(2, 3, 4)
    b = -0.5 * a + 0.3 * torch.randn(2, 3, 4)
    assert flat_dot(a, b) < 0
    grad, calls = pcgrad_backward(a, b)
    a_proj = a - flat_dot(a, b) / flat_dot(b, b) * b
    b_proj = b - flat_dot(a, b) / flat_dot(a, a) * a
    assert calls == 1
    assert torch.allclose(grad, a_proj + b_proj, atol=1e-5)
    assert abs(flat_dot(a_proj, b)) < 1e-4 and abs(flat_dot(b_proj, a)) < 1e-4
    assert not torch.allclose(grad, a + b, atol=1e-2)


def test_pcgrad_passes_agreeing_gradients_through():
    torch.manual_seed(0)
    a = torch.randn(2, 3, 4)
    b = 0.5 * a + 0.1 * torch.randn(2, 3, 4)
    assert flat_dot(a, b) > 0
    grad, _ = pcgrad_backward(a, b)
    assert torch.allclose(grad, a + b, atol=1e-6)
    grad, _ = pcgrad_backward(a, b, langs=("de", "fr", "es"))  # es routed, its head never runs: zero gradient
    assert torch.allclose(grad, a + b, atol=1e-6)


def test_pcgrad_keeps_low_precision_dtype():
    torch.manual_seed(0)
    a = torch.randn(2, 3, 4)
    b = -a + 0.5 * torch.randn(2, 3, 4)
    grad, _ = pcgrad_backward(a, b, dtype=torch.bfloat16)
    expected, _ = pcgrad_backward(a, b)
    assert torch.allclose(grad, expected, atol=0.05)


@pytest.mark.parametrize("method", sorted(LOSS_WEIGHTINGS))
def test_route_is_identity_when_no_surgery_is_needed(method):
    lw = make(method)
    hidden = torch.randn(2, 3, 4, requires_grad=True)
    with torch.no_grad():
        assert all(t is hidden for t in lw.route(hidden, LANGS).values())
    assert all(t is hidden for t in lw.route(hidden, ["de"]).values())
    if not LOSS_WEIGHTINGS[method].gradient:  # loss-only: any sharing mode, no copy of h
        assert all(t is hidden for t in lw.route(hidden, LANGS).values())
    else:
        routed = lw.route(hidden, LANGS)
        assert all(torch.equal(t, hidden) and t is not hidden for t in routed.values())


@pytest.mark.parametrize("method", ["uncertainty", "dwa", "gradnorm"])
def test_state_round_trips_into_a_fresh_module(method):
    torch.manual_seed(0)
    lw = make(method, dwa_window=2)
    opt = torch.optim.SGD(lw.parameters(), lr=0.1) if list(lw.parameters()) else None
    hidden = torch.randn(2, 3, 4, requires_grad=True)
    for step in range(4):
        routed = lw.route(hidden, LANGS)
        losses = {lang: (routed[lang] * (i + 1) ** step).pow(2).mean() for i, lang in enumerate(LANGS)}
        weigh(lw, losses).backward()
        lw.end_step({lang: loss.item() for lang, loss in losses.items()})
        if opt:
            opt.step()
    assert lw.current_weights() != {lang: 1.0 for lang in LANGS}
    state = lw.state_dict()
    assert all(v.dtype == torch.float32 for v in state.values())
    fresh = make(method, dwa_window=2)
    assert fresh.current_weights() != lw.current_weights()
    fresh.load_state_dict(state)
    assert fresh.current_weights() == lw.current_weights()
