"""mtl-translate: one shared pretrained encoder, one decoder head per target language."""

from transformers import AutoConfig, AutoModel

from .configuration_mtl import MTLConfig
from .modeling_mtl import MTLTranslationModel
from .tokenization_mtl import MTLTokenizer
from .translate import Translator

AutoConfig.register(MTLConfig.model_type, MTLConfig, exist_ok=True)
AutoModel.register(MTLConfig, MTLTranslationModel, exist_ok=True)
from . import pipelines  # noqa: E402  registers pipeline("multi-target-translation"): needs the Auto classes above

__all__ = ["MTLConfig", "MTLTokenizer", "MTLTranslationModel", "Translator"]
__version__ = "0.1.0"
