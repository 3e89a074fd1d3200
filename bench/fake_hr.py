#!/usr/bin/env python3
"""A minimal stand-in for an HR service's API, for bench/run.sh: answers the
users list, and every posted batch with a per-item "created" result, over
keep-alive connections. Counts the logs it received and the repeated ones."""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

seen = set()
repeated = 0
lock = threading.Lock()
USERS = json.dumps({"users": [{"enrollid": i, "name": f"User {i}", "admin": 0, "is_enabled": True,
                               "weekzone": 1, "group": 0} for i in range(1, 501)]}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes

    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/count":
            self.answer(json.dumps({"received": len(seen), "repeated": repeated}).encode())
        else:
            self.answer(USERS)

    def do_POST(self):
        global repeated
        batch = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        ids = [item["log_id"] for item in batch["attendance"]]
        with lock:
            repeated += sum(1 for i in ids if i in seen)
            seen.update(ids)
        self.answer(json.dumps({"results": [{"log_id": i, "status": "created"} for i in ids]}).encode())

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
