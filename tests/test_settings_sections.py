"""Settings the panel writes: the DAW to follow, folders for clips and models, and the panel's own memory."""

import json

import pytest

from bridge import paths
from bridge.daw import ableton, reaper
from bridge.daw.connect import open_link
from bridge.daw.link import NoDawLink
from bridge.engine.musicgen.loading import random_model_dir
from bridge.errors import InvalidParameterError, SettingsError
from bridge.models.store import store_dir
from bridge.settings import DawSettings, load_settings, settings_path, update_settings


def test_daw_folders_and_panel_choices_survive_a_restart(tmp_path):
    def choose(settings) -> None:
        settings.daw.daw = "reaper"
        settings.daw.reaper_port = 8100
        settings.folders.output_dir = str(tmp_path / "clips")
        settings.panel.prompt_history = ["lo-fi drums", "warm pads"]
        settings.panel.variations = 3

    update_settings(choose)
    again = load_settings()
    assert (again.daw.daw, again.daw.reaper_port, again.daw.reaper_listen_port) == ("reaper", 8100, 9000)
    assert again.folders.output_dir == str(tmp_path / "clips") and again.folders.models_dir is None
    assert again.panel.prompt_history == ["lo-fi drums", "warm pads"] and again.panel.variations == 3


def test_a_history_that_is_not_a_list_of_text_is_named():
    settings_path().write_text(json.dumps({"version": 1, "panel": {"prompt_history": ["ok", 3]}}))
    with pytest.raises(SettingsError, match="panel.prompt_history"):
        load_settings()


def test_the_chosen_output_and_model_folders_are_used_unless_the_environment_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv("SEGUE_OUTPUT_DIR")
    monkeypatch.delenv("SEGUE_MODELS_DIR", raising=False)

    def choose(settings) -> None:
        settings.folders.output_dir = str(tmp_path / "my clips")
        settings.folders.models_dir = str(tmp_path / "big disk")

    update_settings(choose)
    assert paths.output_dir() == tmp_path / "my clips" and paths.output_dir().is_dir()
    assert store_dir() == tmp_path / "big disk" / "hub"
    assert random_model_dir("tiny") == tmp_path / "big disk" / "segue-tiny"

    monkeypatch.setenv("SEGUE_OUTPUT_DIR", str(tmp_path / "from env"))
    assert paths.output_dir() == tmp_path / "from env"


def test_a_broken_settings_file_leaves_the_default_folders():
    settings_path().write_text("{ not json")
    assert paths.models_dir() == paths.cache_dir() / "models"


def test_the_link_the_settings_name_is_opened_on_its_ports(monkeypatch):
    assert DawSettings().ableton_port == ableton.LIVE_PORT and ableton.reply_port() == ableton.REPLY_PORT
    assert DawSettings().reaper_port == reaper.REAPER_PORT and DawSettings().reaper_listen_port == reaper.FEEDBACK_PORT
    monkeypatch.setenv(ableton.TEST_REPLY_PORT_VARIABLE, "0")  # AbletonOSC's 11001 may be taken by another run
    live = open_link(DawSettings(daw="ableton", ableton_port=11500))
    try:
        assert isinstance(live, ableton.AbletonLink) and live.daw_address == ("127.0.0.1", 11500)
        assert live.listen_port > 0
    finally:
        live.close()
    daw = open_link(DawSettings(daw="reaper", reaper_port=8100, reaper_listen_port=0))
    try:
        assert isinstance(daw, reaper.ReaperLink) and daw.daw_address == ("127.0.0.1", 8100)
    finally:
        daw.close()
    assert isinstance(open_link(DawSettings()), NoDawLink)
    with pytest.raises(InvalidParameterError, match="bitwig"):
        open_link(DawSettings(daw="bitwig"))
