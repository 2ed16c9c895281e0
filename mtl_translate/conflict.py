"""Gradient conflict between languages at the shared encoder output (`log_gradient_conflict`, sharing: hard).

Every head reads the same encoder states h (B x S x E); g_l = dL_l/dh is what language l asks of the shared
encoder. cos(g_a, g_b) < 0: a step that lowers a's loss raises b's (the conflict PCGrad projects away, Yu et al.
2020); a norm far above the others: one language dominates the encoder's update. Measured on the batch of each
logging step only, from the graph of its forward, so every other step costs nothing.
"""

from itertools import combinations

import torch
import torch.nn.functional as F


def conflict_keys(langs: list[str]) -> list[str]:
    """The log keys in a fixed order (the same on every process): a norm per language, a cosine per pair."""
    return [f"grad_norm_{lang}" for lang in langs] + [f"grad_cos_{a}_{b}" for a, b in combinations(langs, 2)]


def gradient_conflict(output, labels: dict[str, torch.Tensor], langs: list[str]) -> dict[str, float]:
    """`grad_norm_<l>` and `grad_cos_<a>_<b>` (a before b in `langs`) for the languages with a loss in this batch.

    `output`: the model's output with `encoder_states` ({l: (B_l, S, E) the states l's head read on its rows});
    `labels`: {l: (B, T)}, -100 on rows without a target. Each gradient is put back on the whole batch (zeros on the
    rows l lacks), so that two languages are compared on the same tensor h. Unweighted losses: a language's loss
    weight scales its norm, not the cosines. The graph is kept for the training backward."""
    present = [lang for lang in langs if lang in output.language_losses]
    grads = {}
    for lang in present:
        state = output.encoder_states[lang]  # (B_l, S, E)
        (grad,) = torch.autograd.grad(output.language_losses[lang], state, retain_graph=True)
        rows = (labels[lang] != -100).any(dim=1)  # (B,) the rows l's head ran on
        full = grad.new_zeros((rows.shape[0], *grad.shape[1:]), dtype=torch.float32)  # (B, S, E)
        full[rows] = grad.float()
        grads[lang] = full.flatten()  # (B*S*E,)
    values = {f"grad_norm_{lang}": grad.norm() for lang, grad in grads.items()}
    values.update({f"grad_cos_{a}_{b}": F.cosine_similarity(grads[a], grads[b], dim=0)
                   for a, b in combinations(present, 2)})
    return dict(zip(values, torch.stack(list(values.values())).tolist())) if values else {}


def conflict_summary(history: list[dict], langs: list[str]) -> dict:
    """What a run's logged gradients (trainer_state.json's `history`) say over its whole training: per pair of
    languages ("de/fr") the mean cosine and the share of logged steps where it was below 0, per language the mean
    norm. {} for a run that logged none (`log_gradient_conflict` off, or a sharing mode without one encoder output)."""
    pairs = {f"{a}/{b}": [e[f"train/grad_cos_{a}_{b}"] for e in history if f"train/grad_cos_{a}_{b}" in e]
             for a, b in combinations(langs, 2)}
    norms = {lang: [e[f"train/grad_norm_{lang}"] for e in history if f"train/grad_norm_{lang}" in e] for lang in langs}
    pairs = {pair: values for pair, values in pairs.items() if values}
    if not pairs:
        return {}
    return {"cosine": {pair: sum(values) / len(values) for pair, values in pairs.items()},
            "negative": {pair: sum(v < 0 for v in values) / len(values) for pair, values in pairs.items()},
            "norm": {lang: sum(values) / len(values) for lang, values in norms.items() if values},
            "logged_steps": max(len(values) for values in pairs.values())}
