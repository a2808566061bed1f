"""Presets: named, reusable prompts with the settings that suit them.

Built-in presets ship inside the package (`bridge/presets_builtin/`, package data in the wheel,
found through importlib.resources); a producer's own presets live in
`config_dir()/presets`, never in the install. One preset per TOML file, the file name (without
`.toml`) is its id. Every field is checked on load, and a bad file is reported as a PresetError
naming the file and the field, so a typo in a hand-edited preset is easy to find.

    name = "Lo-fi hip-hop drums"            # required
    prompt = "dusty lo-fi hip hop drums..."  # required, what MusicGen is asked for
    description = "..."                      # optional, one line for the panel
    tags = ["drums", "hip-hop"]              # optional
    bars = 4                                 # optional, default 4
    signature = "4/4"                        # optional, default 4/4
    guidance = 3.0                           # optional, classifier-free guidance (request.cfg)
    temperature = 1.0                        # optional
    bpm = [70, 90]                           # optional, the tempo range the prompt suits
    mode = "sound"                           # optional: "music" (MusicGen, default) or "sound" (AudioGen)
"""

import json
import math
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from bridge.audio.io import write_text_atomic
from bridge.engine.request import MAX_PROMPT_CHARS
from bridge.errors import PresetError, SegueError
from bridge.musical_time import MAX_BPM, MIN_BPM, TimeSignature
from bridge.paths import config_dir

PRESET_SUFFIX = ".toml"
MAX_BARS = 64
MAX_NAME_CHARS = 80
DEFAULT_BARS = 4.0
DEFAULT_GUIDANCE = 3.0
DEFAULT_TEMPERATURE = 1.0
FIELDS = ("name", "prompt", "description", "tags", "bars", "signature", "guidance", "temperature", "bpm", "mode")
MUSIC, SOUND = "music", "sound"  # which kind of model a preset is written for (bridge.engine.catalog kind)
MODES = (MUSIC, SOUND)


@dataclass(frozen=True)
class Preset:
    name: str
    prompt: str
    description: str = ""
    tags: tuple[str, ...] = ()
    bars: float = DEFAULT_BARS
    signature: str = "4/4"
    guidance: float = DEFAULT_GUIDANCE
    temperature: float = DEFAULT_TEMPERATURE
    bpm_range: tuple[float, float] | None = None
    # Where it came from: the file stem is the id; user presets can be overwritten and deleted.
    id: str = ""
    is_user: bool = False
    path: Path | None = field(default=None, compare=False)
    mode: str = MUSIC

    def request_fields(self) -> dict:
        """Keyword arguments for GenerationRequest: `GenerationRequest(**p.request_fields(), bpm=...)`."""
        return {
            "prompt": self.prompt,
            "bars": self.bars,
            "signature": self.signature,
            "cfg": self.guidance,
            "temperature": self.temperature,
        }

    def suits_bpm(self, bpm: float) -> bool:
        """True when `bpm` lies in the suggested range (or no range is given)."""
        return self.bpm_range is None or self.bpm_range[0] <= bpm <= self.bpm_range[1]

    def to_toml(self) -> str:
        """The preset as a TOML document that `parse_preset` reads back unchanged."""
        lines = [f"name = {_toml_string(self.name)}", f"prompt = {_toml_string(self.prompt)}"]
        if self.description:
            lines.append(f"description = {_toml_string(self.description)}")
        lines.append("tags = [" + ", ".join(_toml_string(tag) for tag in self.tags) + "]")
        lines.append(f"bars = {self.bars:g}")
        lines.append(f"signature = {_toml_string(self.signature)}")
        lines.append(f"guidance = {self.guidance!r}")
        lines.append(f"temperature = {self.temperature!r}")
        if self.bpm_range is not None:
            lines.append(f"bpm = [{self.bpm_range[0]:g}, {self.bpm_range[1]:g}]")
        if self.mode != MUSIC:  # music presets stay as they were written before modes existed
            lines.append(f"mode = {_toml_string(self.mode)}")
        return "\n".join(lines) + "\n"


@dataclass
class PresetCatalogue:
    """Every preset that loaded, plus one PresetError per file that did not (shown, not fatal)."""

    presets: list[Preset]
    problems: list[PresetError]

    def get(self, preset_id: str) -> Preset:
        for preset in self.presets:
            if preset.id == preset_id:
                return preset
        known = ", ".join(preset.id for preset in self.presets)
        raise PresetError(f"no preset called {preset_id!r}; known presets: {known}")

    def with_tag(self, tag: str) -> list[Preset]:
        return [preset for preset in self.presets if tag.lower() in preset.tags]


def builtin_presets_dir() -> Path:
    """The presets shipped with Segue, wherever the package is installed (a wheel installs unzipped)."""
    return Path(str(resources.files("bridge") / "presets_builtin"))


def user_presets_dir() -> Path:
    path = config_dir() / "presets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_presets() -> PresetCatalogue:
    """Built-in presets, then the user's; a user preset with a built-in's id replaces it."""
    by_id: dict[str, Preset] = {}
    problems: list[PresetError] = []
    for folder, is_user in ((builtin_presets_dir(), False), (user_presets_dir(), True)):
        for path in sorted(folder.glob(f"*{PRESET_SUFFIX}")):
            try:
                preset = load_preset(path, is_user=is_user)
            except PresetError as error:
                problems.append(error)
                continue
            by_id[preset.id] = preset
    return PresetCatalogue(presets=sorted(by_id.values(), key=lambda p: p.name.lower()), problems=problems)


def load_preset(path: str | Path, is_user: bool = False) -> Preset:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PresetError(f"preset {path}: cannot read the file ({error})") from None
    return parse_preset(text, source=str(path), preset_id=path.stem, is_user=is_user, path=path)


def parse_preset(
    text: str, source: str = "<preset>", preset_id: str = "", is_user: bool = False, path: Path | None = None
) -> Preset:
    """Parse and check one preset document; PresetError names `source` and the field at fault."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PresetError(f"preset {source}: not valid TOML: {error}") from None
    check = _FieldChecker(source, data)
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise PresetError(f"preset {source}: unknown field {unknown[0]!r} (known fields: {', '.join(FIELDS)})")
    return Preset(
        name=check.text("name", max_chars=MAX_NAME_CHARS),
        prompt=check.text("prompt", max_chars=MAX_PROMPT_CHARS),
        description=check.text("description", max_chars=500, default=""),
        tags=check.tags("tags"),
        bars=check.number("bars", DEFAULT_BARS, above=0.0, at_most=MAX_BARS),
        signature=check.signature("signature"),
        guidance=check.number("guidance", DEFAULT_GUIDANCE, at_least=0.0, at_most=30.0),
        temperature=check.number("temperature", DEFAULT_TEMPERATURE, above=0.0, at_most=10.0),
        bpm_range=check.bpm_range("bpm"),
        id=preset_id,
        is_user=is_user,
        path=path,
        mode=check.choice("mode", MODES, MUSIC),
    )


def save_user_preset(preset: Preset, preset_id: str | None = None) -> Preset:
    """Write `preset` to the user's preset folder (atomically) and return it as loaded back.

    The id defaults to a slug of the name; saving under an existing user id overwrites that preset.
    """
    preset_id = preset_id or slugify(preset.name)
    text = preset.to_toml()
    parse_preset(text, source=f"{preset_id}{PRESET_SUFFIX}")  # never write a file that would not load
    path = write_text_atomic(user_presets_dir() / f"{preset_id}{PRESET_SUFFIX}", text)
    return load_preset(path, is_user=True)


def delete_user_preset(preset_id: str) -> None:
    path = user_presets_dir() / f"{preset_id}{PRESET_SUFFIX}"
    if not path.is_file():
        raise PresetError(f"no user preset called {preset_id!r} (built-in presets cannot be deleted)")
    path.unlink()


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not slug:
        raise PresetError(f"a preset name needs at least one letter or digit, got {name!r}")
    return slug


def _toml_string(text: str) -> str:
    # A JSON string is a TOML basic string, except that TOML also wants DEL escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


class _FieldChecker:
    """Reads one field at a time from a parsed document, raising PresetError naming file and field."""

    def __init__(self, source: str, data: dict) -> None:
        self.source = source
        self.data = data

    def fail(self, name: str, problem: str) -> PresetError:
        return PresetError(f"preset {self.source}: field {name!r} {problem}")

    def text(self, name: str, max_chars: int, default: str | None = None) -> str:
        if name not in self.data:
            if default is None:
                raise self.fail(name, "is missing")
            return default
        value = self.data[name]
        if not isinstance(value, str):
            raise self.fail(name, f"must be text in quotes, got {value!r}")
        value = value.strip()
        if default is None and not value:
            raise self.fail(name, "is empty")
        if len(value) > max_chars:
            raise self.fail(name, f"is longer than {max_chars} characters")
        return value

    def number(
        self,
        name: str,
        default: float,
        above: float | None = None,
        at_least: float | None = None,
        at_most: float | None = None,
    ) -> float:
        value = self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(name, f"must be a number, got {value!r}")
        if (above is not None and value <= above) or (at_least is not None and value < at_least) or (
            at_most is not None and value > at_most
        ):
            low = f"more than {above:g}" if above is not None else f"at least {at_least:g}"
            raise self.fail(name, f"must be {low} and at most {at_most:g}, got {value:g}")
        return float(value)

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.data.get(name, default)
        if value not in choices:
            raise self.fail(name, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value

    def tags(self, name: str) -> tuple[str, ...]:
        value = self.data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(tag, str) and tag.strip() for tag in value):
            raise self.fail(name, f'must be a list of words in quotes, like ["drums", "lo-fi"], got {value!r}')
        return tuple(_unique(tag.strip().lower() for tag in value))

    def signature(self, name: str) -> str:
        value = self.data.get(name, "4/4")
        if not isinstance(value, str):
            raise self.fail(name, f'must be text like "4/4" or "6/8", got {value!r}')
        try:
            return str(TimeSignature.parse(value))
        except SegueError as error:
            raise self.fail(name, f"is not a time signature: {error}") from None

    def bpm_range(self, name: str) -> tuple[float, float] | None:
        if name not in self.data:
            return None
        value = self.data[name]
        shape_ok = isinstance(value, list) and len(value) == 2
        if not shape_ok or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            raise self.fail(name, f"must be a range of two tempos like [80, 100], got {value!r}")
        low, high = float(value[0]), float(value[1])
        if not MIN_BPM <= low <= high <= MAX_BPM:
            raise self.fail(name, f"must go from low to high within {MIN_BPM:g}-{MAX_BPM:g} BPM, got {value!r}")
        return (low, high)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
