"""A local, Hub-compatible HTTP server: the offline stand-in for huggingface.co.

It speaks the part of the Hugging Face Hub protocol that ``huggingface_hub``'s ``HfApi``
uses to create repos, upload (regular files in the commit, large ones through the Git LFS
batch API), branch, list and download, so zoo's publishing is tested with the real client
over real HTTP. It has no Xet: run the client with ``HF_HUB_DISABLE_XET=1``.

    python -m zoo.testing.hubserver --port 8765 [--token secret] [--root DIR]
    HF_ENDPOINT=http://127.0.0.1:8765 HF_HUB_DISABLE_XET=1 zoo push out/m org/name

Everything is kept in memory; blobs are stored by sha256 under ``--root``. For tests,
``fail_next_commits`` makes the next commit requests fail with a 500 before anything is
applied (an interrupted upload).
"""


import base64
import hashlib
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request

__all__ = ["HubState", "create_app", "serve_in_thread", "LFS_THRESHOLD"]

LFS_THRESHOLD = 10 * 1024 * 1024  # bytes: larger files go through Git LFS
_LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".png", ".jpg", ".wav", ".onnx")


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubState:
    def __init__(self, root: Path, token: str | None = None) -> None:
        self.root = Path(root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        self.token = token
        self.repos: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.fail_next_commits = 0
        self.requests: list[tuple[str, str]] = []  # (method, path), for tests

    def sign(self, oid: str) -> str:
        return hashlib.sha256(f"{self.token or ''}:{id(self)}:{oid}".encode()).hexdigest()[:24]

    def blob_path(self, sha256: str) -> Path:
        return self.root / "objects" / sha256

    def store(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha)
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return sha

    def commit(self, repo: dict[str, Any], files: dict[str, Any], message: str,
               parent: str | None) -> str:
        body = json.dumps({"files": {p: f["sha256"] for p, f in sorted(files.items())},
                           "parent": parent, "message": message, "t": time.time_ns()})
        sha = hashlib.sha1(body.encode()).hexdigest()
        repo["commits"][sha] = {"files": files, "parent": parent, "message": message}
        return sha


def _error(status: int, msg: str, code: str | None = None) -> Any:
    from fastapi.responses import JSONResponse

    headers = {"X-Error-Code": code, "X-Error-Message": msg} if code else {"X-Error-Message": msg}
    return JSONResponse({"error": msg}, status_code=status, headers=headers)


def _base(request: Any) -> str:
    return str(request.base_url).rstrip("/")


class _Routes:
    """The Hub's endpoints over one :class:`HubState` (each a method FastAPI routes to)."""

    def __init__(self, state: HubState) -> None:
        self.state = state

    def authorized(self, request: Any) -> bool:
        if self.state.token is None:
            return True
        return request.headers.get("authorization") == f"Bearer {self.state.token}"

    def find(self, repo_id: str, rev: str | None, request: Any) -> tuple:
        repo = self.state.repos.get(repo_id)
        if repo is None or (repo["private"] and not self.authorized(request)):
            return None, None, _error(404, f"Repository {repo_id} not found", "RepoNotFound")
        rev = unquote(rev or "main")
        sha = repo["refs"].get(rev) or (rev if rev in repo["commits"] else None)
        if sha is None:
            return repo, None, _error(404, f"Revision {rev} not found", "RevisionNotFound")
        return repo, sha, None

    async def record(self, request: Request, call_next: Any) -> Any:
        self.state.requests.append((request.method, request.url.path))
        presigned = request.url.path.startswith("/_lfs/")  # checked by its signature
        if request.method in ("POST", "PUT", "DELETE") and not self.authorized(request) \
                and request.url.path != "/api/validate-yaml" and not presigned:
            return _error(401, "Invalid credentials in Authorization header")
        return await call_next(request)

    async def whoami(self, request: Request) -> Any:
        if not self.authorized(request) or self.state.token is None:
            return _error(401, "Invalid credentials in Authorization header")
        return {"type": "user", "name": "zoo-local", "orgs": []}

    async def create_repo(self, request: Request) -> Any:
        from fastapi.responses import JSONResponse

        body = await request.json()
        name, org = body.get("name"), body.get("organization")
        repo_id = f"{org}/{name}" if org else f"zoo-local/{name}"
        url = f"{_base(request)}/{repo_id}"
        with self.state.lock:
            if repo_id in self.state.repos:
                return JSONResponse({"error": "You already created this model repo",
                                     "url": url}, status_code=409)
            repo = {"private": bool(body.get("private")), "refs": {}, "commits": {}}
            repo["refs"]["main"] = self.state.commit(repo, {}, "initial commit", None)
            self.state.repos[repo_id] = repo
        return {"url": url, "name": repo_id, "id": repo_id}

    async def validate_yaml(self, request: Request) -> Any:
        return {"errors": [], "warnings": []}

    async def create_branch(self, ns: str, name: str, branch: str, request: Request) -> Any:
        repo, sha, err = self.find(f"{ns}/{name}", "main", request)
        if err:
            return err
        branch = unquote(branch)
        with self.state.lock:
            if branch in repo["refs"]:
                return _error(409, f"Reference {branch} already exists")
            try:
                start = (await request.json()).get("startingPoint")
            except ValueError:
                start = None
            repo["refs"][branch] = repo["refs"].get(start, start) if start else sha
        return {}

    async def preupload(self, ns: str, name: str, rev: str, request: Request) -> Any:
        repo, sha, err = self.find(f"{ns}/{name}", rev, request)
        if err and repo is None:
            return err
        existing = repo["commits"][sha]["files"] if sha else {}
        files = []
        for f in (await request.json()).get("files", []):
            lfs = f["size"] > LFS_THRESHOLD or f["path"].endswith(_LFS_SUFFIXES)
            item = {"path": f["path"], "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False}
            if f["path"] in existing:
                item["oid"] = existing[f["path"]]["git_oid"]
            files.append(item)
        return {"files": files, "commitOid": sha}

    async def lfs_batch(self, ns: str, name: str, request: Request) -> Any:
        from fastapi.responses import JSONResponse

        if f"{ns}/{name}" not in self.state.repos:
            return _error(404, f"Repository {ns}/{name} not found", "RepoNotFound")
        objects = []
        for obj in (await request.json()).get("objects", []):
            item = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not self.state.blob_path(obj["oid"]).exists():
                sig = self.state.sign(obj["oid"])
                item["actions"] = {"upload": {"href": f"{_base(request)}/_lfs/{obj['oid']}"
                                                      f"?sig={sig}", "expires_in": 3600}}
            objects.append(item)
        return JSONResponse({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                            media_type="application/vnd.git-lfs+json")

    async def lfs_upload(self, oid: str, request: Request, sig: str = "") -> Any:
        from fastapi import Response

        if sig != self.state.sign(oid):  # like a pre-signed storage URL
            return _error(403, "invalid or missing upload signature")
        data = await request.body()
        if hashlib.sha256(data).hexdigest() != oid:
            return _error(400, "sha256 of the uploaded bytes does not match the oid")
        self.state.store(data)
        return Response(status_code=200)

    def _apply(self, files: dict[str, Any], lines: list[dict[str, Any]]) -> Any:
        """A commit's operations onto ``files``; an error response, or None."""
        for item in lines:
            key, value = item["key"], item.get("value", {})
            path = value.get("path", "")
            if key in ("file", "lfsFile", "deletedFile") and (
                    path.startswith("/") or ".." in path.split("/")):
                return _error(400, f"invalid path {path!r}")
            if key == "file":
                data = base64.b64decode(value["content"])
                files[path] = {"sha256": self.state.store(data), "size": len(data),
                               "lfs": False, "git_oid": _git_oid(data)}
            elif key == "lfsFile":
                if not self.state.blob_path(value["oid"]).exists():
                    return _error(422, f"LFS object {value['oid']} was not uploaded")
                pointer = (f"version https://git-lfs.github.com/spec/v1\noid sha256:"
                           f"{value['oid']}\nsize {value['size']}\n").encode()
                files[path] = {"sha256": value["oid"], "size": int(value["size"]),
                               "lfs": True, "git_oid": _git_oid(pointer)}
            elif key in ("deletedFile", "deletedFolder"):
                for p in [p for p in files if p == path or p.startswith(path.rstrip("/") + "/")]:
                    del files[p]
        return None

    async def commit(self, ns: str, name: str, rev: str, request: Request) -> Any:
        repo_id = f"{ns}/{name}"
        repo, sha, err = self.find(repo_id, rev, request)
        if err:
            return err
        raw = await request.body()
        if self.state.fail_next_commits > 0:  # an interrupted upload: fail before any change
            self.state.fail_next_commits -= 1
            return _error(500, "Internal Error - the commit could not be completed")
        lines = [json.loads(x) for x in raw.decode().splitlines() if x.strip()]
        header = next((x["value"] for x in lines if x["key"] == "header"), {})
        with self.state.lock:
            head = repo["refs"].get(unquote(rev), sha)
            if header.get("parentCommit") and header["parentCommit"] != head:
                return _error(412, "A commit has happened since. Please refresh and try again.")
            files = dict(repo["commits"][head]["files"])
            failed = self._apply(files, lines)
            if failed is not None:
                return failed
            new = self.state.commit(repo, files, header.get("summary", ""), head)
            repo["refs"][unquote(rev)] = new
        return {"commitUrl": f"{_base(request)}/{repo_id}/commit/{new}", "commitOid": new,
                "success": True}

    def info(self, repo_id: str, repo: dict[str, Any], sha: str) -> dict[str, Any]:
        files = repo["commits"][sha]["files"]
        return {"id": repo_id, "modelId": repo_id, "sha": sha, "private": repo["private"],
                "siblings": [{"rfilename": p, "size": f["size"]} for p, f in sorted(files.items())],
                "tags": [], "downloads": 0, "likes": 0, "library_name": "zoo"}

    async def model_info(self, ns: str, name: str, request: Request) -> Any:
        repo, sha, err = self.find(f"{ns}/{name}", "main", request)
        return err or self.info(f"{ns}/{name}", repo, sha)

    async def model_info_rev(self, ns: str, name: str, rev: str, request: Request) -> Any:
        repo, sha, err = self.find(f"{ns}/{name}", rev, request)
        return err or self.info(f"{ns}/{name}", repo, sha)

    async def tree(self, ns: str, name: str, rev: str, request: Request, path: str = "",
                   recursive: bool = False) -> Any:
        repo, sha, err = self.find(f"{ns}/{name}", rev, request)
        if err:
            return err
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        entries, dirs = [], set()
        for p, f in sorted(repo["commits"][sha]["files"].items()):
            if not p.startswith(prefix):
                continue
            rest = p[len(prefix):]
            if "/" in rest and not recursive:
                dirs.add(prefix + rest.split("/")[0])
                continue
            if recursive:
                parts = p.split("/")
                for i in range(len(prefix.split("/")) if prefix else 1, len(parts)):
                    dirs.add("/".join(parts[:i]))
            e = {"type": "file", "path": p, "size": f["size"], "oid": f["git_oid"]}
            if f["lfs"]:
                e["lfs"] = {"oid": f["sha256"], "size": f["size"], "pointerSize": 130}
            entries.append(e)
        return [{"type": "directory", "path": d, "oid": "0" * 40, "size": 0}
                for d in sorted(dirs)] + entries

    async def _resolve(self, ns: str, name: str, rev: str, path: str, request: Request,
                       body: bool) -> Any:
        from fastapi import Response

        repo, sha, err = self.find(f"{ns}/{name}", rev, request)
        if err:
            return err
        f = repo["commits"][sha]["files"].get(path)
        if f is None:
            return _error(404, f"Entry {path} not found", "EntryNotFound")
        headers = {"X-Repo-Commit": sha, "Content-Length": str(f["size"]),
                   "Accept-Ranges": "bytes"}
        if f["lfs"]:
            headers.update({"ETag": f'"{f["sha256"]}"', "X-Linked-Etag": f'"{f["sha256"]}"',
                            "X-Linked-Size": str(f["size"])})
        else:
            headers["ETag"] = f'"{f["git_oid"]}"'
        data = self.state.blob_path(f["sha256"]).read_bytes() if body else b""
        return Response(content=data, headers=headers, media_type="application/octet-stream")

    async def resolve_head(self, ns: str, name: str, rev: str, path: str,
                           request: Request) -> Any:
        return await self._resolve(ns, name, rev, path, request, body=False)

    async def resolve_get(self, ns: str, name: str, rev: str, path: str,
                          request: Request) -> Any:
        return await self._resolve(ns, name, rev, path, request, body=True)


def create_app(state: HubState) -> Any:
    from fastapi import FastAPI

    r = _Routes(state)
    app = FastAPI(title="zoo local hub", docs_url=None, redoc_url=None)
    app.middleware("http")(r.record)
    for method, path, endpoint in (
            ("GET", "/api/whoami-v2", r.whoami),
            ("POST", "/api/repos/create", r.create_repo),
            ("POST", "/api/validate-yaml", r.validate_yaml),
            ("POST", "/api/models/{ns}/{name}/branch/{branch:path}", r.create_branch),
            ("POST", "/api/models/{ns}/{name}/preupload/{rev:path}", r.preupload),
            ("POST", "/{ns}/{name}.git/info/lfs/objects/batch", r.lfs_batch),
            ("PUT", "/_lfs/{oid}", r.lfs_upload),
            ("POST", "/api/models/{ns}/{name}/commit/{rev:path}", r.commit),
            ("GET", "/api/models/{ns}/{name}", r.model_info),
            ("GET", "/api/models/{ns}/{name}/revision/{rev:path}", r.model_info_rev),
            ("GET", "/api/models/{ns}/{name}/tree/{rev}/{path:path}", r.tree),
            ("GET", "/api/models/{ns}/{name}/tree/{rev}", r.tree),
            ("HEAD", "/{ns}/{name}/resolve/{rev}/{path:path}", r.resolve_head),
            ("GET", "/{ns}/{name}/resolve/{rev}/{path:path}", r.resolve_get)):
        app.add_api_route(path, endpoint, methods=[method])
    return app


def serve_in_thread(root: str | Path | None = None, *, token: str | None = None,
                    host: str = "127.0.0.1", port: int = 0) -> Any:
    """Start the server on a free loopback port in a background thread; the returned
    handle has ``url``, ``state`` and ``stop()`` (and works as a context manager)."""
    from zoo.serve.uvicorn import run_in_thread

    state = HubState(Path(root or tempfile.mkdtemp(prefix="zoo-hub-")), token=token)
    handle = run_in_thread(create_app(state), host, port, lifespan="off")
    handle.state = state
    return handle


def main() -> None:
    import argparse

    import uvicorn

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--token", help="require this bearer token for writes")
    ap.add_argument("--root", help="where blobs are kept (default: a temporary folder)")
    args = ap.parse_args()
    state = HubState(Path(args.root or tempfile.mkdtemp(prefix="zoo-hub-")), token=args.token)
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
