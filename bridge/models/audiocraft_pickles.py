"""Read audiocraft's checkpoint pickles without running code from them.

An audiocraft release checkpoint (`state_dict.bin`, `compression_state_dict.bin`; see audiocraft's
`utils/export.py`) is a `torch.save`d dict: `best_state` (tensors), `xp.cfg` (the training config as
a YAML string), `version`, `exported`. It is loaded with `torch.load(weights_only=True)`: PyTorch's
restricted unpickler, which builds tensors, containers and numbers and refuses every other global.

Older or hand-made checkpoints may keep the config as objects (an OmegaConf `DictConfig`, say)
that the restricted unpickler refuses. Then the names of every global the pickle refers to are read
from its opcodes without unpickling (`torch.serialization.get_unsafe_globals_in_checkpoint`), and
each is allowed under that name as an inert stand-in class (`InertObject`): constructing, calling or
restoring one only records its arguments. Nothing the pickle names is imported or run, so the
config is lost (the converter then reads shapes from the weights) but the tensors are intact.
Modules PyTorch blocks outright (os, sys, ...) still fail, with one line naming them.
"""

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
import yaml

from bridge.errors import ModelError


class InertObject:
    """What a refused global becomes: records how the pickle wanted to build it, and does nothing."""

    pickled_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "InertObject":
        instance = super().__new__(cls)
        instance.args = args
        return instance

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> "InertObject":
        return type(self)(*args)

    def __repr__(self) -> str:
        return f"<inert {self.pickled_name}>"


def _stand_in(name: str) -> type:
    return type(f"Inert[{name}]", (InertObject,), {"pickled_name": name})


def load_checkpoint_pickle(path: Path) -> dict:
    """The checkpoint dict at `path`, loaded with the restricted unpickler (see the module doc)."""
    path = Path(path)
    try:
        package = _restricted_load(path)
    except pickle.UnpicklingError:
        package = _load_with_stand_ins(path)
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        raise ModelError(f"{path.name} is not a readable PyTorch checkpoint: {_first_line(error)}") from None
    if not isinstance(package, dict) or "best_state" not in package:
        raise ModelError(f"{path.name} is not an audiocraft checkpoint (no 'best_state')")
    return package


def _load_with_stand_ins(path: Path) -> Any:
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except (ValueError, RuntimeError, OSError) as error:  # the legacy format cannot be scanned: refuse it
        raise ModelError(f"{path.name} is not a checkpoint Segue can read safely: {_first_line(error)}") from None
    stand_ins = [(_stand_in(name), name) for name in names]
    try:
        with torch.serialization.safe_globals(stand_ins):
            return _restricted_load(path)
    except pickle.UnpicklingError as error:
        raise ModelError(f"{path.name} refers to code Segue will not load ({_first_line(error)})") from None


def _restricted_load(path: Path) -> Any:
    # Memory-mapped: the multi-GB tensors are read from the page cache as they are converted.
    # Pickles in PyTorch's legacy (non-zip) format cannot be mapped.
    mappable = zipfile.is_zipfile(path)
    return torch.load(path, map_location="cpu", weights_only=True, mmap=mappable)


def checkpoint_config(package: dict) -> dict:
    """The training config (`xp.cfg`) as plain data; {} when it is absent or was inert objects."""
    raw = package.get("xp.cfg")
    if isinstance(raw, str):
        try:
            config = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ModelError(f"the checkpoint's config is not valid YAML: {_first_line(error)}") from None
        return config if isinstance(config, dict) else {}
    return raw if isinstance(raw, dict) and _is_plain(raw) else {}


def config_value(config: dict, dotted: str, default: Any = None) -> Any:
    """`config['a']['b']` for 'a.b', following OmegaConf's `${other.key}` references (never evaluated)."""
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    for _ in range(8):  # a reference to a reference, but never a loop
        match = re.fullmatch(r"\$\{([\w.]+)\}", value) if isinstance(value, str) else None
        if match is None:
            return value
        value = config_value(config, match.group(1), default)
    return default


def model_state(package: dict) -> dict[str, torch.Tensor]:
    """`best_state` (nested under 'model' in some exports) as name -> tensor."""
    state = package["best_state"]
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ModelError("the checkpoint's best_state is not a dict of tensors")
    return dict(state)


def _is_plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_plain(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return all(_is_plain(item) for item in value)
    return value is None or isinstance(value, str | int | float | bool)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
