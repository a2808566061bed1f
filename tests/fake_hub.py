"""A stand-in for the Hugging Face Hub on 127.0.0.1, serving model folders as repositories.

It answers the calls huggingface_hub 2.x and Segue's downloader make (see huggingface_hub's
hf_api.py `model_info` / `list_repo_tree` and file_download.py `hf_hub_url`):

    GET /api/models/{org}/{name}/revision/{revision}   -> {"id", "sha"}
    GET /api/models/{org}/{name}/tree/{revision}       -> [{"type", "path", "size", "oid", "lfs"?}]
    GET /{org}/{name}/resolve/{revision}/{path}        -> the bytes; honours "Range: bytes=N-" (206)

Unknown repositories get 404 with X-Error-Code: RepoNotFound, as the Hub does. `cut_after[path]`
makes the next download of that file stop after that many bytes, like a dropped connection;
`corrupt` names files whose next download arrives with one byte changed.
Every request is recorded in `requests` as (method, path, Range header or None).
"""

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".model", ".bin")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hangs up mid-file (cancel) is part of the tests, not an error


class FakeHub:
    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = {repo_id: Path(folder) for repo_id, folder in repos.items()}
        self.cut_after: dict[str, int] = {}
        self.corrupt: set[str] = set()
        self.requests: list[tuple[str, str, str | None]] = []
        self.server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def commit(self, repo_id: str) -> str:
        return hashlib.sha1(repo_id.encode()).hexdigest()

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()

    def downloads_of(self, file_name: str) -> list[str | None]:
        """The Range header of every download request for `file_name` (None: from the start)."""
        return [byte_range for method, path, byte_range in self.requests
                if method == "GET" and "/resolve/" in path and path.endswith("/" + file_name)]

    def tree(self, repo_id: str) -> list[dict]:
        entries = []
        for file in sorted(p for p in self.repos[repo_id].rglob("*") if p.is_file()):
            data = file.read_bytes()
            entry = {
                "type": "file",
                "path": file.relative_to(self.repos[repo_id]).as_posix(),
                "size": len(data),
                "oid": hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest(),
            }
            if file.suffix in LFS_SUFFIXES:
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            entries.append(entry)
        return entries

    def _handler_class(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                path = unquote(urlparse(self.path).path)
                hub.requests.append((self.command, path, self.headers.get("Range")))
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "models"] and len(parts) >= 6:
                    self.api(f"{parts[2]}/{parts[3]}", parts[4])
                elif len(parts) >= 5 and parts[2] == "resolve":
                    self.resolve(f"{parts[0]}/{parts[1]}", "/".join(parts[4:]))
                else:
                    self.send_json(404, {"error": "not found"})

            def api(self, repo_id: str, kind: str) -> None:
                if repo_id not in hub.repos:
                    return self.send_json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                if kind == "revision":
                    return self.send_json(200, {"id": repo_id, "sha": hub.commit(repo_id)})
                if kind == "tree":
                    return self.send_json(200, hub.tree(repo_id))
                self.send_json(404, {"error": "not found"})

            def resolve(self, repo_id: str, file_path: str) -> None:
                file = hub.repos.get(repo_id, Path("/nonexistent")) / file_path
                if not file.is_file():
                    return self.send_json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
                data = file.read_bytes()
                start = 0
                byte_range = self.headers.get("Range")
                if byte_range and byte_range.startswith("bytes=") and byte_range.endswith("-"):
                    start = int(byte_range[len("bytes="):-1])
                body = data[start:]
                if file_path in hub.corrupt and body:
                    hub.corrupt.discard(file_path)
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Repo-Commit", hub.commit(repo_id))
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.end_headers()
                if self.command == "HEAD":
                    return None
                cut = hub.cut_after.pop(file_path, None)
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # drop the link mid-file
                    return None
                self.wfile.write(body)

            def send_json(self, status: int, payload, headers: dict | None = None) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        return Handler
