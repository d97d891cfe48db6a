"""download_model / retrieve_model against a real HTTP server on 127.0.0.1 (no mocks of requests).

The server (http.server in a thread) serves one in-memory file and can be told to misbehave: cut the
connection after some bytes, stall longer than the client's read timeout, ignore Range headers, or 404.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
import time
from pathlib import Path

import pytest
import requests

from gpt4all import catalogue, download
from gpt4all.download import download_model

PAYLOAD = os.urandom(300_000) + b"end of model"       # big enough for several reads, small enough to be quick
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class FlakyServer:
    """Serves ``files`` ({path: bytes}); ``behaviour`` is a list consumed one request at a time."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.behaviour: list[tuple[str, int]] = []   # ("cut", n) | ("stall", n) | ("norange", 0) | ("ok", 0)
        self.requests: list[dict] = []              # headers of every request seen
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(dict(self.headers))
                mode, n = server.behaviour.pop(0) if server.behaviour else ("ok", 0)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and mode != "norange":
                    start = int(rng.removeprefix("bytes=").rstrip("-"))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                rest = body[start:]
                if mode == "cut":                 # promise everything, send n bytes, hang up
                    self.wfile.write(rest[:n])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if mode == "stall":               # send n bytes, then go silent past the client's timeout
                    self.wfile.write(rest[:n])
                    self.wfile.flush()
                    time.sleep(2.0)
                    self.close_connection = True
                    return
                self.wfile.write(rest)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with FlakyServer({"/model.gguf": PAYLOAD}) as s:
        yield s


def _download(server, tmp_path, **kw):
    kw.setdefault("expected_size", len(PAYLOAD))
    kw.setdefault("expected_md5", MD5)
    return download_model("model.gguf", tmp_path, verbose=False, url=server.url("/model.gguf"), **kw)


def test_download_complete_file_checked_and_renamed(server, tmp_path):
    path = _download(server, tmp_path)
    assert Path(path) == tmp_path / "model.gguf"
    assert Path(path).read_bytes() == PAYLOAD
    assert not (tmp_path / "model.gguf.part").exists()
    assert server.requests[0].get("Accept-Encoding") == "identity"


def test_resume_after_a_cut_in_the_same_run(server, tmp_path):
    server.behaviour = [("cut", 100_000)]
    path = _download(server, tmp_path)
    assert Path(path).read_bytes() == PAYLOAD
    assert len(server.requests) == 2
    assert server.requests[1]["Range"] == "bytes=100000-"


def test_resume_across_runs_from_the_part_file(server, tmp_path):
    (tmp_path / "model.gguf.part").write_bytes(PAYLOAD[:123_456])     # left by an earlier, interrupted run
    path = _download(server, tmp_path)
    assert Path(path).read_bytes() == PAYLOAD
    assert [r.get("Range") for r in server.requests] == ["bytes=123456-"]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    (tmp_path / "model.gguf.part").write_bytes(b"x" * 5000)           # garbage that must not survive
    server.behaviour = [("norange", 0)]
    path = _download(server, tmp_path)
    assert Path(path).read_bytes() == PAYLOAD


def test_complete_part_file_is_verified_not_refetched(server, tmp_path):
    (tmp_path / "model.gguf.part").write_bytes(PAYLOAD)
    path = _download(server, tmp_path)
    assert Path(path).read_bytes() == PAYLOAD
    assert len(server.requests) == 1                                 # one range request, answered 416


def test_wrong_md5_deletes_the_download(server, tmp_path):
    with pytest.raises(ValueError, match="Expected MD5 hash"):
        _download(server, tmp_path, expected_md5="0" * 32)
    assert not (tmp_path / "model.gguf").exists()
    assert not (tmp_path / "model.gguf.part").exists()


def test_wrong_size_deletes_the_download(server, tmp_path):
    with pytest.raises(ValueError, match="Expected file size"):
        _download(server, tmp_path, expected_size=len(PAYLOAD) + 1, expected_md5=None)
    assert not list(tmp_path.iterdir())


def test_404_is_a_clear_error_and_leaves_nothing(server, tmp_path):
    with pytest.raises(ValueError, match="HTTP 404"):
        download_model("missing.gguf", tmp_path, verbose=False, url=server.url("/missing.gguf"))
    assert not list(tmp_path.iterdir())


def test_stalled_server_times_out_keeps_part_and_next_run_resumes(server, tmp_path):
    server.behaviour = [("stall", 50_000), ("stall", 0), ("stall", 0)]
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="not making progress"):
        _download(server, tmp_path, timeout=(2.0, 0.5))
    assert time.monotonic() - start < 10                              # bounded by the timeout, not the stall
    assert (tmp_path / "model.gguf.part").stat().st_size == 50_000
    assert not (tmp_path / "model.gguf").exists()
    path = _download(server, tmp_path)                                # the server is healthy again
    assert Path(path).read_bytes() == PAYLOAD
    assert server.requests[-1]["Range"] == "bytes=50000-"


# ------------------------------------------------------------------------------------------- retrieve_model

def _no_network(*args, **kwargs):
    raise AssertionError("the network was used")


def test_retrieve_present_file_never_touches_the_network(tmp_path, monkeypatch):
    monkeypatch.setattr(requests, "get", _no_network)
    (tmp_path / "orca-mini-3b-gguf2-q4_0.gguf").write_bytes(b"GGUF")
    config = catalogue.retrieve_model("orca-mini-3b-gguf2-q4_0", tmp_path, allow_download=True)
    assert config["path"] == str(tmp_path / "orca-mini-3b-gguf2-q4_0.gguf")
    # the bundled catalogue supplies the entry, with the 2.8-style {0} template the docs print
    assert config["promptTemplate"] == "### User:\n{0}\n\n### Response:\n"
    assert config["systemPrompt"].startswith("### System:\nYou are an AI assistant")


def test_retrieve_missing_file_without_download_raises(tmp_path, monkeypatch):
    monkeypatch.setattr(requests, "get", _no_network)
    with pytest.raises(FileNotFoundError, match="Model file does not exist"):
        catalogue.retrieve_model("orca-mini-3b-gguf2-q4_0.gguf", tmp_path, allow_download=False)
    with pytest.raises(FileNotFoundError, match="Model directory does not exist"):
        catalogue.retrieve_model("x.gguf", tmp_path / "nope", allow_download=False)


def test_retrieve_unknown_model_asks_the_online_catalogue_then_downloads(tmp_path, monkeypatch):
    entry = {"filename": "tiny.gguf", "url": None, "filesize": str(len(PAYLOAD)), "md5sum": MD5, "name": "Tiny",
             "promptTemplate": "Q: %1\nA: %2"}
    with FlakyServer({"/tiny.gguf": PAYLOAD}) as srv:
        entry["url"] = srv.url("/tiny.gguf")
        srv.files["/models3.json"] = json.dumps([entry]).encode()
        monkeypatch.setattr(catalogue, "CATALOGUE_URL", srv.url("/models3.json"))
        config = catalogue.retrieve_model("tiny", tmp_path, allow_download=True)
    assert Path(config["path"]).read_bytes() == PAYLOAD
    assert config["promptTemplate"] == "Q: {0}\nA: {1}"


def test_list_models_falls_back_to_the_bundled_copy(monkeypatch):
    def unreachable(*args, **kwargs):
        raise requests.ConnectionError("offline")
    monkeypatch.setattr(requests, "get", unreachable)
    with pytest.warns(UserWarning, match="bundled"):
        models = catalogue.list_models()
    assert len(models) == 32
    assert {"filename", "md5sum", "url"} <= set(models[1])


def test_gpt4all_downloads_into_the_default_directory_checked_for_size(tmp_path, monkeypatch, model_path):
    """Upstream's test_download_model, locally: DEFAULT_MODEL_DIRECTORY is a temporary folder, the catalogue
    and the file come from 127.0.0.1, and the downloaded model loads and generates."""
    import gpt4all.gpt4all as sdk
    from gpt4all import GPT4All

    source = model_path("smollm2-q4_1")
    data = source.read_bytes()
    entry = {"filename": "local-smollm2.gguf", "name": "Local SmolLM2", "filesize": str(len(data)),
             "md5sum": hashlib.md5(data).hexdigest(), "chatTemplate": None}
    with FlakyServer({"/local-smollm2.gguf": data}) as srv:
        entry["url"] = srv.url("/local-smollm2.gguf")
        srv.files["/models3.json"] = json.dumps([entry]).encode()
        srv.behaviour = [("ok", 0), ("cut", 10_000_000)]     # catalogue, then a first attempt that drops
        monkeypatch.setattr(catalogue, "CATALOGUE_URL", srv.url("/models3.json"))
        monkeypatch.setattr(sdk, "DEFAULT_MODEL_DIRECTORY", tmp_path)
        model = GPT4All(model_name="local-smollm2")
    assert srv.requests[-1]["Range"].startswith("bytes=")           # the dropped transfer was resumed
    model_file = tmp_path / model.config["filename"]
    assert model_file.absolute() == Path(model.config["path"]).absolute()
    assert model_file.stat().st_size == int(model.config["filesize"])
    assert model.generate("The capital of France is", temp=0, max_tokens=2).startswith(" Paris")
    with pytest.raises(ValueError, match="does not support chat"):    # its entry says chatTemplate: null
        with model.chat_session():
            pass
    model.close()
