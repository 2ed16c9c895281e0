"""The objective of a step does not depend on how its batch is split (objective.py): one batch of 2B rows, two
micro-batches of B (accumulation), and two processes of B (DDP's average, simulated here; tests/test_distributed.py
runs the real thing) give the same gradients, for every sharing mode and weighting, on sparse rows."""

import pytest
import torch
from transformers import BertConfig

from mtl_translate import MTLTranslationModel
from mtl_translate.data.collator import MultiTargetCollator
from mtl_translate.objective import StepObjective

from .conftest import LANGS, corpus_rows, tiny_config

SHARING = {
    "hard": {},
    "soft": {"soft_sharing_weight": 0.5},
    "partial": {"shared_layers": 1, "language_groups": {"romance": ["fr", "es"]}},
    "cross_stitch": {"cross_stitch_init": 0.8},
    "adapters": {"adapter_size": 8},
    "sluice": {"sluice_orthogonality_weight": 0.0},  # its penalty depends on the split: test_sluice.py tests how
}


def sparse_rows() -> list[dict]:
    """8 rows; a quarter (2, both in the second half) lack German, so per-micro-batch means would weigh them wrong."""
    rows = corpus_rows()[:8]
    for row in rows[5:7]:
        row["translation"]["de"] = None
    return rows


def build(tokenizer, sharing: str, weighting: str) -> MTLTranslationModel:
    encoder = BertConfig(vocab_size=tokenizer.source.vocab_size, hidden_size=48, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=96, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    model = MTLTranslationModel(tiny_config(tokenizer, encoder=encoder.to_dict(), sharing=sharing,
                                            loss_weighting=weighting, label_smoothing=0.1, **SHARING[sharing]))
    with torch.no_grad():  # states a fresh model does not have: learned weights, diverged copies, open adapters
        for name, param in model.named_parameters():
            if name.startswith(("loss_weighting.", "encoders.de.", "adapters.", "cross_stitch.", "sluice.")):
                param.add_(0.05 * torch.randn_like(param))
    if weighting == "dwa":
        model.loss_weighting.history.copy_(torch.tensor([[2.0, 2.0, 2.0], [1.0, 1.8, 1.5]]))
    for losses in ({"de": 2.0, "fr": 1.0, "es": 1.5}, {"de": 1.5, "fr": 0.9, "es": 1.6}):  # past losses, FAMO's ξ
        model.loss_weighting.end_step(losses)
    return model


def gradients(model) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return grads


def split(model, micro: list[dict], processes: int) -> dict:
    """The step's micro-batches as `processes` processes x (len(micro) / processes) passes, DDP's mean taken."""
    counts = {lang: float(sum((b["labels"][lang] != -100).sum() for b in micro if lang in b["labels"]))
              for lang in LANGS}
    per_process = len(micro) // processes
    summed = {}
    for p in range(processes):
        objective = StepObjective(counts, forwards=len(micro), processes=processes, pass_index=p * per_process)
        for i in range(per_process):
            out = model(**micro[p * per_process + i], objective=objective.for_pass(i))
            (out.loss * objective.backward_scale).backward()
        for name, grad in gradients(model).items():
            summed[name] = summed.get(name, 0) + grad / processes
    return summed


def gradients_of(model, batch) -> dict:
    model(**batch).loss.backward()
    return gradients(model)


def relative_gap(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    diff = torch.cat([(a[k] - b[k]).flatten() for k in a]).norm()
    return (diff / torch.cat([a[k].flatten() for k in a]).norm()).item()


@pytest.mark.parametrize("weighting", ["static", "uncertainty", "dwa", "famo", "rlw", "gls", "imtl_l", "dbmtl"])
@pytest.mark.parametrize("sharing", list(SHARING))
def test_one_batch_accumulation_and_processes_give_one_gradient(tokenizer, sharing, weighting):
    model = build(tokenizer, sharing, weighting)
    collate = MultiTargetCollator(tokenizer, "en", LANGS)
    rows = sparse_rows()
    whole = gradients_of(model, collate(rows))
    micro = [collate(rows[:4]), collate(rows[4:])]
    accumulated, two_processes = split(model, micro, 1), split(model, micro, 2)
    assert relative_gap(accumulated, whole) < 1e-5
    assert relative_gap(two_processes, whole) < 1e-5
    # what the loss was before: each micro-batch's own per-language means, averaged over the micro-batches
    for batch in micro:
        (model(**batch).loss / len(micro)).backward()
    assert relative_gap(gradients(model), whole) > 1e-3  # the test sees the bias it guards against, 100x the tolerance
    # (weights that sum to 1 and soft sharing's unbiased penalty leave it at 0.6 % for famo and gls)


def test_a_language_missing_from_one_micro_batch_keeps_its_whole_weight(tokenizer):
    """The issue's two-row case: row 2 has no German. German's head gets the same gradient from one batch of both
    rows as from two micro-batches (before: half of it)."""
    model = build(tokenizer, "hard", "static")
    collate = MultiTargetCollator(tokenizer, "en", LANGS)
    rows = corpus_rows()[:2]
    rows[1]["translation"]["de"] = None
    whole = gradients_of(model, collate(rows))
    accumulated = split(model, [collate(rows[:1]), collate(rows[1:])], 1)
    head = {k for k in whole if k.startswith("decoders.de.")}
    assert relative_gap({k: accumulated[k] for k in head}, {k: whole[k] for k in head}) < 1e-5
    assert whole["decoders.de.embed_tokens.weight"].norm() > 0


def test_uncertainty_regulariser_counts_once_per_step(tokenizer):
    """d/ds_l of sum_l exp(-s_l) L_l + s_l is 1 - exp(-s_l) L_l: the + s_l term's gradient is 1 per step, not per
    micro-batch (nor 1 / accumulation)."""
    model = build(tokenizer, "hard", "uncertainty")
    collate = MultiTargetCollator(tokenizer, "en", LANGS)
    rows = sparse_rows()
    micro = [collate(rows[i:i + 2]) for i in range(0, 8, 2)]
    grad = split(model, micro, 1)["loss_weighting.log_vars"]
    counts = {lang: sum((b["labels"][lang] != -100).sum() for b in micro) for lang in LANGS}
    with torch.no_grad():
        means = torch.stack([sum(model(**b).language_loss_sums[lang] for b in micro) / counts[lang] for lang in LANGS])
    expected = 1 - torch.exp(-model.loss_weighting.log_vars.detach()) * means
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)


def test_forward_returns_sums_and_counts_and_a_plain_call_keeps_the_mean_loss(tokenizer):
    model = build(tokenizer, "hard", "static")
    batch = MultiTargetCollator(tokenizer, "en", LANGS)(sparse_rows())
    out = model(**batch)
    assert {lang: int(n) for lang, n in out.language_token_counts.items()} == \
        {lang: int((batch["labels"][lang] != -100).sum()) for lang in LANGS}
    for lang in LANGS:
        torch.testing.assert_close(out.language_losses[lang], out.language_loss_sums[lang] / out.language_token_counts[lang])
    torch.testing.assert_close(out.loss, sum(out.language_losses.values()))


@pytest.mark.parametrize("sharing, mixing", [("hard", []), ("soft", []), ("partial", []), ("adapters", []),
                                             ("cross_stitch", ["cross_stitch.de.alpha", "cross_stitch.fr.alpha",
                                                               "cross_stitch.es.alpha"]),
                                             ("sluice", ["sluice.de.alpha", "sluice.fr.alpha", "sluice.es.alpha"])])
def test_mixing_weights_and_loss_weights_get_no_weight_decay(tokenizer, sharing, mixing):
    """Each mode's parameters without decay beyond biases and norms: its mixing weights and the learned loss weights."""
    from mtl_translate.configs import load_recipe
    from mtl_translate.train import build_optimizer

    model = build(tokenizer, sharing, "uncertainty")
    optimizer, _ = build_optimizer(load_recipe(None, ["--weight_decay", "0.1"]), model, num_steps=10)
    decay_of = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    undecayed = [name for name, p in model.named_parameters() if decay_of[id(p)] == 0.0 and p.ndim >= 2]
    assert sorted(undecayed) == sorted(mixing)
    assert decay_of[id(model.loss_weighting.log_vars)] == 0.0
    assert all(decay_of[id(p)] == 0.1 for name, p in model.named_parameters()
               if p.ndim >= 2 and name not in mixing)
