"""A reference policy hook: refuses serials (or chip ids) matching a pattern, signs its answers.

A real deployment writes its own hook (any language: read the JSON query, sign
``answer_message`` with ECDSA P-256); this one serves the demo and the tests on 127.0.0.1.
``delay_s`` and ``sign_with`` let tests play a slow hook and a hook with the wrong key.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from birthright.policyhook.model import sign_answer


class ReferenceHook:
    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        *,
        refuse_serials: str | None = None,
        reason: str = "refused by policy",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.key = key
        self.refuse = re.compile(refuse_serials) if refuse_serials else None
        self.reason = reason
        #: Seconds to wait before answering (a slow hook).
        self.delay_s = 0.0
        #: Sign with another key (a hook whose answers must not count).
        self.sign_with: ec.EllipticCurvePrivateKey | None = None
        #: Answer with this body instead (malformed or replayed answers).
        self.raw_answer: bytes | None = None
        self.queries: list[dict[str, Any]] = []
        self.answers: list[bytes] = []
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/decide"

    def start(self) -> ReferenceHook:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def decide(self, query: dict[str, Any]) -> tuple[str, str]:
        if self.refuse is not None and self.refuse.search(str(query.get("serial", ""))):
            return "refuse", self.reason
        return "allow", ""

    def _answer(self, body: bytes) -> bytes:
        query = json.loads(body)
        self.queries.append(query)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.raw_answer is not None:
            return self.raw_answer
        decision, reason = self.decide(query)
        answer = json.dumps(sign_answer(self.sign_with or self.key, query, decision, reason))
        self.answers.append(answer.encode())
        return answer.encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            # headers and body leave in one segment: no Nagle / delayed-ACK stall per answer
            disable_nagle_algorithm = True
            wbufsize = 64 * 1024

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                try:
                    data = hook._answer(self.rfile.read(min(length, 64 * 1024)))
                except (ValueError, KeyError):
                    self.send_error(400)
                    return
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the caller gave up (timeout): nothing to do

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the service logs the decision."""

        return Handler
