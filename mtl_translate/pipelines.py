"""`pipeline("multi-target-translation", model=DIR)`: transformers' pipeline API over the Translator.

Registered in transformers' pipeline registry when `mtl_translate` is imported (our model class is not in
transformers, so `import mtl_translate` must come first). One call translates into every language of the model (or
`langs`): a str gives `{lang: text}`, a list gives one such dict per input, and a list is translated as one batch
(the encoder runs once per batch for all languages), not item by item as the generic pipeline loop would.
"""

from collections.abc import Iterable, Sequence

from transformers import Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .generation import SETTINGS
from .modeling_mtl import MTLTranslationModel
from .tokenization_mtl import MTLTokenizer
from .translate import Translator

TASK = "multi-target-translation"


class MultiTargetTranslationPipeline(Pipeline):
    """`pipe("Save the file")` -> `{"de": ..., "fr": ...}`; `pipe(texts, langs=["de"], num_beams=4, batch_size=32)`."""

    _load_tokenizer = False  # the model folder holds one SentencePiece tokenizer per language: ours loads them
    _load_processor = _load_image_processor = _load_feature_extractor = _load_video_processor = False
    _pipeline_calls_generate = False  # decoding is the Translator's (stacked heads), not GenerationMixin's

    def __init__(self, model: MTLTranslationModel, tokenizer: MTLTokenizer | None = None, **kwargs):
        if not isinstance(model, MTLTranslationModel):
            raise ValueError(f"the {TASK!r} pipeline needs an mtl-translate model folder or MTLTranslationModel, got "
                             f"{type(model).__name__}.")
        if tokenizer is None:
            tokenizer = MTLTokenizer.from_pretrained(model.config.name_or_path, config=model.config)
        self.translator = Translator(model, tokenizer)  # first: Pipeline.__init__ checks the default `langs` with it
        super().__init__(model=model, tokenizer=tokenizer, **kwargs)

    def _sanitize_parameters(self, langs: Sequence[str] | None = None, **generation):
        """Also called by Pipeline.__init__ with the keyword arguments given to `pipeline(...)`: defaults per call."""
        unknown = sorted(set(generation) - set(SETTINGS))
        if unknown:
            raise ValueError(f"{TASK} pipeline: unknown argument(s) {unknown}; it takes langs, batch_size and "
                             f"{', '.join(SETTINGS)}.")
        forward = dict(generation)
        if langs is not None:
            forward["langs"] = self.translator.check_languages(langs)
        return {}, forward, {}

    def __call__(self, inputs: str | list[str], batch_size: int | None = None, **kwargs):
        if isinstance(inputs, str):
            return super().__call__(inputs, **kwargs)
        if not isinstance(inputs, Iterable):  # None, 5: a list, tuple or generator of str is fine
            raise ValueError(f"{TASK} pipeline: the input is {type(inputs).__name__}, not str; pass a str or a list of "
                             "str.")
        texts = list(inputs)
        bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
        if bad:
            raise ValueError(f"{TASK} pipeline: input {bad[0]} is {type(texts[bad[0]]).__name__}, not str; pass a str "
                             "or a list of str.")
        forward = {**self._forward_params, **self._sanitize_parameters(**kwargs)[1]}
        outputs = self.translator.translate(texts, batch_size=batch_size or self._batch_size or 32, **forward)
        return [{lang: outputs[lang][i] for lang in outputs} for i in range(len(texts))]  # {lang: [str]} -> per text

    def preprocess(self, text: str) -> dict:
        return {"texts": [text]}

    def _forward(self, model_inputs: dict, **forward) -> dict:
        return self.translator.translate(model_inputs["texts"], **forward)

    def postprocess(self, outputs: dict) -> dict[str, str]:
        return {lang: texts[0] for lang, texts in outputs.items()}


PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=MultiTargetTranslationPipeline,
                                    pt_model=MTLTranslationModel, type="text")
