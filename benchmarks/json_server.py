"""A local HTTP server on 127.0.0.1 that answers each POST with JSON, one thread per request.

The benchmarks that stand in for an OpenAI-compatible LLM server (``llm_pool.py``,
``scale.py``) give it ``respond(path, request) -> answer``; what the answer costs (a
sleep, nothing) is theirs to choose.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JSONServer:
    def __init__(self, respond: Callable[[str, dict], dict]):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                body = json.dumps(respond(self.path, request)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.http.request_queue_size = 256
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
