"""TorchJD's aggregators at the shared encoder output (aggregators.py): each is torchjd on the rows of the languages
that ran, pcgrad is the hand-written PCGrad it replaced, gradvac is the paper's update, and randomness and state do
not depend on how a step is split."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from torchjd.aggregation import (IMTLG, MGDA, AlignedMTL, CAGrad, ConFIG, DualProj, FairGrad, GradDrop, GradVac,
                                 NashMTL, PCGrad, Random, UPGrad)

from mtl_translate import MTLConfig, MTLTranslationModel
from mtl_translate.aggregators import AGGREGATORS
from mtl_translate.configs import ModelArguments, load_recipe
from mtl_translate.losses import build_loss_weighting
from mtl_translate.objective import StepObjective
from mtl_translate.weighting_methods import AGGREGATOR_OPTIONS, LOSS_WEIGHTINGS

from .conftest import LANGS, corpus_rows, tiny_config
from .test_model import batch_of

# Each method as a torchjd user writes it, with the documented defaults.
DIRECT = {
    "pcgrad": lambda m: PCGrad(), "upgrad": lambda m: UPGrad(), "dualproj": lambda m: DualProj(),
    "mgda": lambda m: MGDA(), "cagrad": lambda m: CAGrad(c=0.5), "nashmtl": lambda m: NashMTL(n_tasks=m),
    "fairgrad": lambda m: FairGrad(alpha=1.0), "alignedmtl": lambda m: AlignedMTL(), "imtlg": lambda m: IMTLG(),
    "config": lambda m: ConFIG(), "graddrop": lambda m: GradDrop(), "random": lambda m: Random(),
    "gradvac": lambda m: GradVac(),  # a fresh GradVac: targets 0, as a model's first step
}


def direct(method, J, seed=0):
    with torch.random.fork_rng([]):
        torch.manual_seed(seed)
        return DIRECT[method](len(J))(J)


def make(method, languages=("de", "fr", "es", "it"), **options):
    return build_loss_weighting(SimpleNamespace(languages=list(languages), loss_weighting=method, **options))


def step_gradient(lw, rows: dict, step=StepObjective.of_batch({}), routed=None) -> torch.Tensor:
    """The gradient at h of a pass whose languages have gradients `rows` ({lang: (D,)}, the loss Σ_l rows_l · h_l),
    with `routed` languages handed h (default: those of `rows`)."""
    hidden = torch.zeros(next(iter(rows.values())).shape, requires_grad=True)
    views = lw.route(hidden, list(routed or rows))
    ones = {lang: torch.tensor(1.0) for lang in rows}
    objective = dataclasses.replace(step, counts={lang: 1.0 for lang in rows})
    lw({lang: (views[lang] * g).sum() for lang, g in rows.items()}, ones, objective).backward()
    return hidden.grad


def conflicting(n, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = torch.randn(n, d, generator=g)
    rows[1] = -0.8 * rows[0] + 0.3 * rows[1]  # a conflict, so that surgery has work
    return rows


def test_every_aggregator_is_offered_and_tested():
    assert set(DIRECT) == set(AGGREGATORS) == {name for name, info in LOSS_WEIGHTINGS.items()
                                               if info.path.startswith("aggregators.")}


@pytest.mark.parametrize("method", sorted(DIRECT))
def test_each_aggregator_is_torchjd_on_the_languages_that_ran(method):
    J = conflicting(3)
    rows = dict(zip(["de", "fr", "es"], J))  # "it" is routed, its head never runs (no target): not a row
    grad = step_gradient(make(method), rows, routed=["de", "fr", "es", "it"])
    torch.testing.assert_close(grad, direct(method, J))


@pytest.mark.parametrize("method", sorted(DIRECT))
def test_one_language_in_a_pass_passes_its_gradient_unchanged(method):
    J = conflicting(2)
    grad = step_gradient(make(method), {"de": J[0]}, routed=["de", "fr"])
    torch.testing.assert_close(grad, J[0])


def hand_written_pcgrad(grads: torch.Tensor, generator) -> torch.Tensor:
    """The PCGrad this package had before torchjd (losses.PCGrad.combine): for each language, the others in an order
    drawn from `generator`, conflicting components projected out."""
    sq_norms = (grads * grads).sum(dim=1).clamp_min(torch.finfo(grads.dtype).tiny)
    out = torch.zeros_like(grads[0])
    for i in range(len(grads)):
        gi = grads[i].clone()
        for j in torch.randperm(len(grads), generator=generator).tolist():
            if j != i:
                gi -= (gi @ grads[j]).clamp(max=0) / sq_norms[j] * grads[j]
        out += gi
    return out


@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_pcgrad_through_torchjd_is_the_hand_written_pcgrad_in_the_same_order(n):
    """Same projections, and the same random order for the same (step, pass) seed: the replacement changes no run."""
    langs = ["de", "fr", "es", "it", "ru", "ja"][:n]
    for seed in range(5):
        J = conflicting(n, seed=seed)
        step = StepObjective({}, step=seed, pass_index=1)
        grad = step_gradient(make("pcgrad", langs), dict(zip(langs, J)), step)
        expected = hand_written_pcgrad(J, torch.Generator().manual_seed(step.seed))
        torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["pcgrad", "graddrop", "random", "gradvac"])
def test_randomness_is_seeded_by_step_and_pass_and_leaves_torchs_rng_alone(method):
    rows = dict(zip(["de", "fr", "es", "it"], conflicting(4)))
    torch.manual_seed(123)
    first = step_gradient(make(method), rows, StepObjective({}, step=3, pass_index=1))
    after = torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(step_gradient(make(method), rows, StepObjective({}, step=3, pass_index=1)), first)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after)  # the global stream did not move
    others = [step_gradient(make(method), rows, StepObjective({}, step=3, pass_index=p)) for p in range(2, 8)]
    assert any(not torch.equal(other, first) for other in others)


def paper_gradvac(grads, targets, beta, seed):
    """One GradVac step on the gradient rows, as in the paper's Algorithm 1 (and LibMTL): the other tasks in random
    order (torchjd's draws), the correction where cos(g_i^PC, g_j) is below the target, the target's EMA."""
    torch.manual_seed(seed)
    pc = grads.clone()
    for i in range(len(grads)):
        others = [j for j in range(len(grads)) if j != i]
        for j in [others[k] for k in torch.randperm(len(others)).tolist()]:
            phi = pc[i] @ grads[j] / (pc[i].norm() * grads[j].norm())
            hat = targets[i, j]
            if phi < hat:
                pc[i] += pc[i].norm() * (hat * (1 - phi**2).sqrt() - phi * (1 - hat**2).sqrt()) / (
                    grads[j].norm() * (1 - hat**2).sqrt()) * grads[j]
            targets[i, j] = (1 - beta) * hat + beta * phi
    return pc.sum(dim=0)


def test_gradvac_is_the_papers_update_step_after_step():
    """Over steps, with the language whose head does not run keeping its targets; beta 0.3 to see the EMA."""
    langs, beta = ["de", "fr", "es"], 0.3
    lw = make("gradvac", langs, gradvac_beta=beta)
    targets = torch.zeros(3, 3)
    for t in range(4):
        J = conflicting(3, seed=t) if t % 2 else conflicting(3, seed=t).flip(0)  # conflicts that change
        present = [0, 1, 2] if t != 2 else [0, 2]  # at step 2, fr has no target
        step = StepObjective({}, step=t)
        grad = step_gradient(lw, {langs[k]: J[k] for k in present}, step, routed=langs)
        sub = targets[present][:, present]
        expected = paper_gradvac(J[present], sub, beta, step.seed)
        targets[torch.tensor(present)[:, None], torch.tensor(present)] = sub
        torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)
        lw.end_step({})
        torch.testing.assert_close(lw.targets, targets, rtol=1e-5, atol=1e-7)
    assert (lw.targets[1, 0] != 0) and (targets != 0).sum() == 6


def gradvac_pass(lw, J, step, index):
    step_gradient(lw, dict(zip(["de", "fr", "es"], J)), dataclasses.replace(step, pass_index=index))


def test_gradvac_targets_move_once_per_step_the_same_for_any_split():
    """1 process x 2 passes and 2 processes x 1 pass (end_step's reduce sums their statistics) reach the same targets:
    the mean over the step's passes of the observed cosines, with the step's starting targets in every pass."""
    passes, step = [conflicting(3, seed=1), conflicting(3, seed=2)], StepObjective({}, step=5)
    one = make("gradvac", ["de", "fr", "es"])
    for index, J in enumerate(passes):
        gradvac_pass(one, J, step, index)
    one.end_step({})
    two = [make("gradvac", ["de", "fr", "es"]) for _ in passes]
    for index, (lw, J) in enumerate(zip(two, passes)):
        gradvac_pass(lw, J, step, index)
    stats = [lw._observed[1].clone() for lw in two]
    for lw in two:
        lw.end_step({}, reduce=lambda t: sum(stats))
    for lw in two:
        torch.testing.assert_close(lw.targets, one.targets)
    single = make("gradvac", ["de", "fr", "es"])
    gradvac_pass(single, passes[0], step, 0)
    single.end_step({})
    assert not torch.allclose(single.targets, one.targets)  # the second pass counted


def test_gradvac_targets_are_saved_and_follow_their_languages():
    lw = make("gradvac", ["de", "fr", "es"])
    gradvac_pass(lw, conflicting(3), StepObjective({}), 0)
    lw.end_step({})
    assert set(lw.state_dict()) == {"targets"}
    fresh = make("gradvac", ["de", "fr", "es"])
    fresh.load_state_dict(lw.state_dict())
    assert torch.equal(fresh.targets, lw.targets)
    grown = make("gradvac", ["fr", "it", "de"])
    grown.carry_over(lw)
    assert grown.targets[0, 2] == lw.targets[1, 0] and grown.targets[2, 0] == lw.targets[0, 1]
    assert grown.targets[1].abs().sum() == 0 and grown.targets[:, 1].abs().sum() == 0  # it: new pairs start at 0


@pytest.mark.parametrize("method", ["nashmtl", "fairgrad"])
def test_update_of_scale_dependent_aggregators_is_the_mean_over_passes(method):
    """Their update does not follow the rows' scale: each of F passes adds 1/F of it, and DDP's P is undone."""
    J = conflicting(3)
    rows = dict(zip(["de", "fr", "es"], J))
    step = StepObjective({}, forwards=2, processes=2)
    grad = step_gradient(make(method), {lang: g * step.backward_scale for lang, g in rows.items()}, step)
    torch.testing.assert_close(grad / step.backward_scale, direct(method, J) / 2)


def encoder_output_and_loss(model, batch):
    """The model's output on `batch` and the encoder output h (B, S, E) that its heads' views come from."""
    captured = {}
    hook = model.encoder.register_forward_hook(lambda m, i, out: captured.update(hidden=out.last_hidden_state))
    out = model(**batch)
    hook.remove()
    return out, captured["hidden"]


@pytest.mark.parametrize("method", sorted(DIRECT))
def test_the_encoder_output_gets_the_aggregation_of_the_per_language_gradients(tokenizer, method):
    """In the model: h's gradient is the aggregator on the languages' loss gradients at h (taken from the same model
    with plain weighting: through the aggregator's views each would be combined), es, absent from the batch (no
    target), giving no row."""
    torch.manual_seed(0)
    model = MTLTranslationModel(tiny_config(tokenizer, loss_weighting=method))
    plain = MTLTranslationModel(tiny_config(tokenizer))
    plain.load_state_dict(model.state_dict(), strict=False)  # all but gradvac's targets
    batch = batch_of(tokenizer, [{"translation": {**row["translation"], "es": None}} for row in corpus_rows()[:6]])
    out, hidden = encoder_output_and_loss(plain, batch)
    assert set(out.language_losses) == {"de", "fr"}
    grads = [torch.autograd.grad(out.language_losses[lang], hidden, retain_graph=True)[0] for lang in ("de", "fr")]
    out, hidden = encoder_output_and_loss(model, batch)
    hidden.retain_grad()
    out.loss.backward()
    expected = direct(method, torch.stack([g.flatten() for g in grads])).view_as(hidden)
    torch.testing.assert_close(hidden.grad, expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("method", sorted(DIRECT))
def test_aggregators_need_hard_sharing(tokenizer, method):
    with pytest.raises(ValueError, match="only sharing: hard has"):
        tiny_config(tokenizer, sharing="soft", loss_weighting=method)


def test_options_have_one_default_in_recipe_config_and_registry():
    defaults = ModelArguments()
    assert {key: getattr(defaults, key) for key in AGGREGATOR_OPTIONS} == AGGREGATOR_OPTIONS
    assert {key: getattr(MTLConfig(), key) for key in AGGREGATOR_OPTIONS} == AGGREGATOR_OPTIONS


@pytest.mark.parametrize("overrides, message", [
    (["--gradvac_beta", "1.5"], r"'gradvac_beta' must be in \[0, 1\]"),
    (["--cagrad_c", "-1"], r"'cagrad_c' must be >= 0"),
    (["--alignedmtl_scale_mode", "max"], r"min, median or rmse"),
    (["--loss_weighting", "nashmtl", "--mixed_precision", "fp16"], r"fp16's loss scale"),
    (["--loss_weighting", "upgrad_"], r"not one of"),
])
def test_bad_aggregator_settings_are_clear_recipe_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(overrides=overrides)


def test_a_missing_solver_is_named_with_the_install_command(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cvxpy" else find_spec(name, *a))
    with pytest.raises(ValueError, match=r"cagrad needs \['cvxpy'\].*mtl-translate\[aggregators\]"):
        load_recipe(overrides=["--loss_weighting", "cagrad"])
    assert load_recipe(overrides=["--loss_weighting", "upgrad"]).model.loss_weighting == "upgrad"
