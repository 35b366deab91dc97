#!/usr/bin/env python3
"""A webhook receiver for the xianjie hub, in Python's standard library only.

Run:  XJ_WEBHOOK_SECRET=whsec_... python3 receiver.py [port]

It does what docs/integration.md asks of every receiver:
  * verifies `webhook-signature` (Standard Webhooks: HMAC-SHA256 over
    "<webhook-id>.<webhook-timestamp>.<body>" with the organisation's
    secret) and refuses, with 401, a delivery that does not verify or whose
    timestamp is more than five minutes away;
  * stores each delivery once, keyed by `webhook-id` (sender, message id and
    recipient), and acknowledges a repeat with 200 without storing it again;
  * answers at once (the hub waits at most [courier] timeout_ms).
GET / lists what it stored, as JSON. Replace `store` with your system's
own intake; keep the checks.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 5 * 60
SECRET = os.environ.get("XJ_WEBHOOK_SECRET", "")
if not SECRET.startswith("whsec_"):
    sys.exit("set XJ_WEBHOOK_SECRET to the organisation's whsec_… secret (xj webhook-secret --org <id>)")
KEY = base64.b64decode(SECRET[len("whsec_"):])

stored = {}  # webhook-id -> delivery; your database in real life
lock = threading.Lock()


def verify(headers, body):
    """Why the delivery must be refused, or None when it verifies."""
    hook_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (hook_id and stamp and signatures):
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    try:
        at = int(stamp)
    except ValueError:
        return "webhook-timestamp is not a number"
    if abs(time.time() - at) > TOLERANCE_SECONDS:
        return "webhook-timestamp is more than five minutes away: a replay?"
    signed = hook_id.encode() + b"." + stamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures.split(" "):
        version, _, sig = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            return None
    return "webhook-signature does not verify"


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, payload):
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        why = verify(self.headers, body)
        if why:
            return self.answer(401, {"error": why})
        hook_id = self.headers["webhook-id"]
        with lock:
            if hook_id in stored:
                return self.answer(200, {"duplicate": True})
            stored[hook_id] = {
                "webhook_id": hook_id,
                "sender": self.headers.get("Xj-Sender"),
                "message_id": self.headers.get("Xj-Message-Id"),
                "case": self.headers.get("Xj-Case"),
                "attempt": self.headers.get("Xj-Delivery-Attempt"),
                "body": body.decode("utf-8", "replace"),
            }
        self.answer(200, {"stored": True})

    def do_GET(self):
        with lock:
            self.answer(200, list(stored.values()))

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8090
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/", flush=True)
    server.serve_forever()
