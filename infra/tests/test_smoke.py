"""infra/smoke-test.sh against a stand-in for the deployed app on the loopback address."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import threading

import pytest

from names import ROOT

SCRIPT = ROOT / "infra" / "smoke-test.sh"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl missing")

ANSWERS = {
    "ok": (200, {"status": "ok", "model": {"name": "nb", "version": "1"}, "uptime_seconds": 3}),
    "no_model": (503, {"status": "no_model", "model": None, "last_model_error": None}),
    "broken": (500, {"error": {"code": "internal", "message": "boom"}}),
}


class App:
    """Answers GET /api/health with the answers given, one per request, the last one repeated."""

    def __init__(self, sequence: list[str]):
        self.sequence = list(sequence)
        self.paths: list[str] = []
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server API)
                app.paths.append(self.path)
                name = app.sequence.pop(0) if len(app.sequence) > 1 else app.sequence[0]
                code, body = ANSWERS[name]
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def smoke(url: str, require_model: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "SMOKE_SLEEP": "0", "SMOKE_ATTEMPTS": "10", "SMOKE_REQUIRE_MODEL": str(require_model).lower()}
    return subprocess.run(["bash", str(SCRIPT), url], env=env, capture_output=True, text=True, timeout=120)


def test_passes_when_a_model_serves():
    with App(["broken", "ok"]) as app:
        result = smoke(app.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert app.paths == ["/api/health", "/api/health"]


def test_no_model_passes_with_a_warning_after_six_answers():
    with App(["no_model"]) as app:
        result = smoke(app.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "::warning::" in result.stdout
    assert len(app.paths) == 6


def test_no_model_fails_when_a_model_is_required():
    with App(["no_model"]) as app:
        result = smoke(app.url, require_model=True)
    assert result.returncode == 1
    assert "::error::" in result.stdout


def test_fails_on_server_errors():
    with App(["broken"]) as app:
        result = smoke(app.url)
    assert result.returncode == 1
    assert "last HTTP 500" in result.stdout
    assert len(app.paths) == 10


def test_fails_when_nothing_answers():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The port was free a moment ago and nothing listens on it now.
    result = smoke(f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert "last HTTP 000" in result.stdout
