"""The text tokenizer of a MusicGen checkpoint, from its tokenizer.json, without transformers.

`TextTokenizer.from_folder(folder)(prompts)` gives the ids and mask that
`AutoTokenizer.from_pretrained(folder)(prompts, return_tensors="pt", padding=True)` gives with
transformers 5.24. Its T5Tokenizer (models/t5/tokenization_t5.py) does not run tokenizer.json as
written: it keeps the file's Unigram vocabulary and SentencePiece normaliser (the "Precompiled"
charsmap, tokenization_utils_tokenizers.py convert_to_native_format) and rebuilds the rest: split
on whitespace then Metaspace ("▁" prepended to every word), `</s>` appended. This module rebuilds the
same pipeline, so a tokenizer.json that an older converter wrote (the hub's MusicGen folders were
converted with transformers 4.x) tokenizes as transformers tokenizes it today. Padding is to the
longest prompt, on the side and with the token tokenizer_config.json names; nothing is truncated
(transformers only warns past model_max_length).
"""

import base64
import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from bridge.errors import InvalidParameterError, ModelError

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE, SPECIAL_TOKENS_FILE = "tokenizer_config.json", "special_tokens_map.json"
T5_TOKENIZER_CLASSES = (None, "T5Tokenizer", "T5TokenizerFast")


class TextTokenizer:
    """Prompts -> (input_ids, attention_mask), both (batch, longest prompt's tokens) int64 tensors."""

    def __init__(self, tokenizer: Tokenizer, pad_token: str, padding_side: str) -> None:
        pad_id = tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise ModelError(f"the tokenizer's pad token {pad_token!r} is not in its vocabulary")
        tokenizer.no_truncation()
        tokenizer.enable_padding(direction=padding_side, pad_id=pad_id, pad_token=pad_token)
        self.tokenizer = tokenizer
        self.pad_id = pad_id

    @classmethod
    def from_folder(cls, folder: Path | str) -> "TextTokenizer":
        """The tokenizer of a checkpoint folder; ModelError if it has no usable tokenizer.json."""
        folder = Path(folder)
        path = folder / TOKENIZER_FILE
        if not path.is_file():
            raise ModelError(f"{folder} has no {TOKENIZER_FILE} (Segue reads the text tokenizer from it): "
                             "download or convert the model again")
        config, special_tokens = (_read_json(folder / name) if (folder / name).is_file() else {}
                                  for name in (CONFIG_FILE, SPECIAL_TOKENS_FILE))
        if config.get("tokenizer_class") not in T5_TOKENIZER_CLASSES:
            raise ModelError(f"{folder}'s tokenizer is a {config['tokenizer_class']}; Segue reads T5 tokenizers only")
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # tokenizers raises plain Exceptions for unreadable files
            raise ModelError(f"cannot read {path}: {(str(error).splitlines() or ['unreadable'])[0]}") from None
        # As in transformers, special_tokens_map.json's tokens win over tokenizer_config.json's.
        _rebuild_as_t5_tokenizer(tokenizer, _token("eos_token", "</s>", special_tokens, config))
        return cls(tokenizer, _token("pad_token", "<pad>", special_tokens, config), config.get("padding_side", "right"))

    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if not prompts:
            raise InvalidParameterError("no prompt to tokenize")
        encodings = self.tokenizer.encode_batch(list(prompts), add_special_tokens=True)
        input_ids = torch.tensor([encoding.ids for encoding in encodings], dtype=torch.long)
        attention_mask = torch.tensor([encoding.attention_mask for encoding in encodings], dtype=torch.long)
        return input_ids, attention_mask


def _rebuild_as_t5_tokenizer(tokenizer: Tokenizer, eos_token: str) -> None:
    """Around tokenizer.json's vocabulary, the pipeline transformers' T5Tokenizer.__init__ builds."""
    if not isinstance(tokenizer.model, models.Unigram):
        raise ModelError(f"{TOKENIZER_FILE} holds no T5 (Unigram) vocabulary")
    eos_id = tokenizer.token_to_id(eos_token)
    if eos_id is None:
        raise ModelError(f"the tokenizer's end token {eos_token!r} is not in its vocabulary")
    charsmap = _precompiled_charsmap(tokenizer.normalizer)
    tokenizer.normalizer = None if charsmap is None else normalizers.Precompiled(charsmap)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single=["$A", eos_token], pair=["$A", eos_token, "$B", eos_token], special_tokens=[(eos_token, eos_id)]
    )


def _precompiled_charsmap(normalizer: normalizers.Normalizer | None) -> bytes | None:
    """The SentencePiece charsmap of a Precompiled normaliser, alone or in a Sequence (what transformers keeps)."""
    if normalizer is None:
        return None
    spec = json.loads(normalizer.__getstate__())
    for candidate in spec.get("normalizers", []) if spec.get("type") == "Sequence" else [spec]:
        if candidate.get("type") == "Precompiled" and candidate.get("precompiled_charsmap"):
            return base64.b64decode(candidate["precompiled_charsmap"])
    return None


def _token(name: str, default: str, *configs: dict) -> str:
    value = next((config[name] for config in configs if config.get(name)), default)
    return value["content"] if isinstance(value, dict) else str(value)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot read {path}: {error}") from None
