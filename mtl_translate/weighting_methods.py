"""The registry of `loss_weighting:` methods, without importing torch (configs check names without building modules).

A method is one class behind `losses.LossWeighting`, in the module its entry names; `gradient`: it works on the
per-language gradients at the shared encoder output (`route`), which only `sharing: hard` has. A new method is one
class in its own file plus one entry here; a new torchjd aggregator is one entry here and one in aggregators.py.
"""

import importlib
import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class MethodInfo:
    path: str  # "module.Class" inside this package
    gradient: bool = False  # needs the per-language gradients at the one shared encoder output
    needs: tuple[str, ...] = ()  # modules it imports besides torchjd (solvers: `mtl-translate[aggregators]`)
    scale_free: bool = True  # its update scales with the gradients (False: fp16's loss scale would change it)


AGGREGATION = "aggregators.Aggregation"  # one adapter for every stateless torchjd aggregator
QP = ("quadprog", "qpsolvers")  # torchjd's projection onto the dual cone (upgrad, dualproj)

LOSS_WEIGHTINGS = {
    "static": MethodInfo("losses.StaticLossWeighting"),
    "uncertainty": MethodInfo("losses.UncertaintyWeighting"),
    "dwa": MethodInfo("losses.DynamicWeightAverage"),
    "gradnorm": MethodInfo("losses.GradNorm", gradient=True),
    "pcgrad": MethodInfo(AGGREGATION, gradient=True),
    "upgrad": MethodInfo(AGGREGATION, gradient=True, needs=QP),
    "dualproj": MethodInfo(AGGREGATION, gradient=True, needs=QP),
    "mgda": MethodInfo(AGGREGATION, gradient=True),
    "cagrad": MethodInfo(AGGREGATION, gradient=True, needs=("cvxpy", "clarabel")),
    "nashmtl": MethodInfo(AGGREGATION, gradient=True, needs=("cvxpy", "ecos"), scale_free=False),
    "fairgrad": MethodInfo(AGGREGATION, gradient=True, needs=("scipy",), scale_free=False),
    "alignedmtl": MethodInfo(AGGREGATION, gradient=True),
    "imtlg": MethodInfo(AGGREGATION, gradient=True),
    "config": MethodInfo(AGGREGATION, gradient=True),
    "graddrop": MethodInfo(AGGREGATION, gradient=True),
    "random": MethodInfo(AGGREGATION, gradient=True),
    "gradvac": MethodInfo("aggregators.GradVacAggregation", gradient=True),
    "famo": MethodInfo("loss_balancing.FAMO"),
    "rlw": MethodInfo("loss_balancing.RandomLossWeighting"),
    "gls": MethodInfo("loss_balancing.GeometricLossStrategy"),
    "imtl_l": MethodInfo("loss_balancing.ImpartialLossScaling"),
    "dbmtl": MethodInfo("loss_balancing.DualBalancing"),
}

# The aggregators' options as recipe keys (configs.py, configuration_mtl.py), with torchjd's defaults, or LibMTL's
# where torchjd has none (cagrad's c, fairgrad's alpha).
AGGREGATOR_OPTIONS = {
    "cagrad_c": 0.5,  # cagrad: radius of the ball around the mean gradient, relative to its norm
    "nashmtl_max_norm": 1.0,  # nashmtl: the update's norm is clipped to it (0: no clipping)
    "nashmtl_optim_niter": 20,  # nashmtl: iterations of the sequence of convex problems
    "fairgrad_alpha": 1.0,  # fairgrad: alpha of alpha-fairness (0: sum, 1: proportional fairness)
    "alignedmtl_scale_mode": "min",  # alignedmtl: min | median | rmse, the singular value the update is scaled to
    "graddrop_leak": 0.0,  # graddrop: share of every gradient that passes whatever its sign
    "gradvac_beta": 0.5,  # gradvac: EMA rate of the target similarities
    "gradvac_eps": 1e-8,  # gradvac: added to denominators
}


def check_loss_weighting(name: str) -> MethodInfo:
    if name not in LOSS_WEIGHTINGS:
        raise ValueError(f"loss_weighting={name!r} is not one of {sorted(LOSS_WEIGHTINGS)}.")
    return LOSS_WEIGHTINGS[name]


def weighting_class(name: str) -> type:
    module, cls = check_loss_weighting(name).path.rsplit(".", 1)
    return getattr(importlib.import_module(f".{module}", __package__), cls)


def missing_modules(name: str) -> list[str]:
    """The modules method `name` needs that are not installed (found without importing them)."""
    return [module for module in check_loss_weighting(name).needs if importlib.util.find_spec(module) is None]
