"""mtl-translate: one shared pretrained encoder, one decoder head per target language."""

from transformers import AutoConfig, AutoModel

from .configuration_mtl import MTLConfig
from .modeling_mtl import MTLTranslationModel

AutoConfig.register(MTLConfig.model_type, MTLConfig, exist_ok=True)
AutoModel.register(MTLConfig, MTLTranslationModel, exist_ok=True)

__all__ = ["MTLConfig", "MTLTranslationModel"]
__version__ = "0.1.0"
