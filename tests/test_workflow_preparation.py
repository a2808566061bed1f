"""Which preparation serves which job (bridge/workflow/preparation.py): the bookkeeping on its own.

The worker behind it is tested with the real engine in tests/test_engine_prepared_prompt.py; here the
engine port only records, as a remote engine's port (whose `prepare` returns None) or a local one.
"""

import dataclasses

import numpy as np

from bridge.engine.request import GenerationRequest
from bridge.workflow.preparation import Preparer, same_prompt


def request(**overrides) -> GenerationRequest:
    audio = np.sin(np.arange(4800, dtype=np.float32) / 10)[:, None].repeat(2, 1)
    return GenerationRequest(**{"prompt": "strings, 120 bpm", "model": "tiny", "seconds": 1.0, "audio": audio,
                                "audio_sample_rate": 48000, **overrides})


class RecordingPort:
    def __init__(self, local: bool = True) -> None:
        self.local, self.prepared, self.cancelled = local, [], []

    def prepare(self, request: GenerationRequest) -> int | None:
        self.prepared.append(request)
        return len(self.prepared) if self.local else None

    def cancel(self, job_id: int) -> None:
        self.cancelled.append(job_id)


def test_the_same_prompt_is_judged_by_value_and_by_every_setting_the_rows_depend_on():
    first = request()
    assert same_prompt(first, dataclasses.replace(first, audio=first.audio.copy(), variations=3, seed=8))
    changed = first.audio.copy()
    changed[10, 0] += 1e-3
    assert not same_prompt(first, dataclasses.replace(first, audio=changed))
    for setting in ({"model": "tiny-stereo"}, {"quality": "exact"}, {"cfg": 1.0}, {"audio_sample_rate": 44100},
                    {"prompt_seconds": 0.5}):
        assert not same_prompt(first, dataclasses.replace(first, **setting)), setting
    codes = np.arange(40).reshape(4, 10)
    from_codes = request(audio=None, audio_sample_rate=None, prompt_codes=codes)
    assert same_prompt(from_codes, dataclasses.replace(from_codes, prompt_codes=codes.copy()))
    assert not same_prompt(from_codes, dataclasses.replace(from_codes, prompt_codes=codes + 1))
    assert not same_prompt(from_codes, first)


def test_a_preparation_is_sent_once_replaced_by_new_words_and_cancelled_by_a_job_it_does_not_serve():
    port = RecordingPort()
    preparer = Preparer(port)
    first = preparer.prepare(request())
    assert preparer.prepare(request(variations=2)) == first and len(port.prepared) == 1  # nothing new to do
    second = preparer.prepare(request(prompt="strings enter, 120 bpm"))
    assert port.cancelled == [first]
    preparer.before_submit(request(prompt="strings enter, 120 bpm", seed=3))  # the job it serves: kept
    assert port.cancelled == [first] and preparer.current.job_id == second
    preparer.before_submit(request(prompt="drums drop out, 120 bpm"))  # other words: it gives way
    assert port.cancelled == [first, second] and preparer.current is None
    preparer.before_submit(request())  # nothing current: nothing to cancel
    assert port.cancelled == [first, second]


def test_an_engine_that_cannot_prepare_is_left_alone():
    remote = RecordingPort(local=False)
    preparer = Preparer(remote)
    assert preparer.prepare(request()) is None and preparer.current is None
    preparer.before_submit(request(prompt="other words"))
    assert remote.cancelled == []
    assert Preparer(object()).prepare(request()) is None  # a port with no prepare at all


def test_a_preparation_is_ready_once_the_engine_says_so_and_only_for_the_job_it_serves():
    port = RecordingPort()
    preparer = Preparer(port)
    first = preparer.prepare(request())
    assert not preparer.ready_for(request())  # sent, not done
    assert not preparer.finished(first + 1, "prepared")  # another preparation's report
    assert not preparer.finished(first, "cancelled") and not preparer.ready_for(request())
    assert preparer.finished(first, "prepared")
    assert preparer.ready_for(request(seed=5)) and not preparer.ready_for(request(prompt="other words"))
    preparer.prepare(request(prompt="other words"))
    assert not preparer.ready_for(request()) and not preparer.ready_for(request(prompt="other words"))
