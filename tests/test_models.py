"""Model manager: downloads from a stand-in hub on 127.0.0.1 with progress, resume, cancel and checks."""

import shutil
import socket
import threading

import pytest
from huggingface_hub import constants

from bridge.cli import main
from bridge.engine import catalog
from bridge.engine.catalog import KnownModel
from bridge.engine.musicgen.loading import resolve_checkpoint
from bridge.errors import CancelledError, ModelError
from bridge.models import (
    all_model_statuses,
    download_model,
    installed_model_dir,
    model_status,
    remove_model,
    store,
)
from bridge.models import download as download_module
from tests.fake_hub import FakeHub

REPO = "segue-test/tiny-musicgen"
BROKEN = "segue-test/broken-musicgen"


@pytest.fixture(scope="module")
def repos(tmp_path_factory, segue_cache_dir):
    """The tiny random model's files as a hub repository, and a repository whose config is broken."""
    root = tmp_path_factory.mktemp("hub-repos")
    tiny = shutil.copytree(resolve_checkpoint("tiny"), root / "tiny")
    broken = shutil.copytree(tiny, root / "broken")
    (broken / "config.json").write_text('{"model_type": "musicgen", "decoder": "not a config"}')
    return {REPO: tiny, BROKEN: broken}


@pytest.fixture
def hub(repos, tmp_path, monkeypatch):
    """Hub at HF_ENDPOINT, online, with Segue's model store in a fresh folder."""
    monkeypatch.setenv("SEGUE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(download_module, "RETRY_WAIT_SECONDS", 0.0)
    with FakeHub(repos) as running:
        monkeypatch.setenv("HF_ENDPOINT", running.endpoint)
        yield running


def files_of(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_cancel_then_resume_over_a_dropping_link_ends_with_a_verified_model(hub, repos):
    cancel = threading.Event()
    first_run = []

    def cancel_inside_the_weights(progress):
        first_run.append(progress)
        if progress.file_name == "model.safetensors" and progress.files_done < progress.files_total:
            cancel.set()

    with pytest.raises(CancelledError, match="run it again to resume"):
        download_model(REPO, on_progress=cancel_inside_the_weights, cancel=cancel)
    status = model_status(REPO)
    partial_bytes = first_run[-1].bytes_done
    assert status.state == store.PARTIAL and 0 < partial_bytes < first_run[-1].bytes_total
    assert installed_model_dir(REPO) is None
    weights_on_disk = (repos[REPO] / "model.safetensors").stat().st_size
    part = next(store.model_dir(REPO).rglob("model.safetensors.part")).stat().st_size
    assert 0 < part < weights_on_disk

    hub.cut_after["model.safetensors"] = 500_000  # the link drops once more, mid-file
    second_run = []
    path = download_model(REPO, on_progress=second_run.append)

    ranges = hub.downloads_of("model.safetensors")
    assert ranges[:2] == [None, f"bytes={part}-"] and len(ranges) == 3
    assert part < int(ranges[2].removeprefix("bytes=").rstrip("-")) <= part + 500_000  # kept what arrived
    assert files_of(path) == files_of(repos[REPO])
    total = sum(len(data) for data in files_of(repos[REPO]).values())
    assert {p.bytes_total for p in first_run + second_run} == {total}
    done = [p.bytes_done for p in second_run]
    assert done == sorted(done) and done[0] >= partial_bytes and done[-1] == total
    assert second_run[-1].stage == "verifying" and second_run[-1].files_done == second_run[-1].files_total
    assert model_status(REPO).state == store.READY and installed_model_dir(REPO) == path
    assert resolve_checkpoint(REPO) == str(path)  # the engine now loads it from here, offline
    assert not (store.model_dir(REPO) / "downloads").exists()
    requests_before = len(hub.requests)
    assert download_model(REPO) == path and len(hub.requests) == requests_before


def test_a_model_that_does_not_load_is_never_marked_ready(hub):
    with pytest.raises(ModelError, match="does not load"):
        download_model(BROKEN)
    status = model_status(BROKEN)
    assert status.state == store.FAILED and "does not load" in status.detail
    assert installed_model_dir(BROKEN) is None


def test_a_damaged_file_is_caught_by_its_checksum_and_fetched_again(hub, monkeypatch):
    monkeypatch.setattr(download_module, "verify_model_loads", lambda folder: None)  # checksums are the subject
    hub.corrupt.add("model.safetensors")
    with pytest.raises(ModelError, match="model.safetensors .*damaged"):
        download_model(REPO)
    assert not list(store.model_dir(REPO).rglob("model.safetensors*"))
    assert download_model(REPO).joinpath("model.safetensors").is_file()
    assert hub.downloads_of("model.safetensors") == [None, None]


def test_offline_mode_is_respected_before_any_request(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE is set.*--model PATH"):
        download_model(REPO)
    assert hub.requests == []


def test_an_unreachable_hub_gets_a_clear_message_with_a_hint(hub, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    with pytest.raises(ModelError, match="cannot reach the Hugging Face Hub.*--model PATH") as caught:
        download_model(REPO)
    assert "\n" not in str(caught.value)


def test_unknown_unsupported_and_local_models_are_refused(hub, tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="no such repository"):
        download_model("segue-test/nothing-here")
    future = KnownModel("facebook/musicgen-future", 1.0, "CC-BY-NC 4.0", 1, "not supported by Segue's engine yet", supported=False)
    monkeypatch.setattr(catalog, "KNOWN_MODELS", (*catalog.KNOWN_MODELS, future))
    with pytest.raises(ModelError, match="not supported"):
        download_model("facebook/musicgen-future")
    with pytest.raises(ModelError, match="built locally"):
        download_model("tiny")
    with pytest.raises(ModelError, match="your own folder"):
        remove_model(str(tmp_path))


@pytest.mark.slow
def test_cli_downloads_lists_and_removes(hub, capsys):
    assert main(["models", "download", REPO]) == 0
    assert f"{REPO} is ready" in capsys.readouterr().out
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert any(line.startswith(REPO) and "ready" in line for line in listing.splitlines())
    assert "facebook/musicgen-stereo-melody" in listing and "CC-BY-NC 4.0" in listing
    assert main(["models", "remove", REPO]) == 0
    assert "MB freed" in capsys.readouterr().out
    assert model_status(REPO).state == store.NOT_DOWNLOADED
    assert REPO not in [status.model_id for status in all_model_statuses()]
