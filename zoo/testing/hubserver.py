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


def create_app(state: HubState) -> Any:
    from fastapi import FastAPI, Request, Response
    from fastapi.responses import JSONResponse

    app = FastAPI(title="zoo local hub", docs_url=None, redoc_url=None)

    def error(status: int, msg: str, code: str | None = None) -> JSONResponse:
        headers = {"X-Error-Code": code, "X-Error-Message": msg} if code else {"X-Error-Message": msg}
        return JSONResponse({"error": msg}, status_code=status, headers=headers)

    def authorized(request: Request) -> bool:
        if state.token is None:
            return True
        return request.headers.get("authorization") == f"Bearer {state.token}"

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def find(repo_id: str, rev: str | None, request: Request
             ) -> tuple[dict[str, Any] | None, str | None, JSONResponse | None]:
        repo = state.repos.get(repo_id)
        if repo is None or (repo["private"] and not authorized(request)):
            return None, None, error(404, f"Repository {repo_id} not found", "RepoNotFound")
        rev = unquote(rev or "main")
        sha = repo["refs"].get(rev) or (rev if rev in repo["commits"] else None)
        if sha is None:
            return repo, None, error(404, f"Revision {rev} not found", "RevisionNotFound")
        return repo, sha, None

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        state.requests.append((request.method, request.url.path))
        presigned = request.url.path.startswith("/_lfs/")  # checked by its signature
        if request.method in ("POST", "PUT", "DELETE") and not authorized(request) \
                and request.url.path != "/api/validate-yaml" and not presigned:
            return error(401, "Invalid credentials in Authorization header")
        return await call_next(request)

    @app.get("/api/whoami-v2")
    async def whoami(request: Request) -> Any:
        if not authorized(request) or state.token is None:
            return error(401, "Invalid credentials in Authorization header")
        return {"type": "user", "name": "zoo-local", "orgs": []}

    @app.post("/api/repos/create")
    async def create_repo(request: Request) -> Any:
        body = await request.json()
        name, org = body.get("name"), body.get("organization")
        repo_id = f"{org}/{name}" if org else f"zoo-local/{name}"
        url = f"{base(request)}/{repo_id}"
        with state.lock:
            if repo_id in state.repos:
                return JSONResponse({"error": "You already created this model repo",
                                     "url": url}, status_code=409)
            repo = {"private": bool(body.get("private")), "refs": {}, "commits": {}}
            repo["refs"]["main"] = state.commit(repo, {}, "initial commit", None)
            state.repos[repo_id] = repo
        return {"url": url, "name": repo_id, "id": repo_id}

    @app.post("/api/validate-yaml")
    async def validate_yaml(request: Request) -> Any:
        return {"errors": [], "warnings": []}

    @app.post("/api/models/{ns}/{name}/branch/{branch:path}")
    async def create_branch(ns: str, name: str, branch: str, request: Request) -> Any:
        repo, sha, err = find(f"{ns}/{name}", "main", request)
        if err:
            return err
        branch = unquote(branch)
        with state.lock:
            if branch in repo["refs"]:
                return error(409, f"Reference {branch} already exists")
            try:
                start = (await request.json()).get("startingPoint")
            except ValueError:
                start = None
            repo["refs"][branch] = repo["refs"].get(start, start) if start else sha
        return {}

    @app.post("/api/models/{ns}/{name}/preupload/{rev:path}")
    async def preupload(ns: str, name: str, rev: str, request: Request) -> Any:
        repo, sha, err = find(f"{ns}/{name}", rev, request)
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

    @app.post("/{ns}/{name}.git/info/lfs/objects/batch")
    async def lfs_batch(ns: str, name: str, request: Request) -> Any:
        if f"{ns}/{name}" not in state.repos:
            return error(404, f"Repository {ns}/{name} not found", "RepoNotFound")
        body = await request.json()
        objects = []
        for obj in body.get("objects", []):
            item = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not state.blob_path(obj["oid"]).exists():
                sig = state.sign(obj["oid"])
                item["actions"] = {"upload": {"href": f"{base(request)}/_lfs/{obj['oid']}"
                                                      f"?sig={sig}", "expires_in": 3600}}
            objects.append(item)
        return JSONResponse({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                            media_type="application/vnd.git-lfs+json")

    @app.put("/_lfs/{oid}")
    async def lfs_upload(oid: str, request: Request, sig: str = "") -> Any:
        if sig != state.sign(oid):  # like a pre-signed storage URL
            return error(403, "invalid or missing upload signature")
        data = await request.body()
        if hashlib.sha256(data).hexdigest() != oid:
            return error(400, "sha256 of the uploaded bytes does not match the oid")
        state.store(data)
        return Response(status_code=200)

    @app.post("/api/models/{ns}/{name}/commit/{rev:path}")
    async def commit(ns: str, name: str, rev: str, request: Request) -> Any:
        repo_id = f"{ns}/{name}"
        repo, sha, err = find(repo_id, rev, request)
        if err:
            return err
        raw = await request.body()
        if state.fail_next_commits > 0:  # an interrupted upload: fail before any change
            state.fail_next_commits -= 1
            return error(500, "Internal Error - the commit could not be completed")
        lines = [json.loads(x) for x in raw.decode().splitlines() if x.strip()]
        header = next((x["value"] for x in lines if x["key"] == "header"), {})
        parent_req = header.get("parentCommit")
        with state.lock:
            head = repo["refs"].get(unquote(rev), sha)
            if parent_req and parent_req != head:
                return error(412, "A commit has happened since. Please refresh and try again.")
            files = dict(repo["commits"][head]["files"])
            for item in lines:
                key, value = item["key"], item.get("value", {})
                path = value.get("path", "")
                if key in ("file", "lfsFile", "deletedFile") and (
                        path.startswith("/") or ".." in path.split("/")):
                    return error(400, f"invalid path {path!r}")
                if key == "file":
                    data = base64.b64decode(value["content"])
                    files[path] = {"sha256": state.store(data), "size": len(data),
                                   "lfs": False, "git_oid": _git_oid(data)}
                elif key == "lfsFile":
                    if not state.blob_path(value["oid"]).exists():
                        return error(422, f"LFS object {value['oid']} was not uploaded")
                    pointer = (f"version https://git-lfs.github.com/spec/v1\noid sha256:"
                               f"{value['oid']}\nsize {value['size']}\n").encode()
                    files[path] = {"sha256": value["oid"], "size": int(value["size"]),
                                   "lfs": True, "git_oid": _git_oid(pointer)}
                elif key in ("deletedFile", "deletedFolder"):
                    for p in [p for p in files if p == path or p.startswith(path.rstrip("/") + "/")]:
                        del files[p]
            new = state.commit(repo, files, header.get("summary", ""), head)
            repo["refs"][unquote(rev)] = new
        return {"commitUrl": f"{base(request)}/{repo_id}/commit/{new}", "commitOid": new,
                "success": True}

    def info(repo_id: str, repo: dict[str, Any], sha: str) -> dict[str, Any]:
        files = repo["commits"][sha]["files"]
        return {"id": repo_id, "modelId": repo_id, "sha": sha, "private": repo["private"],
                "siblings": [{"rfilename": p, "size": f["size"]} for p, f in sorted(files.items())],
                "tags": [], "downloads": 0, "likes": 0, "library_name": "zoo"}

    @app.get("/api/models/{ns}/{name}")
    async def model_info(ns: str, name: str, request: Request) -> Any:
        repo, sha, err = find(f"{ns}/{name}", "main", request)
        return err or info(f"{ns}/{name}", repo, sha)

    @app.get("/api/models/{ns}/{name}/revision/{rev:path}")
    async def model_info_rev(ns: str, name: str, rev: str, request: Request) -> Any:
        repo, sha, err = find(f"{ns}/{name}", rev, request)
        return err or info(f"{ns}/{name}", repo, sha)

    @app.get("/api/models/{ns}/{name}/tree/{rev}/{path:path}")
    @app.get("/api/models/{ns}/{name}/tree/{rev}")
    async def tree(ns: str, name: str, rev: str, request: Request, path: str = "",
                   recursive: bool = False) -> Any:
        repo, sha, err = find(f"{ns}/{name}", rev, request)
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

    async def resolve(ns: str, name: str, rev: str, path: str, request: Request,
                      body: bool) -> Any:
        repo, sha, err = find(f"{ns}/{name}", rev, request)
        if err:
            return err
        f = repo["commits"][sha]["files"].get(path)
        if f is None:
            return error(404, f"Entry {path} not found", "EntryNotFound")
        headers = {"X-Repo-Commit": sha, "Content-Length": str(f["size"]),
                   "Accept-Ranges": "bytes"}
        if f["lfs"]:
            headers.update({"ETag": f'"{f["sha256"]}"', "X-Linked-Etag": f'"{f["sha256"]}"',
                            "X-Linked-Size": str(f["size"])})
        else:
            headers["ETag"] = f'"{f["git_oid"]}"'
        data = state.blob_path(f["sha256"]).read_bytes() if body else b""
        return Response(content=data, headers=headers, media_type="application/octet-stream")

    @app.head("/{ns}/{name}/resolve/{rev}/{path:path}")
    async def resolve_head(ns: str, name: str, rev: str, path: str, request: Request) -> Any:
        return await resolve(ns, name, rev, path, request, body=False)

    @app.get("/{ns}/{name}/resolve/{rev}/{path:path}")
    async def resolve_get(ns: str, name: str, rev: str, path: str, request: Request) -> Any:
        return await resolve(ns, name, rev, path, request, body=True)

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
