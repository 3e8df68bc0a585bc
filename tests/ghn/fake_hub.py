"""A local HTTP server posing as the Hugging Face hub (for HF_ENDPOINT), serving given files."""
import hashlib
import http.server
import threading


class FakeHub:
    """Serves {'<repo>/resolve/main/<file>': bytes} on 127.0.0.1; counts GET requests."""

    def __init__(self, files):
        self.files = files
        self.gets = 0
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _head(self):
                path = self.path.split("?")[0].lstrip("/")
                data = hub.files.get(path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.end_headers()
                    return None
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", '"%s"' % hashlib.sha256(data).hexdigest())
                self.send_header("X-Repo-Commit", "0" * 40)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                return data

            def do_HEAD(self):
                self._head()

            def do_GET(self):
                data = self._head()
                if data is not None:
                    hub.gets += 1
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
