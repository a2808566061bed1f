"""Presets say whether they are for music (MusicGen) or sound (AudioGen); old preset files stay valid."""

import pytest

from bridge.errors import PresetError
from bridge.presets import MUSIC, SOUND, load_presets, parse_preset

GOOD = 'name = "Test"\nprompt = "warm pads"\n'


def test_shipped_sound_presets_cover_sound_design():
    sound = {preset.id for preset in load_presets().presets if preset.mode == SOUND}
    assert sound == {"sound-riser", "sound-impact", "sound-whoosh", "sound-foley", "sound-ambience"}


def test_mode_defaults_to_music_and_round_trips():
    assert parse_preset(GOOD).mode == MUSIC
    assert "mode" not in parse_preset(GOOD).to_toml().replace("modern", "")  # files as they were before modes
    sound = parse_preset(GOOD + 'mode = "sound"\n')
    assert sound.mode == SOUND and parse_preset(sound.to_toml()) == sound


def test_a_bad_mode_names_the_file_and_field():
    with pytest.raises(PresetError) as caught:
        parse_preset(GOOD + 'mode = "noise"\n', source="mine.toml")
    message = str(caught.value)
    assert "mine.toml" in message and "'mode'" in message and "'sound'" in message and "\n" not in message
