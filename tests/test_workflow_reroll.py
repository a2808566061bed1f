"""A take whose first beat is silent is flagged and re-rolled with a new seed.

The tiny model never falls silent on demand, so here a scripted engine stands in for the engine
process: it answers each request the way EngineClient does (events with the job id, a
GenerationResult at 32 kHz), with takes whose first beat is silent where the script says so.
"""

import itertools
import threading

import numpy as np

from bridge.engine.events import GenerationResult, JobFinished, Take
from bridge.library import ClipLibrary
from bridge.musical_time import TimeSignature, bars_to_samples
from bridge.workflow import ContinueMyTrack, ContinueOptions, Source

RATE = 32000
BPM, SIGNATURE = 120.0, TimeSignature(4, 4)


class ScriptedEngine:
    """Answers request N with takes whose first beat is silent for the indices in script[N]."""

    def __init__(self, script: list[set[int]]) -> None:
        self.script = script
        self.requests = []
        self.listener = None
        self._ids = itertools.count(1)

    def submit(self, request) -> int:
        job_id = next(self._ids)
        silent = self.script[len(self.requests)]
        self.requests.append(request)
        frames = round(request.duration_seconds() * RATE)
        takes = []
        for index in range(request.variations):
            seed = 1000 * job_id + index
            audio = np.random.default_rng(seed).normal(0, 0.1, (frames, 1)).astype(np.float32)
            if index in silent:
                audio[: RATE // 2] = 0.0  # one beat at 120 BPM
            takes.append(Take(index, seed, audio, codes=np.zeros((4, frames // 640 + 1), np.int64)))
        result = GenerationResult(request, RATE, takes, "scripted", "cpu")
        threading.Thread(target=lambda: self.listener(JobFinished(job_id, result))).start()
        return job_id

    def cancel(self, job_id: int) -> None:
        pass


def source() -> Source:
    frames = bars_to_samples(2, BPM, SIGNATURE, 48000)
    audio = np.random.default_rng(0).normal(0, 0.1, (frames, 2)).astype(np.float32)
    return Source(audio, 48000, BPM, SIGNATURE, 2, "file")


def run(script, **options):
    engine = ScriptedEngine(script)
    with ClipLibrary() as library:
        session = ContinueMyTrack(engine, library=library)
        engine.listener = session.on_engine_event
        result = session.continue_source(source(), ContinueOptions(bars=1, takes=3, model="scripted", **options))
        session.close()
    return engine, result


def test_a_silent_first_beat_is_re_rolled_with_a_new_seed():
    engine, result = run([{1}, set()])

    assert [request.variations for request in engine.requests] == [3, 1]
    assert engine.requests[1].seed is None, "a new random seed, not the same one again"
    kept, rerolled, also_kept = result.takes
    assert (kept.seed, also_kept.seed) == (1000, 1002)
    assert rerolled.seed == 2000 and rerolled.index == 1 and rerolled.rerolls == 1
    assert rerolled.flags == ["re-rolled 1x"] and not rerolled.report.first_beat_silent
    assert rerolled.path.is_file()


def test_a_take_still_silent_after_the_re_rolls_keeps_its_flag():
    engine, result = run([{0}, {0}, {0}], max_rerolls=2)
    assert len(engine.requests) == 3
    assert result.takes[0].flags == ["silent first beat", "re-rolled 2x"]


def test_re_rolling_can_be_turned_off():
    engine, result = run([{2}], reroll_silent_start=False)
    assert len(engine.requests) == 1
    assert result.takes[2].flags == ["silent first beat"]
