"""A model's second load comes with an ETA: how long its first load took on this machine."""

import pytest

from bridge.engine.events import ModelLoading
from bridge.engine.load_times import FILE_NAME, expected_load_seconds, record_load_seconds
from bridge.engine.request import GenerationRequest
from bridge.engine.worker import EngineClient
from bridge.paths import cache_dir


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """A cache in which no model has been loaded yet (the session's shared cache has load times)."""
    monkeypatch.setenv("SEGUE_CACHE_DIR", str(tmp_path / "fresh-cache"))


def test_load_times_are_remembered_per_model_and_device(fresh_cache):
    assert expected_load_seconds("tiny", "cpu") is None
    record_load_seconds("tiny", "cpu", 1.25)
    assert expected_load_seconds("tiny", "cpu") == 1.25
    assert expected_load_seconds("tiny", "cuda") is None


def test_a_damaged_record_only_means_no_eta(fresh_cache):
    (cache_dir() / FILE_NAME).write_text("{ not json")
    assert expected_load_seconds("tiny", "cpu") is None
    record_load_seconds("tiny", "cpu", 2.0)
    assert expected_load_seconds("tiny", "cpu") == 2.0


def test_the_engine_announces_a_reload_with_the_last_load_time(fresh_cache):
    events = []
    with EngineClient(device="cpu", on_event=events.append) as engine:
        request = GenerationRequest(prompt="x", model="tiny", seconds=0.2, seed=1)
        engine.wait(engine.submit(request), timeout=120)
        engine.wait(engine.submit(GenerationRequest(prompt="x", model="tiny-stereo", seconds=0.2)), timeout=120)
        engine.wait(engine.submit(request), timeout=120)  # back to tiny: loaded again
    loads = [event for event in events if isinstance(event, ModelLoading)]
    assert [event.model_id for event in loads] == ["tiny", "tiny-stereo", "tiny"]
    assert loads[0].expected_seconds is None
    assert loads[2].expected_seconds is not None and loads[2].expected_seconds > 0
