"""Presets: the shipped set is complete and valid, users save their own, bad files are named."""

import pytest

from bridge.engine.request import GenerationRequest
from bridge.errors import PresetError
from bridge.paths import config_dir
from bridge.presets import (
    Preset,
    builtin_presets_dir,
    delete_user_preset,
    load_preset,
    load_presets,
    parse_preset,
    save_user_preset,
    user_presets_dir,
)

GOOD = 'name = "Test"\nprompt = "warm pads"\n'


def test_shipped_presets_all_load_and_make_valid_requests():
    catalogue = load_presets()
    assert catalogue.problems == []
    assert len(catalogue.presets) >= 16
    assert len(catalogue.presets) == len(list(builtin_presets_dir().glob("*.toml")))
    for preset in catalogue.presets:
        assert not preset.is_user
        assert len(preset.prompt.split()) >= 15, f"{preset.id}: prompt too thin for MusicGen"
        assert preset.tags and preset.description and preset.bpm_range
        low, high = preset.bpm_range
        request = GenerationRequest(**preset.request_fields(), bpm=(low + high) / 2, model="tiny")
        request.validate()
        assert request.cfg == preset.guidance and request.bars == preset.bars


def test_shipped_presets_cover_the_common_needs():
    ids = {preset.id for preset in load_presets().presets}
    for wanted in ("lofi-hip-hop-drums", "deep-house-groove", "ambient-pad-bed", "drum-and-bass-break",
                   "trap-808-pattern", "orchestral-swell", "funk-bass-line", "synthwave-arp",
                   "acoustic-guitar-strum", "jazz-piano-trio", "techno-loop", "cinematic-percussion"):
        assert wanted in ids


def test_defaults_fill_optional_fields():
    preset = parse_preset(GOOD)
    assert (preset.bars, preset.signature, preset.guidance, preset.temperature) == (4.0, "4/4", 3.0, 1.0)
    assert preset.tags == () and preset.bpm_range is None and preset.suits_bpm(200)


def test_user_saves_a_preset_to_the_config_folder_and_it_round_trips():
    original = Preset(
        name='Dusty "keys" \\ tape',
        prompt="rhodes chords,\nwarm tape\t hiss, café vibe \x7f",
        description="mine",
        tags=("keys", "lo-fi"),
        bars=2.5,
        signature="7/8",
        guidance=4.25,
        temperature=0.8,
        bpm_range=(80.0, 92.5),
    )
    saved = save_user_preset(original)
    assert saved.path.parent == user_presets_dir()
    assert saved.path.is_relative_to(config_dir())
    assert saved.id == "dusty-keys-tape" and saved.is_user
    assert saved.prompt == original.prompt.strip() and saved.name == original.name
    assert (saved.tags, saved.bars, saved.signature, saved.guidance, saved.temperature, saved.bpm_range) == (
        original.tags, original.bars, original.signature, original.guidance, original.temperature,
        original.bpm_range)
    assert load_presets().get("dusty-keys-tape") == saved
    assert not list(builtin_presets_dir().glob("dusty-keys-tape*"))


def test_user_preset_with_a_builtin_id_overrides_it_and_delete_restores_it():
    builtin = load_presets().get("techno-loop")
    save_user_preset(Preset(name="My techno", prompt="harder techno"), preset_id="techno-loop")
    assert load_presets().get("techno-loop").prompt == "harder techno"
    delete_user_preset("techno-loop")
    assert load_presets().get("techno-loop") == builtin


def test_builtin_presets_cannot_be_deleted():
    with pytest.raises(PresetError, match="built-in"):
        delete_user_preset("ambient-pad-bed")


def test_a_bad_user_file_is_reported_but_does_not_hide_the_others():
    (user_presets_dir() / "broken.toml").write_text('name = "Broken"\nprompt = "x"\nbars = "four"\n')
    catalogue = load_presets()
    assert len(catalogue.presets) >= 16
    assert len(catalogue.problems) == 1
    message = str(catalogue.problems[0])
    assert "broken.toml" in message and "'bars'" in message and "four" in message


@pytest.mark.parametrize(
    ("extra", "field", "hint"),
    [
        ("bars = 0", "bars", "more than 0"),
        ("bars = 65", "bars", "at most 64"),
        ("temperature = 0", "temperature", "more than 0"),
        ("guidance = -1", "guidance", "at least 0"),
        ("guidance = true", "guidance", "must be a number"),
        ("tags = \"drums\"", "tags", "list"),
        ("tags = [\"\"]", "tags", "list"),
        ("signature = \"4/5\"", "signature", "denominator"),
        ("bpm = [120, 90]", "bpm", "low to high"),
        ("bpm = [90]", "bpm", "range of two"),
        ("bpm = [10, 90]", "bpm", "20-999"),
        ("temprature = 1.0", "temprature", "unknown field"),
    ],
)
def test_invalid_fields_are_named_with_the_file(extra, field, hint):
    with pytest.raises(PresetError) as caught:
        parse_preset(GOOD + extra + "\n", source="mine.toml")
    message = str(caught.value)
    assert "mine.toml" in message and repr(field) in message and hint in message
    assert "\n" not in message


@pytest.mark.parametrize(("text", "field"), [('prompt = "x"\n', "name"), ('name = "x"\nprompt = " "\n', "prompt")])
def test_required_fields(text, field):
    with pytest.raises(PresetError, match=f"'{field}' is (missing|empty)"):
        parse_preset(text, source="mine.toml")


def test_toml_syntax_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text('name = "x"\nprompt = "unterminated\n')
    with pytest.raises(PresetError, match=r"typo\.toml: not valid TOML.*line 2"):
        load_preset(path)


def test_unnameable_preset_cannot_be_saved():
    with pytest.raises(PresetError, match="letter or digit"):
        save_user_preset(Preset(name="!!!", prompt="x"))
