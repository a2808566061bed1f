"""Engine families: which code runs a model, chosen from its id or its folder.

Each family is a package under `bridge/engine/` (`musicgen`, and more as they are added) that turns
a model id into a *generator*: an object with

- `loaded.model_id`, `loaded.sample_rate`, `loaded.device`, `loaded.dtype`, `loaded.is_random`;
- `prepare(quality)`: heavy one-off work (quantising, compiling) done at load, not at the first job;
- `generate(request, on_progress, on_chunk, should_cancel) -> GenerationResult`.

The worker, the CLI, `segue serve`, the panel and Continue my track only ever see that interface and
the shared request, result and event types (`bridge.engine.request`, `bridge.engine.events`).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.errors import InvalidParameterError


@dataclass(frozen=True)
class Family:
    name: str
    # load(model_id, device) -> generator, imported lazily so torch and friends load in the worker only
    load: Callable[[str, str], Any]
    # claims(model_id) -> True when this family runs the model
    claims: Callable[[str], bool]
    # check(request) raises InvalidParameterError for what the family cannot do (before any work starts)
    check: Callable[[Any], None] | None = None
    # missing(model_id) -> why this computer cannot load the model yet (not downloaded), or None; checked
    # without torch, so a command refuses at once instead of after its engine has started
    missing: Callable[[str], str | None] | None = None


def _load_musicgen(model_id: str, device: str):
    from bridge.engine.musicgen.generator import MusicGenerator
    from bridge.engine.musicgen.loading import load_model

    return MusicGenerator(load_model(model_id, device))


def _check_musicgen(request) -> None:
    if request.init_audio_path is not None:
        raise InvalidParameterError(
            f"{request.model} cannot make variations of a clip (audio to audio); choose a Stable Audio 3 model"
        )


FAMILIES: list[Family] = [
    # MusicGen is the fallback: any id no other family claims is tried as a MusicGen checkpoint.
    Family("musicgen", _load_musicgen, lambda model_id: True, _check_musicgen),
]


def family_for(model_id: str) -> Family:
    """The first family (most specific first; MusicGen last) that claims `model_id`."""
    return next(family for family in FAMILIES if family.claims(model_id))


def register(family: Family) -> None:
    """Add a family ahead of the MusicGen fallback."""
    FAMILIES.insert(len(FAMILIES) - 1, family)


def load_generator(model_id: str, device: str):
    return family_for(model_id).load(model_id, device)


def check_request(request) -> None:
    """Raise InvalidParameterError when the family of `request.model` cannot do what it asks."""
    family = family_for(request.model)
    if family.check is not None:
        family.check(request)


def missing_checkpoint(model_id: str) -> str | None:
    """Why `model_id` cannot load on this computer yet (a model that must be downloaded first), or None."""
    family = family_for(model_id)
    return family.missing(model_id) if family.missing is not None else None


def _register_stable_audio() -> None:
    from bridge.engine.stable_audio import family

    register(Family("stable-audio", family.load, family.claims, family.check, family.missing_checkpoint))


_register_stable_audio()
