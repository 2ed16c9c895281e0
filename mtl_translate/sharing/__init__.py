"""How the target languages share the pretrained encoder (`sharing:` in the config): one class per mode.

    hard     one encoder for every language (Caruana 1997); the default and the cheapest         (hard.py)
    soft     one encoder copy per language, pulled together by an L2 penalty (Duong et al. 2015) (soft.py)
    partial  bottom `shared_layers` blocks shared, the blocks above per language group            (partial.py)
             (hierarchical sharing in the style of Søgaard & Goldberg 2016)
    cross_stitch  one encoder copy per language; after every block a learned α mixes the copies
             (Misra et al. 2016)                                                              (cross_stitch.py)
    adapters  one shared encoder plus a small bottleneck adapter per language after each block
             (Bapna & Firat 2019; Philip et al. 2020)                                         (adapters.py)
    sluice   cross-stitch over subspaces of each block's output, an orthogonality penalty between a copy's
             subspaces, and learned weights over the blocks per head (Ruder et al. 2019)        (sluice.py)

Every mode implements `SharingMode` (base.py); the model only talks to that interface. This file is the registry
and holds the checks a config needs, without importing torch (configs load without building any module).
A new mode is one class in its own file plus one `MODES` entry.
"""

import importlib
from dataclasses import dataclass

from ..weighting_methods import check_loss_weighting


@dataclass(frozen=True)
class ModeInfo:
    path: str  # "module.Class" inside this package
    one_output: bool  # every language reads one shared encoder output (what gradient surgery works on)
    needs: tuple[str, ...] = ()  # config keys the mode cannot do without


MODES = {
    "hard": ModeInfo("hard.HardSharing", one_output=True),
    "soft": ModeInfo("soft.SoftSharing", one_output=False),
    "partial": ModeInfo("partial.PartialSharing", one_output=False, needs=("shared_layers",)),
    "adapters": ModeInfo("adapters.AdapterSharing", one_output=False),
    "cross_stitch": ModeInfo("cross_stitch.CrossStitchSharing", one_output=False),
    "sluice": ModeInfo("sluice.SluiceSharing", one_output=False),
}


def check_sharing_config(config) -> None:
    """Config-level checks of `sharing` and the keys it needs (no module is built)."""
    if config.sharing not in MODES:
        raise ValueError(f"sharing={config.sharing!r} is not one of {list(MODES)}.")
    info = MODES[config.sharing]
    for key in info.needs:
        if getattr(config, key, None) is None:
            raise ValueError(f"sharing: {config.sharing} needs {key}.")
    if not info.one_output and check_loss_weighting(config.loss_weighting).gradient:
        raise ValueError(f"loss_weighting={config.loss_weighting!r} works on the gradient at the shared encoder "
                         f"output, which only sharing: hard has; got sharing={config.sharing!r}.")
    language_group_map(config.languages, config.language_groups)  # raises on a bad grouping


def build_sharing(config):
    """The `SharingMode` instance of `config.sharing`."""
    check_sharing_config(config)
    module, name = MODES[config.sharing].path.rsplit(".", 1)
    return getattr(importlib.import_module(f".{module}", __name__), name)(config)


def language_group_map(languages: list[str], language_groups: dict[str, list[str]] | None) -> dict[str, str]:
    """{lang: the group whose encoder blocks it reads}; an ungrouped language is a group of its own (named by it)."""
    groups = {lang: lang for lang in languages}
    for name, members in (language_groups or {}).items():
        unknown = [lang for lang in members if lang not in languages]
        if unknown:
            raise ValueError(f"language_groups[{name!r}] lists {unknown}, not among the languages {languages}.")
        if name in languages and name not in members:
            raise ValueError(f"language_groups: the group name {name!r} is also a language outside that group.")
        for lang in members:
            if groups[lang] != lang:
                raise ValueError(f"language_groups: {lang!r} is in both {groups[lang]!r} and {name!r}.")
            groups[lang] = name
    return groups
