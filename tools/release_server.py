# An HTTPS server over release folders (tools/release.py builds them), for the bench,
# the fleet script and the tests: https://127.0.0.1:PORT/<folder>/manifest.json, with
# the test PKI's gateway certificate (the device trusts it through update.ca).
import http.server
import os
import ssl
import threading


class ReleaseServer:
    # HTTPS over the release folders; `faults` maps a path to "404", "500", "hang" (head
    # sent, then silence) or "cut" (the head promises every byte, half of them come).
    def __init__(self, root, pki):
        self.root = root
        self.faults = {}
        self.gets = []   # the paths asked for, in order
        self.hung = threading.Event()
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                srv.gets.append(self.path)
                fault = srv.faults.get(self.path)
                if fault in ("404", "500"):
                    self.send_error(int(fault))
                    return
                p = os.path.join(srv.root, *self.path.lstrip("/").split("/"))
                if not os.path.isfile(p):
                    self.send_error(404)
                    return
                body = open(p, "rb").read()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault == "hang":
                    self.wfile.flush()
                    srv.hung.wait(30)
                    return
                self.wfile.write(body[:len(body) // 2] if fault == "cut" else body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(pki, "gateway.pem"), os.path.join(pki, "gateway.key.pem"))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name):
        return "https://127.0.0.1:%d/%s/manifest.json" % (self.port, name)

    def stop(self):
        self.hung.set()
        self.httpd.shutdown()
