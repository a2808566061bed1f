"""The same checkpoints through transformers' MusicGen: the reference Segue's own modules and sampling
loop are tested and benchmarked against. Not used by the engine: importing transformers' modeling
code takes seconds.
"""

from dataclasses import dataclass

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoProcessor,
    AutoTokenizer,
    EncodecFeatureExtractor,
    MusicgenForConditionalGeneration,
    MusicgenMelodyForConditionalGeneration,
    MusicgenProcessor,
)
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from bridge.engine.musicgen.audiogen import windows_for
from bridge.engine.musicgen.loading import (
    LoadedModel,
    checkpoint_folder,
    place,
    resolve_checkpoint,
    resolve_device,
)
from bridge.engine.musicgen.modules.musicgen import MELODY_MODEL_TYPE
from bridge.engine.musicgen.modules.tokenizer import TextTokenizer
from bridge.engine.musicgen.sampling import Conditioning, Runner
from bridge.engine.random_model_folder import is_random_model


@dataclass
class ReferenceModel(LoadedModel):
    """A LoadedModel whose `model` is transformers' own, with transformers' processor for its `generate`."""

    processor: MusicgenProcessor | None = None


def load_reference_model(model_id: str, device: str = "cpu") -> ReferenceModel:
    """`model_id` loaded by transformers (`from_pretrained`) and placed as Segue places its own (loading.place)."""
    folder = checkpoint_folder(resolve_checkpoint(model_id))
    transformers.logging.set_verbosity_error()
    config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    melody = config.model_type == MELODY_MODEL_TYPE
    model_class = MusicgenMelodyForConditionalGeneration if melody else MusicgenForConditionalGeneration
    model = model_class.from_pretrained(folder, use_safetensors=True, trust_remote_code=False)
    if melody:
        # Its own processor's chroma extractor needs torchaudio, which does not load with Segue's torch
        # (Segue computes the chromagram itself: chroma.py); the text side is the same as MusicGen's.
        features = EncodecFeatureExtractor(feature_size=config.decoder.audio_channels,
                                           sampling_rate=config.audio_encoder.sampling_rate)
        processor = MusicgenProcessor(feature_extractor=features, tokenizer=AutoTokenizer.from_pretrained(folder))
    else:
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=False)
    placed = place(model_id, model, TextTokenizer.from_folder(folder), resolve_device(device), is_random_model(folder),
                   windows_for(folder))
    return ReferenceModel(**vars(placed), processor=processor)


def reference_runner(loaded: LoadedModel, conditioning: Conditioning) -> Runner:
    """The transformers decoder with its dynamic cache: (rows, codebooks, tokens) -> last logits (rows, codebooks, vocab)."""
    decoder = loaded.model.decoder
    if conditioning.prefix:
        return _prefix_reference_runner(decoder, conditioning)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())

    def run(input_ids: torch.Tensor) -> torch.Tensor:
        rows, codebooks, tokens = input_ids.shape
        outputs = decoder(
            input_ids=input_ids.reshape(rows * codebooks, tokens),
            encoder_hidden_states=conditioning.hidden_states,
            encoder_attention_mask=conditioning.attention_mask,
            cache=cache,  # transformers 5.24's name; it deprecates `past_key_values` (gone in 5.40)
            use_cache=True,
        )
        return outputs.logits[:, -1].reshape(rows, codebooks, -1)

    return run


def _prefix_reference_runner(decoder: torch.nn.Module, conditioning: Conditioning) -> Runner:
    """As transformers' MusicGen-Melody `generate` runs its decoder: the prefix on the first call only."""
    cache = DynamicCache()
    prefix = [conditioning.hidden_states]

    def run(input_ids: torch.Tensor) -> torch.Tensor:
        rows, codebooks, tokens = input_ids.shape
        outputs = decoder(
            input_ids=input_ids.reshape(rows * codebooks, tokens),
            encoder_hidden_states=prefix.pop() if prefix else None,
            cache=cache,
            use_cache=True,
        )
        return outputs.logits[:, -1].reshape(rows, codebooks, -1)

    return run
