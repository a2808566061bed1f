"""Where the panel keeps a remote engine's token: the OS keyring, else a file only the user can read.

settings.json holds the engine's URL, never its token. The keyring (macOS Keychain, Windows
Credential Locker, Secret Service on Linux) is used when the `keyring` package finds a usable one;
on a machine without one (a headless Linux box) the tokens go to `engine-tokens.json` in Segue's
config folder with permissions 0600.
"""

import contextlib
import json
import os
from pathlib import Path

from bridge.atomic_files import replacing
from bridge.errors import SettingsError
from bridge.paths import config_dir

KEYRING_SERVICE = "Segue remote engine"
TOKEN_FILE_NAME = "engine-tokens.json"


def token_file() -> Path:
    return config_dir() / TOKEN_FILE_NAME


def save_token(url: str, token: str | None) -> str:
    """Keep (or, with None or "", forget) the token for `url`; returns where: "the OS keyring" or the file."""
    keyring = _usable_keyring()
    if keyring is not None:
        try:
            if token:
                keyring.set_password(KEYRING_SERVICE, url, token)
            else:
                _delete_from_keyring(keyring, url)
            _write_file_tokens({k: v for k, v in _read_file_tokens().items() if k != url})
            return "the OS keyring"
        except keyring.errors.KeyringError:
            pass  # a locked or broken keyring: the file still works
    tokens = _read_file_tokens()
    if token:
        tokens[url] = token
    else:
        tokens.pop(url, None)
    _write_file_tokens(tokens)
    return str(token_file())


def load_token(url: str) -> str | None:
    """The token kept for `url`, or None."""
    keyring = _usable_keyring()
    if keyring is not None:
        try:
            token = keyring.get_password(KEYRING_SERVICE, url)
        except keyring.errors.KeyringError:
            token = None
        if token:
            return token
    return _read_file_tokens().get(url)


def _usable_keyring():
    """The keyring module when a real backend is there (priority above the 'fail' backend's 0), else None."""
    try:
        import keyring
        import keyring.errors
    except ImportError:
        return None
    try:
        return keyring if keyring.get_keyring().priority > 0 else None
    except Exception:  # a backend that breaks while probing is as good as none
        return None


def _delete_from_keyring(keyring, url: str) -> None:
    with contextlib.suppress(keyring.errors.PasswordDeleteError):  # nothing was stored
        keyring.delete_password(KEYRING_SERVICE, url)


def _read_file_tokens() -> dict[str, str]:
    path = token_file()
    try:
        tokens = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise SettingsError(f"cannot read engine tokens from {path}: {error}; fix or delete it") from None
    if not isinstance(tokens, dict) or not all(isinstance(v, str) for v in tokens.values()):
        raise SettingsError(f"{path} is not a Segue token file; fix or delete it")
    return tokens


def _write_file_tokens(tokens: dict[str, str]) -> None:
    path = token_file()
    if not tokens and not path.exists():
        return
    with replacing(path, suffix=".tmp") as temporary:
        os.chmod(temporary, 0o600)  # before the token is in it
        temporary.write_text(json.dumps(tokens, indent=2, sort_keys=True) + "\n", encoding="utf-8")
