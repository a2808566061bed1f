"""A clip played while it is generated, slower than real time, through the real JACK path: no gaps."""

import time

import numpy as np
import pytest

from bridge.audio.playback import Player
from bridge.engine.musicgen.generator import MusicGenerator
from bridge.engine.request import GenerationRequest
from bridge.engine.schedule import start_threshold_seconds, stream_lag_seconds

pytestmark = pytest.mark.jack

STEPS_PER_SECOND = 30.0  # 0.6 x real time at 50 steps per second of audio


@pytest.fixture(scope="module")
def player(jack_server):
    with Player(jack_server.loopback_device) as player:
        time.sleep(0.5)  # the first callbacks after opening are slow
        yield player


def stream_generation(player: Player, generator: MusicGenerator, seconds: float, use_schedule: bool) -> dict:
    """Generate `seconds` on the tiny model held to STEPS_PER_SECOND, feeding chunks to the player as they come."""
    loaded = generator.loaded
    started = time.monotonic()
    state = {"steps": 0, "total": 0, "begun": False, "started_before_end": False}

    def on_progress(done, total, eta):
        state["steps"], state["total"] = done, total
        lag = started + done / STEPS_PER_SECOND - time.monotonic()
        if lag > 0:
            time.sleep(lag)  # the tiny model is far faster than real time; a real one on a laptop is not
        if done < total:
            state["started_before_end"] = state["started_before_end"] or player.clip_started

    def on_chunk(start, audio):
        if not state["begun"]:
            speed = state["steps"] / (time.monotonic() - started)
            threshold = 0.0
            if use_schedule:
                threshold = start_threshold_seconds(
                    audio.shape[1] / loaded.sample_rate, state["total"] - state["steps"], speed,
                    loaded.frame_rate, stream_lag_seconds(loaded.frame_rate),
                )
            player.begin(loaded.sample_rate, start_after_seconds=threshold)
            state["begun"] = True
        player.feed(audio[0])

    result = generator.generate(
        GenerationRequest(prompt="noise", model="tiny", seconds=seconds, seed=5), on_progress, on_chunk
    )
    state["speed"] = state["steps"] / (time.monotonic() - started)
    player.finish()
    assert player.wait(timeout_seconds=20)
    state["audio"] = result.takes[0].audio
    return state


def test_playback_while_generating_slower_than_real_time_has_no_underruns(player, tiny_model):
    generator = MusicGenerator(tiny_model)
    device_underflows = player.device_underflows

    scheduled = stream_generation(player, generator, seconds=4.0, use_schedule=True)

    assert scheduled["speed"] < tiny_model.frame_rate, "generation must be slower than real time"
    assert scheduled["started_before_end"], "playback must start while the clip is still being generated"
    assert player.underruns == 0 and player.device_underflows == device_underflows
    assert np.abs(scheduled["audio"]).max() > 0


def test_the_same_stream_started_with_the_first_chunk_runs_dry(player, tiny_model):
    """Without the schedule the same slow stream does underrun: the test above can fail."""
    stream_generation(player, MusicGenerator(tiny_model), seconds=2.0, use_schedule=False)
    assert player.underruns > 0
