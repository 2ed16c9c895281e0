"""Loss-only balancing methods (loss_balancing.py) on toy problems whose answer is known."""

import math
import shutil

import pytest
import torch
from safetensors.torch import load_file

from mtl_translate.objective import StepObjective

from .test_losses import LANGS, feed, make, noisy_regression, weigh
from .test_training_reliability import train, trainer_state


def loss_gradient(lw, losses: dict, step: int = 0) -> dict:
    """d(part)/d L_l of a one-pass step whose per-language means are `losses`: the weight each language gets."""
    tensors = {lang: torch.tensor(float(v), requires_grad=True) for lang, v in losses.items()}
    ones = {lang: torch.tensor(1.0) for lang in losses}
    lw(tensors, ones, StepObjective({lang: 1.0 for lang in losses}, step=step)).backward()
    return {lang: t.grad.item() for lang, t in tensors.items()}


def rlw_weights(step: int, langs=LANGS, present=LANGS) -> torch.Tensor:
    normals = torch.randn(len(langs), generator=torch.Generator().manual_seed(step))
    return torch.softmax(normals[[langs.index(lang) for lang in present]], dim=0)


def test_rlw_weights_are_a_softmax_of_normals_drawn_once_per_step():
    lw = make("rlw")
    for step in (0, 1, 7):
        grad = loss_gradient(lw, {"de": 2.0, "fr": 1.0, "es": 4.0}, step)
        assert torch.allclose(torch.tensor(list(grad.values())), rlw_weights(step))
        assert sum(grad.values()) == pytest.approx(1.0)
        assert torch.allclose(torch.tensor(list(lw.current_weights().values())), rlw_weights(step))
    absent = loss_gradient(lw, {"de": 2.0, "es": 4.0}, 7)  # fr not in the step: the others still sum to 1
    assert sum(absent.values()) == pytest.approx(1.0)
    assert torch.allclose(torch.tensor(list(absent.values())), rlw_weights(7, present=["de", "es"]))
    assert list(lw.parameters()) == [] and lw.state_dict() == {}  # the step number is the whole state


def test_rlw_weights_are_uniform_on_average_and_differ_between_steps():
    lw = make("rlw")
    draws = torch.stack([torch.tensor(list(loss_gradient(lw, dict.fromkeys(LANGS, 1.0), s).values()))
                         for s in range(2000)])  # (2000, 3)
    assert (draws > 0).all() and torch.allclose(draws.sum(1), torch.ones(2000))
    assert torch.allclose(draws.mean(0), torch.full((3,), 1 / 3), atol=0.02)
    assert draws.std(0).min() > 0.1  # E[softmax of 3 standard normals] = 1/3, but each step's are far from it


def test_rlw_every_pass_and_process_of_a_step_uses_the_same_weights():
    lw = make("rlw")
    counts = {"de": 4.0, "fr": 2.0}
    step = StepObjective(counts, forwards=4, processes=2, step=11)
    seen = []
    for index in range(4):
        part = lw({"de": torch.tensor(1.0)}, {"de": torch.tensor(1.0)}, step.for_pass(index))
        seen.append(part.item() * counts["de"])  # w_de
    assert seen == [seen[0]] * 4
    assert seen[0] == pytest.approx(rlw_weights(11, present=["de", "fr"])[0].item())
    assert make("rlw")({"de": torch.tensor(1.0)}, {}, step).item() * counts["de"] == seen[0]  # a fresh module
    assert lw({"de": torch.tensor(1.0)}, {}, StepObjective(counts, step=12)).item() * counts["de"] != seen[0]


def geometric_mean(losses: torch.Tensor) -> torch.Tensor:
    return losses.prod() ** (1 / len(losses))


def test_gls_gradient_is_the_geometric_mean_gradient_at_the_previous_losses():
    lw = make("gls")
    assert loss_gradient(lw, {"de": 2.0, "fr": 8.0}) == pytest.approx({"de": 0.5, "fr": 0.5})  # none yet: 1/P
    past = {"de": 2.0, "fr": 8.0, "es": 0.5}
    feed(lw, [past])
    at = torch.tensor(list(past.values()), requires_grad=True)
    (expected,) = torch.autograd.grad(geometric_mean(at), at)  # G / (P L_l)
    now = loss_gradient(lw, {"de": 3.0, "fr": 5.0, "es": 1.0})  # other losses now: the weights stay those of L̂
    assert torch.allclose(torch.tensor(list(now.values())), expected)
    assert weigh(lw, {lang: torch.tensor(v) for lang, v in past.items()}).item() == pytest.approx(
        geometric_mean(at).item())  # at L̂ the value is G(L̂) too: the linearisation touches G there
    assert lw.current_weights()["es"] > lw.current_weights()["de"] > lw.current_weights()["fr"]


def test_gls_and_dbmtl_take_a_language_without_past_loss_at_the_others_geometric_mean():
    for method in ("gls", "dbmtl"):
        lw = make(method)
        feed(lw, [{"de": 2.0, "fr": 8.0}])  # es not seen yet: it stands at sqrt(2 * 8) = 4
        reference = make(method)
        feed(reference, [{"de": 2.0, "fr": 8.0, "es": 4.0}])
        assert lw.current_weights() == pytest.approx(reference.current_weights())


def test_dbmtl_weighs_by_the_inverse_previous_loss_so_the_scale_of_a_loss_does_not_matter():
    lw = make("dbmtl")
    assert loss_gradient(lw, {"de": 2.0, "fr": 8.0}) == {"de": 1.0, "fr": 1.0}  # none yet: the plain sum
    feed(lw, [{"de": 2.0, "fr": 8.0}])
    assert loss_gradient(lw, {"de": 3.0, "fr": 1.0}) == pytest.approx({"de": 0.5, "fr": 0.125})  # d log L at L̂

    def shared_gradient(scale):
        """Two languages' losses on one shared parameter; de's loss multiplied by `scale` at every step."""
        lw, theta = make("dbmtl", languages=["de", "fr"]), torch.tensor([1.0, -1.0], requires_grad=True)
        grads = []
        for step in range(3):
            losses = {"de": scale * (theta - 2).pow(2).sum(), "fr": (theta + 3).pow(2).sum()}
            (grad,) = torch.autograd.grad(weigh(lw, losses), theta)
            grads.append(grad)
            lw.end_step({lang: v.item() for lang, v in losses.items()})
        return grads[1:]  # after the first step: the weights know the scale

    for small, large in zip(shared_gradient(1.0), shared_gradient(1000.0)):
        assert torch.allclose(small, large)


def test_famo_update_is_adam_on_the_softmax_gradient_of_log_loss_decreases():
    lw = make("famo", languages=["de", "fr"], famo_lr=0.025, famo_gamma=1e-3)
    feed(lw, [{"de": 2.0, "fr": 1.0}])
    assert lw.logits.tolist() == [0.0, 0.0]  # one step: no decrease to learn from yet
    feed(lw, [{"de": 1.0, "fr": 0.9}])
    # δ = (log 2, log 1/0.9), z = (1/2, 1/2): J^T δ = (δ_de − δ_fr)/4 · (1, −1); one Adam step: lr · sign
    assert lw.logits.tolist() == pytest.approx([-0.025, 0.025], rel=1e-5)
    # the weights: z / L̂, normalised; fr lagged, so it gains on de beyond the 1/L̂ of the plain FAMO step
    z = torch.softmax(torch.tensor([-0.025, 0.025]), 0)
    expected = (z / torch.tensor([1.0, 0.9])) / (z / torch.tensor([1.0, 0.9])).sum()
    assert torch.allclose(torch.tensor(list(lw.current_weights().values())), expected, rtol=1e-5)
    assert loss_gradient(lw, {"de": 5.0, "fr": 5.0}) == pytest.approx(dict(zip(["de", "fr"], expected.tolist())))


def test_famo_matches_libmtl_update_with_torch_adam_over_many_steps():
    """LibMTL's FAMO.update_w: d = ∂softmax(w)/∂w ᵀ δ, then torch.optim.Adam(lr, weight_decay=gamma) on w."""
    torch.manual_seed(0)
    lw = make("famo", famo_lr=0.05, famo_gamma=0.01)
    w = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.05, weight_decay=0.01)
    losses = torch.rand(30, 3) + 0.5  # (steps, K)
    for before, after in zip(losses, losses[1:]):
        delta = before.log() - after.log()
        (w.grad,) = torch.autograd.grad(torch.softmax(w, -1), w, grad_outputs=delta)
        opt.step()
    feed(lw, [dict(zip(LANGS, row.tolist())) for row in losses])
    assert torch.allclose(lw.logits, w.detach(), atol=1e-6)
    assert lw.adam_steps.tolist() == [29.0] * 3


def test_famo_updates_only_languages_of_both_steps():
    lw = make("famo")
    feed(lw, [{"de": 2.0, "fr": 1.0, "es": 3.0}, {"de": 1.0, "fr": 0.9}, {"de": 0.8, "es": 2.0}])
    # step 2: de and fr; step 3: de only (es was absent from step 2) — a softmax over one entry has no gradient
    assert lw.adam_steps.tolist() == [2.0, 1.0, 0.0] and lw.logits[2] == 0
    assert lw.previous[1].isnan() and lw.last_losses.tolist() == pytest.approx([0.8, 0.9, 2.0])


def test_famo_decreases_the_loss_of_the_language_that_lags():
    """de's loss is 100x fr's in scale: the plain sum drives θ to de's optimum and fr's loss rises; FAMO lowers both
    log losses at similar rates."""
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])

    def train(method):
        lw, theta = make(method, languages=["de", "fr"]), torch.zeros(2, requires_grad=True)
        opt = torch.optim.Adam([theta], lr=0.01)
        for step in range(1000):
            losses = {"de": 10 * (theta - a).pow(2).sum(), "fr": 0.1 * (theta - b).pow(2).sum()}
            opt.zero_grad()
            weigh(lw, losses).backward()
            opt.step()
            lw.end_step({lang: v.item() for lang, v in losses.items()})
        return 10 * (theta - a).pow(2).sum().item(), 0.1 * (theta - b).pow(2).sum().item(), lw

    de, fr, _ = train("static")
    assert de < 0.01 and fr > 0.19  # fr's loss went up from 0.1
    de, fr, lw = train("famo")
    assert de < 10 and fr < 0.1
    assert abs(math.log(de / 10) - math.log(fr / 0.1)) < 0.3  # balanced relative decrease
    assert lw.current_weights()["fr"] > 0.9


def test_imtl_l_scales_tend_to_minus_log_loss():
    """Two regression tasks on one shared model, noise std 0.1 and 1.0: s_l → −log L_l, every scaled loss → 1."""
    lw, mean_loss = noisy_regression("imtl_l")
    scales = -lw.log_vars.detach()  # s_l
    assert torch.allclose(scales, -mean_loss.log(), atol=0.3)
    assert torch.allclose(torch.exp(scales) * mean_loss, torch.ones(2), atol=0.3)
    assert lw.current_weights()["clean"] == pytest.approx(math.exp(scales[0].item()))


def test_imtl_l_trains_as_the_papers_loss_with_s_kept_as_minus_log_vars():
    """LibMTL's IMTL-L loss, Σ e^(s) L − s with s = 0 at first, written out and trained by Adam beside a model, step
    for step; here s is kept as −log_vars (Adam is sign-symmetric)."""
    torch.manual_seed(0)
    start = torch.randn(3)

    def losses(theta):
        return {"de": (theta - 1).pow(2).sum(), "fr": 5 * (theta + 1).pow(2).sum()}

    lw, theta = make("imtl_l", languages=["de", "fr"]), start.clone().requires_grad_()
    s, paper_theta = torch.zeros(2, requires_grad=True), start.clone().requires_grad_()
    opt = torch.optim.Adam([theta, *lw.parameters()], lr=0.1)
    paper_opt = torch.optim.Adam([paper_theta, s], lr=0.1)
    for _ in range(20):
        opt.zero_grad(), paper_opt.zero_grad()
        weigh(lw, losses(theta)).backward()
        (s.exp() * torch.stack(list(losses(paper_theta).values())) - s).sum().backward()
        opt.step(), paper_opt.step()
    assert torch.allclose(theta, paper_theta, atol=1e-6) and torch.allclose(-lw.log_vars, s, atol=1e-6)
    assert s.abs().min() > 0.1


STATEFUL = ["famo", "gls", "dbmtl", "imtl_l"]


def run_steps(lw, steps=4):
    """Steps of made-up losses: forward and backward, the module's parameters' SGD step, `end_step`."""
    opt = torch.optim.SGD(lw.parameters(), lr=0.1) if list(lw.parameters()) else None
    for step in range(steps):
        losses = {lang: i + 1 + (i + 1) ** -step for i, lang in enumerate(lw.languages)}
        if opt:
            opt.zero_grad()
        loss_gradient(lw, losses, step)
        lw.end_step(losses)
        if opt:
            opt.step()


@pytest.mark.parametrize("method", STATEFUL)
def test_state_round_trips_into_a_fresh_module(method):
    lw = make(method)
    run_steps(lw)
    assert lw.current_weights() != make(method).current_weights()
    state = lw.state_dict()
    assert state and all(v.dtype == torch.float32 for v in state.values())
    fresh = make(method)
    fresh.load_state_dict(state)
    assert fresh.current_weights() == lw.current_weights()
    run_steps(lw, 6)
    run_steps(fresh, 6)  # and it goes on bit for bit
    for name, value in lw.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[name], value, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("method", STATEFUL)
def test_adding_and_removing_a_language_carries_the_state_over(method):
    old = make(method, languages=["de", "fr"])
    run_steps(old)
    added, removed = make(method, languages=["de", "fr", "es"]), make(method, languages=["fr"])
    added.carry_over(old)
    removed.carry_over(old)
    initial = make(method).state_dict()
    for name, value in old.state_dict().items():
        exact = {"rtol": 0, "atol": 0, "equal_nan": True}
        torch.testing.assert_close(added.state_dict()[name], torch.cat([value, initial[name][2:]]), **exact)  # es: init
        torch.testing.assert_close(removed.state_dict()[name], value[1:], **exact)



@pytest.mark.slow
@pytest.mark.parametrize("method", ["famo", "rlw", "gls", "imtl_l", "dbmtl"])
def test_training_resumes_bit_for_bit(method, corpus_dir, tiny_encoder_dir, tmp_path):
    """The trainer's loop, resumed at step 2: past losses, FAMO's ξ and Adam state, IMTL-L's scales come back from the
    checkpoint; RLW draws the step's weights again."""
    keys = {"loss_weighting": method, "trainable_encoder_layers": 1, "max_steps": 4, "eval_steps": 4, "save_steps": 2}
    train(corpus_dir, tiny_encoder_dir, tmp_path / "run", tmp_path, **keys)
    shutil.copytree(tmp_path / "run", tmp_path / "again")
    shutil.rmtree(tmp_path / "again" / "checkpoints" / "step_4")
    train(corpus_dir, tiny_encoder_dir, tmp_path / "again", tmp_path,
          **keys, resume_from_checkpoint=str(tmp_path / "again" / "checkpoints" / "step_2"))
    a, b = (load_file(tmp_path / run / "checkpoints" / "step_4" / "model.safetensors") for run in ("run", "again"))
    assert a.keys() == b.keys() and any(key.startswith("loss_weighting.") for key in a) == (method != "rlw")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, equal_nan=True, msg=key)
    logged = [{entry["step"]: entry["train/weight_de"] for entry in trainer_state(tmp_path / run)["history"]
               if "train/weight_de" in entry} for run in ("run", "again")]
    assert logged[0] == logged[1] and len(set(logged[0].values())) > 1  # logged at every step, and they moved
