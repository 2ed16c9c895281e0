"""`sharing: hard`: one encoder for every language (Caruana 1997)."""

from ..encoders import freeze_encoder_layers
from .base import SharingMode


class HardSharing(SharingMode):
    """`model.encoder` runs once per batch and every head reads its output (through the loss weighting's `route`,
    where gradient surgery splits the gradient per language)."""

    def build(self, model, encoder):
        model.encoder = encoder

    def load_pretrained(self, model, pretrained):
        model.encoder.load_state_dict(pretrained.state_dict())

    def freeze(self, model, trainable_layers):
        freeze_encoder_layers(model.encoder, trainable_layers)

    def encode(self, model, input_ids, attention_mask, rows):
        memory = model.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, S, E)
        memory = model.loss_weighting.route(memory, list(rows))  # per-language views for gradient surgery
        return {lang: memory[lang][keep] for lang, keep in rows.items()}

    def states_key(self, lang):
        return "shared"
