"""The settings file: remembered choices survive restarts, old files upgrade, bad files are named."""

import json

import pytest

from bridge import settings as settings_module
from bridge.errors import SettingsError
from bridge.settings import load_settings, save_settings, settings_path, update_settings


def test_missing_file_gives_defaults_and_saving_round_trips():
    settings = load_settings()
    assert settings.audio.input_device is None and settings.audio.round_trip_frames == {}

    settings.audio.input_device = "BlackHole 2ch, Core Audio"
    settings.audio.round_trip_frames["a -> b @ 48000 Hz"] = 512
    path = save_settings(settings)

    assert path == settings_path() and path.parent.is_dir()
    assert json.loads(path.read_text())["version"] == settings_module.SETTINGS_VERSION
    again = load_settings()
    assert again.audio.input_device == "BlackHole 2ch, Core Audio"
    assert again.audio.round_trip_frames == {"a -> b @ 48000 Hz": 512}


def test_keys_this_build_does_not_know_survive_a_save():
    settings_path().write_text(json.dumps({
        "version": 1,
        "audio": {"input_device": "x", "future_option": [1, 2]},
        "gui": {"theme": "dark"},
    }))
    update_settings(lambda s: setattr(s.audio, "output_device", "y"))
    saved = json.loads(settings_path().read_text())
    assert saved["gui"] == {"theme": "dark"}
    assert saved["audio"]["future_option"] == [1, 2]
    assert (saved["audio"]["input_device"], saved["audio"]["output_device"]) == ("x", "y")


def test_an_older_file_is_upgraded_step_by_step(monkeypatch):
    monkeypatch.setattr(settings_module, "SETTINGS_VERSION", 2)
    monkeypatch.setitem(settings_module.UPGRADES, 0, lambda raw: {**raw, "audio": {"input_device": raw["input"]}})
    monkeypatch.setitem(settings_module.UPGRADES, 1, lambda raw: {**raw, "seen_by_step_two": True})
    settings_path().write_text(json.dumps({"input": "old name"}))

    settings = load_settings()

    assert settings.audio.input_device == "old name"
    assert settings.raw["seen_by_step_two"] and settings.raw["version"] == 2


def test_a_newer_file_keeps_its_version():
    settings_path().write_text(json.dumps({"version": 99, "audio": {}}))
    save_settings(load_settings())
    assert json.loads(settings_path().read_text())["version"] == 99


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "cannot read settings file .*settings.json"),
        ("[1, 2]", "is not a Segue settings object"),
        ('{"audio": []}', "'audio' must be an object"),
        ('{"audio": {"input_device": 3}}', r"'audio.input_device' has the wrong kind of value 3"),
        ('{"audio": {"round_trip_frames": {"k": "256"}}}', "'audio.round_trip_frames'"),
    ],
)
def test_a_broken_file_is_reported_with_its_name_and_key(content, message):
    settings_path().write_text(content)
    with pytest.raises(SettingsError, match=message):
        load_settings()
