"""Choosing the engine: settings.json keeps the remote's URL, the token goes to the keyring or a 0600 file."""

import argparse
import json
import stat

import keyring
import keyring.backend
import pytest

from bridge.cli import main
from bridge.cli.engine_choice import engine_from_args
from bridge.engine.remote import token_store
from bridge.engine.remote.client import RemoteEngineClient
from bridge.settings import load_settings, settings_path, update_settings

URL = "http://gpu-box.local:8000"


def test_without_a_keyring_the_token_goes_to_a_file_only_the_user_can_read():
    assert keyring.get_keyring().priority <= 0  # this machine has no keyring backend
    where = token_store.save_token(URL, "s3cret")
    path = token_store.token_file()
    assert where == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token_store.load_token(URL) == "s3cret" and token_store.load_token("http://other:1") is None
    token_store.save_token(URL, None)
    assert token_store.load_token(URL) is None and json.loads(path.read_text()) == {}


def test_with_a_keyring_the_token_stays_out_of_files():
    previous = keyring.get_keyring()  # chosen before the class below exists: keyring picks up every subclass
    class MemoryKeyring(keyring.backend.KeyringBackend):
        """A keyring backend through keyring's own plug-in interface, as the OS ones are."""

        priority = 10

        def __init__(self) -> None:
            super().__init__()
            self.passwords: dict[tuple[str, str], str] = {}

        def get_password(self, service, username):
            return self.passwords.get((service, username))

        def set_password(self, service, username, password):
            self.passwords[(service, username)] = password

        def delete_password(self, service, username):
            if self.passwords.pop((service, username), None) is None:
                raise keyring.errors.PasswordDeleteError(username)

    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        assert token_store.save_token(URL, "s3cret") == "the OS keyring"
        assert backend.passwords == {(token_store.KEYRING_SERVICE, URL): "s3cret"}
        assert token_store.load_token(URL) == "s3cret"
        assert not token_store.token_file().exists()
        token_store.save_token(URL, "")
        assert backend.passwords == {}
    finally:
        keyring.set_keyring(previous)


def test_the_remote_engine_choice_is_saved_in_settings_and_used_by_the_cli():
    def choose_remote(settings):
        settings.engine.kind = "remote"
        settings.engine.remote_url = URL

    update_settings(choose_remote)
    token_store.save_token(URL, "s3cret")
    saved = json.loads(settings_path().read_text())
    assert saved["engine"] == {"kind": "remote", "remote_url": URL} and "s3cret" not in settings_path().read_text()
    assert load_settings().engine.remote_url == URL

    args = argparse.Namespace(engine=None, engine_token=None, device="auto")
    with engine_from_args(args) as engine:
        assert isinstance(engine, RemoteEngineClient)
        assert engine.url == URL and engine._headers["Authorization"] == "Bearer s3cret"


def test_a_bad_engine_url_is_one_line_and_exit_2(capsys):
    assert main(["generate", "x", "--model", "tiny", "--engine", "gpu-box:8000"]) == 2
    assert "--engine takes an http:// or https:// URL" in capsys.readouterr().err


def test_an_unreachable_engine_fails_the_job_with_the_reason(capsys):
    # Nothing listens on port 9 (discard) here: the job fails, nothing is written.
    assert main(["generate", "x", "--model", "tiny", "--seconds", "1", "--engine", "http://127.0.0.1:9"]) == 2
    assert "cannot reach the remote engine at http://127.0.0.1:9" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "reason"), [
    (["--min-replicas", "3", "--max-replicas", "2"], "--min-replicas"),
    (["--port", "0"], "--port must be"),
])
def test_engine_serve_refuses_impossible_options_before_starting_ray(argv, reason, capsys):
    assert main(["engine", "serve", "--model", "tiny", *argv]) == 2
    assert reason in capsys.readouterr().err


def test_engine_serve_wants_a_token_when_bound_wider_than_this_computer(monkeypatch, capsys):
    from bridge.cli.engine import serve_token

    monkeypatch.delenv("SEGUE_ENGINE_TOKEN", raising=False)
    assert serve_token("127.0.0.1", None) is None
    generated = serve_token("0.0.0.0", None)
    assert len(generated) >= 32 and generated in capsys.readouterr().out
    assert serve_token("0.0.0.0", "mine") == "mine"
    monkeypatch.setenv("SEGUE_ENGINE_TOKEN", "from-env")
    assert serve_token("192.168.1.5", None) == "from-env" and "from-env" not in capsys.readouterr().out
