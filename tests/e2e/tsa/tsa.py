"""A local RFC 3161 time-stamping authority for the tests: OpenSSL's own
`openssl ts -reply` behind an HTTP server, with a root CA and a TSA
certificate (extendedKeyUsage critical timeStamping) made at start.

    python3 tsa.py DIR    # prints the port it listens on, then serves

DIR receives ca.pem (to verify tokens with `openssl ts -verify`), the TSA's
key and certificate, and one query/reply per request."""

import http.server
import os
import subprocess
import sys
import threading

DIR = sys.argv[1]
os.makedirs(DIR, exist_ok=True)


def sh(*args):
    subprocess.run(args, check=True, capture_output=True, cwd=DIR)


def setup():
    with open(os.path.join(DIR, "ext.cnf"), "w") as f:
        f.write("[tsa_ext]\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\n"
                "extendedKeyUsage = critical, timeStamping\n"
                "[ca_ext]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n")
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
       "-days", "30", "-subj", "/C=CN/O=xianjie test/CN=Test Root CA",
       "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tsa.key", "-out", "tsa.csr",
       "-subj", "/C=CN/O=xianjie test/CN=Test TSA")
    sh("openssl", "x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
       "-out", "tsa.pem", "-days", "30", "-extfile", "ext.cnf", "-extensions", "tsa_ext")
    with open(os.path.join(DIR, "tsa.cnf"), "w") as f:
        f.write(f"""[tsa]
default_tsa = tsa1
[tsa1]
dir = {DIR}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ess_cert_id_alg = sha256
""")
    with open(os.path.join(DIR, "serial"), "w") as f:
        f.write("01\n")


LOCK = threading.Lock()
COUNT = [0]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        query = self.rfile.read(n)
        with LOCK:
            COUNT[0] += 1
            q = os.path.join(DIR, f"q{COUNT[0]}.tsq")
            r = os.path.join(DIR, f"r{COUNT[0]}.tsr")
            with open(q, "wb") as f:
                f.write(query)
            done = subprocess.run(["openssl", "ts", "-reply", "-config", os.path.join(DIR, "tsa.cnf"),
                                   "-queryfile", q, "-out", r], capture_output=True)
        if done.returncode != 0:
            self.send_response(400)
            self.end_headers()
            self.wfile.write(done.stderr)
            return
        with open(r, "rb") as f:
            reply = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


setup()
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
