"""Pick the engine a job runs on: this computer's (EngineClient) or a remote one (RemoteEngineClient).

Both have the same job API (submit, on_event, cancel, wait, close). The remote client loads httpx
only when used; neither loads Ray.
"""

from collections.abc import Callable

from bridge.engine.events import EngineEvent
from bridge.settings import Settings

LOCAL = "local"


def open_engine(
    device: str = "auto",
    on_event: Callable[[EngineEvent], None] | None = None,
    remote_url: str | None = None,
    token: str | None = None,
):
    """A started engine client: remote when `remote_url` is given, else the local worker process."""
    if remote_url:
        from bridge.engine.remote.client import RemoteEngineClient

        return RemoteEngineClient(remote_url, token, on_event=on_event)
    from bridge.engine.worker import EngineClient

    return EngineClient(device, on_event=on_event)


def configured_remote(settings: Settings) -> tuple[str | None, str | None]:
    """(URL, token) of the remote engine chosen in the settings, or (None, None) for this computer."""
    if settings.engine.kind != "remote" or not settings.engine.remote_url:
        return None, None
    from bridge.engine.remote.token_store import load_token

    return settings.engine.remote_url, load_token(settings.engine.remote_url)
