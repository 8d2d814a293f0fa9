"""A Hugging Face Hub stand-in for tests: a cache builder and a local HTTP server.

``FakeHub`` answers ``/{org}/{repo}/resolve/{revision}/{filename}`` like the Hub: HEAD and GET
redirect (302) to a second server standing for the CDN, with the headers huggingface_hub reads
(``X-Repo-Commit``, ``X-Linked-Etag``, ``X-Linked-Size``, ``Location``), and 404s carrying
``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound). Dataset repos
(``add(..., repo_type="dataset")``) are served the same way under ``/datasets/{org}/{repo}/resolve/...``,
and ``/api/datasets/{org}/{repo}/revision/{revision}`` answers ``HfApi.dataset_info`` (the
commit and its files). ``write_cache_entry`` lays a file out exactly as ``hf_hub_download``
would. Both listen on 127.0.0.1 only.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit


def commit_of(*parts: bytes) -> str:
    """A 40-hex commit id derived from content (stable across runs)."""
    return hashlib.sha1(b"".join(parts) or b"empty").hexdigest()


def write_cache_entry(cache_dir: Path, repo_id: str, filename: str, data: bytes, *, commit: str | None = None, ref: str | None = "main") -> Path:
    """Put ``data`` in a huggingface_hub cache as ``repo_id``'s ``filename`` at ``commit``; returns the snapshot path.

    Layout: ``models--ORG--REPO/{blobs/<sha256>, refs/<ref>, snapshots/<commit>/<filename> -> ../../blobs/<sha256>}``.
    """
    commit = commit or commit_of(repo_id.encode(), data)
    repo_dir = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    if ref:
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / ref).write_text(commit)
    pointer = repo_dir / "snapshots" / commit / filename
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if pointer.exists() or pointer.is_symlink():
        pointer.unlink()
    pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    return pointer


@functools.cache
def random_timm_weights(model_name: str = "resnet18", seed: int = 0) -> bytes:
    """``model.safetensors`` bytes of a randomly initialised timm model (built once per test session)."""
    import timm
    import torch
    from safetensors.torch import save

    torch.manual_seed(seed)
    model = timm.create_model(model_name, pretrained=False)
    return save({k: v.contiguous() for k, v in model.state_dict().items()})


class FakeHub:
    """Repos held in memory and served over HTTP; ``requests`` logs ``(method, path)`` of every call."""

    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}
        self.blobs: dict[str, bytes] = {}
        self.tampered: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.uploads: list[dict] = []
        self._servers: list[http.server.ThreadingHTTPServer] = []
        self.endpoint = self.cdn = ""

    # -- content -------------------------------------------------------------------------
    def add(self, repo_id: str, files: dict[str, bytes], *, commit: str | None = None, ref: str | None = "main", repo_type: str = "model") -> str:
        """Add a commit holding ``files`` to ``repo_id`` (created if new), pointed at by ``ref``; returns its id.

        A dataset repo (``repo_type="dataset"``) is kept as ``datasets/ORG/NAME``.
        """
        repo_id = repo_id if repo_type == "model" else f"{repo_type}s/{repo_id}"
        repo = self.repos.setdefault(repo_id, {"refs": {}, "commits": {}})
        commit = commit or commit_of(repo_id.encode(), *files.values(), str(len(repo["commits"])).encode())
        repo["commits"][commit] = dict(files)
        for data in files.values():
            self.blobs[hashlib.sha256(data).hexdigest()] = data
        if ref:
            repo["refs"][ref] = commit
        return commit

    def tamper(self, data: bytes, served: bytes) -> None:
        """Serve ``served`` where ``data`` was announced (same headers): a download damaged on the way."""
        self.tampered[hashlib.sha256(data).hexdigest()] = served

    def count(self, method: str | None = None, contains: str = "") -> int:
        return sum(1 for m, p in self.requests if (method is None or m == method) and contains in p)

    # -- serving -------------------------------------------------------------------------
    def start(self) -> FakeHub:
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_HEAD(self):
                hub.handle(self, body=False)

            def do_GET(self):
                hub.handle(self, body=True)

            def do_POST(self):
                hub.handle_post(self)

            def do_PUT(self):
                hub.handle_put(self)

        for _ in range(2):  # the Hub, and the CDN it redirects file downloads to
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
            self._servers.append(server)
        self.endpoint = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.cdn = f"http://127.0.0.1:{self._servers[1].server_address[1]}"
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def reply(self, h, status: int, headers: dict[str, str], payload: bytes = b"", body: bool = True) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", headers.get("Content-Length", str(len(payload))))
        h.end_headers()
        if body and payload:
            h.wfile.write(payload)

    def error(self, h, status: int, code: str, message: str, body: bool, extra: dict | None = None) -> None:
        payload = json.dumps({"error": message}).encode()
        self.reply(h, status, {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json", **(extra or {})}, payload, body)

    def handle(self, h, body: bool) -> None:
        path = urlsplit(h.path).path
        self.requests.append((h.command, path))
        if path.startswith("/cdn/"):
            sha = path[len("/cdn/"):]
            data = self.blobs.get(sha)
            if data is None:
                return self.reply(h, 404, {}, b"no such blob", body)
            data = self.tampered.get(sha, data)
            return self.reply(h, 200, {"ETag": f'"{sha}"', "Content-Type": "application/octet-stream"}, data, body)
        parts = path.split("/")
        if path.startswith("/api/models/"):
            return self.handle_api(h, parts[3:], body)
        if path.startswith("/api/datasets/"):
            return self.handle_dataset_info(h, parts[3:], body)
        prefix = ""
        if parts[1] == "datasets":
            prefix, parts = "datasets/", parts[:1] + parts[2:]
        if len(parts) < 6 or parts[3] != "resolve":
            return self.error(h, 404, "NotFound", f"no route {path}", body)
        repo_id, revision, filename = f"{prefix}{unquote(parts[1])}/{unquote(parts[2])}", unquote(parts[4]), unquote("/".join(parts[5:]))
        repo = self.repos.get(repo_id)
        if repo is None:
            return self.error(h, 404, "RepoNotFound", "Repository not found", body)
        commit = repo["refs"].get(revision, revision if revision in repo["commits"] else None)
        if commit is None:
            return self.error(h, 404, "RevisionNotFound", "Invalid rev id", body)
        data = repo["commits"][commit].get(filename)
        if data is None:
            return self.error(h, 404, "EntryNotFound", "Entry not found", body, {"X-Repo-Commit": commit})
        sha = hashlib.sha256(data).hexdigest()
        # An LFS file: the Hub answers with a redirect to the CDN that carries the file's metadata.
        self.reply(h, 302, {
            "Location": f"{self.cdn}/cdn/{sha}", "X-Repo-Commit": commit, "X-Linked-Etag": f'"{sha}"',
            "X-Linked-Size": str(len(data)), "ETag": f'"{commit_of(data)}"',
        }, b"", body)

    def handle_dataset_info(self, h, parts: list[str], body: bool) -> None:
        """``GET /api/datasets/ORG/NAME[/revision/REV]``: the commit and its files, as ``HfApi.dataset_info`` reads them."""
        if len(parts) < 2:
            return self.error(h, 404, "NotFound", "no dataset named", body)
        repo_id = f"{unquote(parts[0])}/{unquote(parts[1])}"
        repo = self.repos.get(f"datasets/{repo_id}")
        if repo is None:
            return self.error(h, 404, "RepoNotFound", "Repository not found", body)
        revision = unquote("/".join(parts[3:])) if len(parts) > 3 and parts[2] == "revision" else "main"
        commit = repo["refs"].get(revision, revision if revision in repo["commits"] else None)
        if commit is None:
            return self.error(h, 404, "RevisionNotFound", "Invalid rev id", body)
        files = repo["commits"][commit]
        siblings = [{"rfilename": name, "size": len(data)} for name, data in sorted(files.items())]
        self.reply(h, 200, {"Content-Type": "application/json"}, json.dumps({"id": repo_id, "sha": commit, "private": False, "siblings": siblings}).encode(), body)

    # -- the upload calls of HfApi.create_repo / create_branch / upload_folder ----------------
    # Every file is declared "regular" at preupload, so its content comes inline (base64) in the
    # commit's NDJSON: no LFS or Xet transfer is needed, and the commit is served like any other.
    def handle_api(self, h, parts: list[str], body: bool) -> None:
        self.error(h, 404, "NotFound", "not served by FakeHub", body)

    def json_reply(self, h, data, status: int = 200) -> None:
        self.reply(h, status, {"Content-Type": "application/json"}, json.dumps(data).encode())

    def handle_post(self, h) -> None:
        path = urlsplit(h.path).path
        self.requests.append((h.command, path))
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        parts = [unquote(p) for p in path.split("/")]
        if path == "/api/repos/create":
            payload = json.loads(raw)
            repo_id = f"{payload.get('organization')}/{payload['name']}" if payload.get("organization") else payload["name"]
            if repo_id in self.repos:  # the Hub's 409 names the existing repo's url too
                return self.json_reply(h, {"error": "You already created this model repo", "url": f"{self.endpoint}/{repo_id}"}, 409)
            self.repos[repo_id] = {"refs": {}, "commits": {}, "private": payload.get("visibility") == "private" or bool(payload.get("private"))}
            return self.json_reply(h, {"url": f"{self.endpoint}/{repo_id}"})
        if path == "/api/validate-yaml":
            return self.json_reply(h, {"errors": [], "warnings": []})
        if len(parts) >= 7 and parts[1:3] == ["api", "models"]:
            repo_id, action, revision = f"{parts[3]}/{parts[4]}", parts[5], "/".join(parts[6:])
            repo = self.repos.get(repo_id)
            if repo is None:
                return self.error(h, 404, "RepoNotFound", "Repository not found", True)
            if action == "preupload":
                files = json.loads(raw)["files"]
                return self.json_reply(h, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None} for f in files]})
            if action == "branch":
                repo["refs"].setdefault(revision, repo["refs"].get("main"))
                return self.json_reply(h, {})
            if action == "commit":
                return self.commit(h, repo_id, repo, revision, raw)
        self.error(h, 404, "NotFound", f"no route {path}", True)

    def commit(self, h, repo_id: str, repo: dict, revision: str, raw: bytes) -> None:
        import base64

        lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
        header = next(item["value"] for item in lines if item["key"] == "header")
        added = {item["value"]["path"]: base64.b64decode(item["value"]["content"]) for item in lines if item["key"] == "file"}
        parent = repo["refs"].get(revision)
        files = {**(repo["commits"][parent] if parent else {}), **added}
        commit = self.add(repo_id, files, ref=revision)
        self.uploads.append({"repo_id": repo_id, "revision": revision, "message": header["summary"], "files": added, "commit": commit})
        self.json_reply(h, {"commitUrl": f"{self.endpoint}/{repo_id}/commit/{commit}", "commitOid": commit, "pullRequestUrl": None})

    def handle_put(self, h) -> None:
        path = urlsplit(h.path).path
        self.requests.append((h.command, path))
        h.rfile.read(int(h.headers.get("Content-Length") or 0))
        self.error(h, 404, "NotFound", "not served by FakeHub", True)
