"""The text tokenizer of a MusicGen checkpoint, from its tokenizer.json, without transformers.

`TextTokenizer.from_folder(folder)(prompts)` gives the ids and mask that
`AutoTokenizer.from_pretrained(folder)(prompts, return_tensors="pt", padding=True)` gives with
transformers 5.24. Its T5Tokenizer (models/t5/tokenization_t5.py) does not run tokenizer.json as
written: it keeps the file's Unigram vocabulary and SentencePiece normaliser (the "Precompiled"
charsmap, tokenization_utils_tokenizers.py convert_to_native_format) and rebuilds the rest: split
on whitespace then Metaspace ("▁" prepended to every word), `</s>` appended, no byte fallback. This
module rebuilds the same pipeline, so checkpoints whose tokenizer.json an older converter wrote
(musicgen-small's dates from 2023) tokenize as transformers tokenizes them today. Padding is to the
longest prompt, on the side and with the token tokenizer_config.json names; nothing is truncated
(transformers only warns past model_max_length).
"""

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer

from bridge.errors import InvalidParameterError, ModelError

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
T5_TOKENIZER_CLASSES = (None, "T5Tokenizer", "T5TokenizerFast")

# T5Tokenizer.__init__'s pre-tokeniser, as tokenizers serialises it.
_T5_PRE_TOKENIZER = {
    "type": "Sequence",
    "pretokenizers": [
        {"type": "WhitespaceSplit"},
        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
    ],
}


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
        config = _read_json(folder / CONFIG_FILE) if (folder / CONFIG_FILE).is_file() else {}
        if config.get("tokenizer_class") not in T5_TOKENIZER_CLASSES:
            raise ModelError(f"{folder}'s tokenizer is a {config['tokenizer_class']}; Segue reads T5 tokenizers only")
        eos_token, pad_token = _token(config, "eos_token", "</s>"), _token(config, "pad_token", "<pad>")
        tokenizer = Tokenizer.from_str(json.dumps(_as_t5_tokenizer(_read_json(path), eos_token)))
        return cls(tokenizer, pad_token, config.get("padding_side", "right"))

    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if not prompts:
            raise InvalidParameterError("no prompt to tokenize")
        encodings = self.tokenizer.encode_batch(list(prompts), add_special_tokens=True)
        input_ids = torch.tensor([encoding.ids for encoding in encodings], dtype=torch.long)
        attention_mask = torch.tensor([encoding.attention_mask for encoding in encodings], dtype=torch.long)
        return input_ids, attention_mask


def _as_t5_tokenizer(spec: dict, eos_token: str) -> dict:
    """tokenizer.json's content with the pipeline transformers' T5Tokenizer builds around its vocabulary."""
    model = spec.get("model") or {}
    if model.get("type", "Unigram") != "Unigram" or not model.get("vocab"):
        raise ModelError(f"{TOKENIZER_FILE} holds no T5 (Unigram) vocabulary")
    eos_id = _token_id(spec, eos_token)
    if eos_id is None:
        raise ModelError(f"the tokenizer's end token {eos_token!r} is not in its vocabulary")
    charsmap = _precompiled_charsmap(spec.get("normalizer"))
    end = {"SpecialToken": {"id": eos_token, "type_id": 0}}
    return {
        **spec,
        "model": {**model, "type": "Unigram", "unk_id": 2, "byte_fallback": False},  # T5Tokenizer: Unigram(unk_id=2)
        "normalizer": None if charsmap is None else {"type": "Precompiled", "precompiled_charsmap": charsmap},
        "pre_tokenizer": _T5_PRE_TOKENIZER,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, end],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, end, {"Sequence": {"id": "B", "type_id": 0}}, end],
            "special_tokens": {eos_token: {"id": eos_token, "ids": [eos_id], "tokens": [eos_token]}},
        },
        "truncation": None,
        "padding": None,
    }


def _token_id(spec: dict, token: str) -> int | None:
    for added in spec.get("added_tokens", []):
        if added.get("content") == token:
            return int(added["id"])
    pieces = [piece for piece, _score in spec["model"]["vocab"]]
    return pieces.index(token) if token in pieces else None


def _precompiled_charsmap(normalizer: dict | None) -> str | None:
    """The SentencePiece charsmap of a Precompiled normaliser, alone or in a Sequence (base64, as stored)."""
    if not normalizer:
        return None
    candidates = normalizer.get("normalizers", []) if normalizer.get("type") == "Sequence" else [normalizer]
    for candidate in candidates:
        if candidate.get("type") == "Precompiled" and candidate.get("precompiled_charsmap"):
            return candidate["precompiled_charsmap"]
    return None


def _token(config: dict, name: str, default: str) -> str:
    value = config.get(name) or default
    return value["content"] if isinstance(value, dict) else str(value)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot read {path}: {error}") from None
