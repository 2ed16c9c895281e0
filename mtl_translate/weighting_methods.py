"""The registry of `loss_weighting:` methods, without importing torch (configs check names without building modules).

A method is one class behind `losses.LossWeighting`, in the module its entry names; `gradient`: it works on the
per-language gradients at the shared encoder output (`route`), which only `sharing: hard` has. A new method is one
class in its own file plus one entry here.
"""

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class MethodInfo:
    path: str  # "module.Class" inside this package
    gradient: bool = False  # needs the per-language gradients at the one shared encoder output


LOSS_WEIGHTINGS = {
    "static": MethodInfo("losses.StaticLossWeighting"),
    "uncertainty": MethodInfo("losses.UncertaintyWeighting"),
    "dwa": MethodInfo("losses.DynamicWeightAverage"),
    "gradnorm": MethodInfo("losses.GradNorm", gradient=True),
    "pcgrad": MethodInfo("losses.PCGrad", gradient=True),
    "famo": MethodInfo("loss_balancing.FAMO"),
    "rlw": MethodInfo("loss_balancing.RandomLossWeighting"),
    "gls": MethodInfo("loss_balancing.GeometricLossStrategy"),
    "imtl_l": MethodInfo("loss_balancing.ImpartialLossScaling"),
    "dbmtl": MethodInfo("loss_balancing.DualBalancing"),
}


def check_loss_weighting(name: str) -> MethodInfo:
    if name not in LOSS_WEIGHTINGS:
        raise ValueError(f"loss_weighting={name!r} is not one of {sorted(LOSS_WEIGHTINGS)}.")
    return LOSS_WEIGHTINGS[name]


def weighting_class(name: str) -> type:
    module, cls = check_loss_weighting(name).path.rsplit(".", 1)
    return getattr(importlib.import_module(f".{module}", __package__), cls)
