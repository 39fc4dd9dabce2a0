"""A webhook guard for bench/run.sh (WEBHOOK_MS): answers every POST with {"action": "allow"}
after a fixed delay, standing in for a remote classifier. Usage: webhook.py PORT DELAY_MS"""

import http.server
import json
import sys
import time

PORT, DELAY = int(sys.argv[1]), float(sys.argv[2]) / 1000
BODY = json.dumps({"action": "allow"}).encode()


class Verdict(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        time.sleep(DELAY)
        self.reply(BODY)

    def do_GET(self):
        self.reply(b"")

    def reply(self, body):
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Verdict).serve_forever()
