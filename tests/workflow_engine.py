"""One engine process (the tiny model) shared by the workflow tests: starting torch once saves seconds."""

import pytest

from bridge.engine.worker import EngineClient


class SharedEngine:
    """EngineClient's submit and cancel; its events go to whichever listeners the running test added."""

    def __init__(self) -> None:
        self.listeners: list = []
        self.client = EngineClient(device="cpu", on_event=self._deliver)

    def _deliver(self, event) -> None:
        for listener in list(self.listeners):
            listener(event)

    def submit(self, request) -> int:
        return self.client.submit(request)

    def cancel(self, job_id: int) -> None:
        self.client.cancel(job_id)


@pytest.fixture(scope="session")
def shared_engine(segue_cache_dir):
    engine = SharedEngine()
    yield engine
    engine.client.close()


@pytest.fixture
def workflow_engine(shared_engine):
    """The shared engine with no listeners left over from an earlier test."""
    shared_engine.listeners.clear()
    yield shared_engine
    shared_engine.listeners.clear()
