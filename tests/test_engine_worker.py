"""The engine process behind the job API: events, cancel, failures, and a worker that dies."""

import threading

import pytest

from bridge.engine.events import (
    AudioChunk,
    EngineReady,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobStarted,
    ModelLoading,
    Progress,
)
from bridge.engine.request import GenerationRequest
from bridge.engine.worker import EngineClient
from bridge.errors import CancelledError, InvalidParameterError, SegueError


class EventLog:
    def __init__(self) -> None:
        self.events = []
        self.condition = threading.Condition()

    def __call__(self, event) -> None:
        with self.condition:
            self.events.append(event)
            self.condition.notify_all()

    def wait_for(self, kind, job_id, timeout=60.0):
        def found():
            return next((e for e in self.events if isinstance(e, kind) and getattr(e, "job_id", None) == job_id), None)

        with self.condition:
            assert self.condition.wait_for(found, timeout), f"no {kind.__name__} for job {job_id}"
            return found()

    def for_job(self, job_id):
        return [e for e in self.events if getattr(e, "job_id", None) == job_id]


@pytest.fixture(scope="module")
def engine():
    log = EventLog()
    client = EngineClient(device="cpu", on_event=log)
    client.log = log
    yield client
    client.close()


def tiny(**overrides) -> GenerationRequest:
    return GenerationRequest(**{"prompt": "techno loop", "model": "tiny", "seconds": 1.0, "seed": 1, **overrides})


def test_a_job_reports_start_loading_progress_chunks_then_its_result(engine):
    job = engine.submit(tiny(variations=2, seconds=2.0))
    result = engine.wait(job, timeout=120)
    assert [take.audio.shape for take in result.takes] == [(64000, 1), (64000, 1)]
    kinds = [type(e) for e in engine.log.for_job(job)]
    assert kinds[0] is JobStarted and kinds[-1] is JobFinished
    assert ModelLoading in kinds and Progress in kinds and AudioChunk in kinds
    assert any(isinstance(e, EngineReady) and e.model_id == "tiny" for e in engine.log.events)
    progress = [e for e in engine.log.for_job(job) if isinstance(e, Progress)]
    assert progress[-1].steps_done == progress[-1].steps_total and progress[-1].fraction == 1.0


def test_cancel_a_running_job(engine):
    job = engine.submit(tiny(seconds=120.0))
    engine.log.wait_for(Progress, job)
    engine.cancel(job)
    with pytest.raises(CancelledError):
        engine.wait(job, timeout=60)
    assert isinstance(engine.log.for_job(job)[-1], JobCancelled)


def test_cancel_a_queued_job_before_it_starts(engine):
    running = engine.submit(tiny(seconds=60.0))
    queued = engine.submit(tiny())
    engine.cancel(queued)
    engine.cancel(running)
    for job in (running, queued):
        with pytest.raises(CancelledError):
            engine.wait(job, timeout=60)
    assert not any(isinstance(e, JobStarted) for e in engine.log.for_job(queued))


def test_a_failed_job_reports_why_and_the_engine_goes_on(engine, tmp_path):
    missing = tmp_path / "gone.wav"
    job = engine.submit(tiny(audio_path=str(missing)))
    with pytest.raises(SegueError, match="no audio file"):
        engine.wait(job, timeout=60)
    assert isinstance(engine.log.for_job(job)[-1], JobFailed)
    assert engine.wait(engine.submit(tiny()), timeout=60).takes


def test_impossible_requests_are_refused_at_submit(engine):
    with pytest.raises(InvalidParameterError):
        engine.submit(tiny(seconds=-1.0))


def test_a_dead_worker_fails_its_job_clearly_and_is_restarted():
    log = EventLog()
    with EngineClient(device="cpu", on_event=log) as client:
        job = client.submit(tiny(seconds=120.0))
        log.wait_for(Progress, job)
        client._process.kill()
        with pytest.raises(SegueError, match="engine process stopped unexpectedly"):
            client.wait(job, timeout=30)
        assert client.wait(client.submit(tiny()), timeout=120).takes
