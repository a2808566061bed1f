"""A clip played while it is generated, slower than real time, through the real JACK path: no gaps."""

import time

import numpy as np
import pytest

from bridge.audio.playback import Player
from bridge.engine.musicgen.generator import MusicGenerator
from bridge.engine.request import GenerationRequest
from bridge.engine.schedule import start_threshold_seconds, stream_lag_seconds

pytestmark = pytest.mark.jack

# 0.8 x real time at 50 steps per second of audio. At 0.8 the schedule starts a 4 s clip at about step
# 125 of 200; at 0.6 it started at step 170-185, so a first speed estimate 30% low (a busy machine)
# pushed the start to the end of the clip.
STEPS_PER_SECOND = 40.0


@pytest.fixture(scope="module")
def player(jack_server):
    with Player(jack_server.loopback_device) as player:
        time.sleep(0.5)  # the first callbacks after opening are slow
        yield player


@pytest.fixture(scope="module")
def generator(tiny_model):
    """Ready before any clip plays, as the engine's model is before a job streams: choosing and building
    the fast decoder's kernel holds the GIL for stretches longer than a JACK period (one xrun per test,
    at any load), and the player's callback needs the GIL. The engine does this in its own process."""
    generator = MusicGenerator(tiny_model)
    generator.prepare()
    return generator


def stream_generation(player: Player, generator: MusicGenerator, seconds: float, use_schedule: bool) -> dict:
    """Generate `seconds` on the tiny model held to STEPS_PER_SECOND, feeding chunks to the player as they come.

    Steps are paced from the first one, and the speed is the one the generator's ETA gives (as the
    workflow's audition reads it): the model's load and text encoding before the first step do not count.
    """
    loaded = generator.loaded
    state = {"steps": 0, "total": 0, "eta": 0.0, "first_step": 0.0, "begun": False, "started_before_end": False}

    def on_progress(done, total, eta):
        state["steps"], state["total"], state["eta"] = done, total, eta
        state["first_step"] = state["first_step"] or time.monotonic()
        lag = state["first_step"] + done / STEPS_PER_SECOND - time.monotonic()
        if lag > 0:
            time.sleep(lag)  # the tiny model is far faster than real time; a real one on a laptop is not
        if done < total:
            state["started_before_end"] = state["started_before_end"] or player.clip_started

    def on_chunk(start, audio):
        if not state["begun"]:
            speed = (state["total"] - state["steps"]) / state["eta"]
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
    state["speed"] = state["steps"] / (time.monotonic() - state["first_step"] + 1 / STEPS_PER_SECOND)
    player.finish()
    assert player.wait(timeout_seconds=20)
    state["audio"] = result.takes[0].audio
    return state


def test_playback_while_generating_slower_than_real_time_has_no_underruns(player, generator, tiny_model):
    """The schedule keeps the player's buffer from running dry (player.underruns).

    Not asserted here: the host's xruns (player.device_underflows). The player's callback runs on
    JACK's real-time thread but needs the GIL, and this test generates in its own process (the
    engine does so in another): on a starved machine (8 busy processes per core) a preempted
    thread holding the GIL made the callback miss 35 periods, with the buffer full. Audio staying
    whole while the engine generates in its process is tests/test_audio_jack.py's.
    """
    scheduled = stream_generation(player, generator, seconds=4.0, use_schedule=True)

    assert scheduled["speed"] < tiny_model.frame_rate, "generation must be slower than real time"
    assert scheduled["started_before_end"], "playback must start while the clip is still being generated"
    assert player.underruns == 0
    assert np.abs(scheduled["audio"]).max() > 0


def test_the_same_stream_started_with_the_first_chunk_runs_dry(player, generator):
    """Without the schedule the same slow stream does underrun: the test above can fail."""
    stream_generation(player, generator, seconds=2.0, use_schedule=False)
    assert player.underruns > 0
