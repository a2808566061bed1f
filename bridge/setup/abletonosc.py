"""AbletonOSC at a pinned commit, checked by content, with Segue's patch applied in memory.

What is verified: not the zip's bytes (GitHub builds its archive zips on demand, and their bytes,
timestamps and compression are not promised to stay the same; `git archive` of the very same
commit gives yet another zip), but the files inside it. The *tree hash* is the SHA-256 of the lines
"<sha256 of the file>  <path>\\n" for every file under the archive's top folder, paths sorted
byte-wise: the same number as

    cd AbletonOSC-<commit> && find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum

AbletonOSC's code never enters Segue's repository: it is downloaded from GitHub (or read from the
zip a producer downloaded with `--abletonosc-zip`), refused unless its tree hash matches, patched
with bridge/daw/companions/ableton/abletonosc-create-audio-clip.patch, and written into Live's
Remote Scripts folder.
"""

import hashlib
import io
import urllib.error
import urllib.request
import zipfile
from importlib import resources
from pathlib import Path, PurePosixPath

from bridge.atomic_files import replacing
from bridge.paths import cache_dir
from bridge.setup.changes import SetupError
from bridge.setup.patching import apply_unified_diff

# ideoforms/AbletonOSC master on 2025-11-19 ("Add issue templates"); the tree hash was computed from
# that commit's files (`git archive`), which are the files GitHub's zip of it holds.
PINNED_COMMIT = "0ca68214bd62c9b5cb641ca34006cfd70ba94430"
PINNED_TREE_SHA256 = "2621bdbfa61a4bfe400583b3c7690cee29a80fa3242184a0fc29e46b2972eae4"
DOWNLOAD_URL = f"https://github.com/ideoforms/AbletonOSC/archive/{PINNED_COMMIT}.zip"
DOWNLOAD_TIMEOUT_SECONDS = 60.0
MAX_ZIP_BYTES = 20 * 1024 * 1024  # the real one is about 70 kB
PATCH_NAME = "abletonosc-create-audio-clip.patch"
# Files that make a folder AbletonOSC (Live loads the package through its __init__.py).
REQUIRED_FILES = ("__init__.py", "abletonosc/track.py", "abletonosc/clip_slot.py")


def tree_sha256(files: dict[str, bytes]) -> str:
    """The tree hash of `files` (relative POSIX path -> bytes), as the module docstring defines it."""
    manifest = "".join(f"{hashlib.sha256(files[path]).hexdigest()}  {path}\n" for path in sorted(files))
    return hashlib.sha256(manifest.encode("utf-8")).hexdigest()


def read_archive(zip_bytes: bytes, source: str) -> dict[str, bytes]:
    """The files under the zip's one top folder, by relative path; SetupError for anything else."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(zip_bytes))
        broken = archive.testzip()
    except (zipfile.BadZipFile, EOFError, ValueError) as error:
        raise SetupError(f"{source} is not a readable zip ({error}); download it again") from None
    if broken is not None:
        raise SetupError(f"{source} is damaged ({broken} fails its CRC check); download it again")
    files: dict[str, bytes] = {}
    tops = set()
    for info in archive.infolist():
        parts = PurePosixPath(info.filename).parts
        if not parts or info.filename.startswith("/") or ".." in parts:
            raise SetupError(f"{source} holds an unsafe path {info.filename!r}; refused")
        tops.add(parts[0])
        if not info.is_dir() and len(parts) > 1:
            files["/".join(parts[1:])] = archive.read(info)
    if len(tops) != 1:
        raise SetupError(f"{source} is not laid out like AbletonOSC's archive (one top folder expected)")
    missing = [name for name in REQUIRED_FILES if name not in files]
    if missing:
        raise SetupError(f"{source} does not hold AbletonOSC (no {missing[0]})")
    return files


def verified_files(zip_bytes: bytes, source: str, expected_tree_sha256: str) -> dict[str, bytes]:
    files = read_archive(zip_bytes, source)
    actual = tree_sha256(files)
    if actual != expected_tree_sha256:
        raise SetupError(
            f"{source} is not the AbletonOSC Segue was tested with: its files hash to {actual[:16]}..., "
            f"expected {expected_tree_sha256[:16]}... (AbletonOSC commit {PINNED_COMMIT[:10]}); refused. "
            f"Download {DOWNLOAD_URL}, or pass --abletonosc-sha256 for a build you checked yourself"
        )
    return files


def patched(files: dict[str, bytes]) -> dict[str, bytes]:
    """`files` with Segue's create_audio_clip patch applied (already patched files stay as they are)."""
    patch = (resources.files("bridge.daw") / "companions" / "ableton" / PATCH_NAME).read_text(encoding="utf-8")
    return apply_unified_diff(files, patch, what="AbletonOSC")


def load_zip(zip_path: Path | None, expected_tree_sha256: str) -> dict[str, bytes]:
    """AbletonOSC's verified files: from `zip_path`, else the cached download, else GitHub."""
    if zip_path is not None:
        try:
            data = Path(zip_path).read_bytes()
        except OSError as error:
            raise SetupError(f"--abletonosc-zip {zip_path}: {error.strerror}") from None
        return verified_files(data, str(zip_path), expected_tree_sha256)
    cached = cache_dir() / "abletonosc" / f"AbletonOSC-{PINNED_COMMIT}.zip"
    if cached.is_file():
        try:
            return verified_files(cached.read_bytes(), str(cached), expected_tree_sha256)
        except SetupError:
            cached.unlink(missing_ok=True)  # damaged since: fetch it again
    data = download(DOWNLOAD_URL)
    files = verified_files(data, DOWNLOAD_URL, expected_tree_sha256)
    with replacing(cached) as temporary:
        temporary.write_bytes(data)
    return files


def download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            data = response.read(MAX_ZIP_BYTES + 1)
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        raise SetupError(
            f"cannot download AbletonOSC from {url} ({getattr(error, 'reason', error)}); download that zip "
            "in a browser and pass it with --abletonosc-zip FILE"
        ) from None
    if len(data) > MAX_ZIP_BYTES:
        raise SetupError(f"{url} sent more than {MAX_ZIP_BYTES // 1024 // 1024} MB; refused")
    return data
