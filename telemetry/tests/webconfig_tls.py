#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The exporter's web configuration end to end (issue 15): TLS, basic auth with bcrypt, client
certificates and response headers, against tslab-demo --web.config.file, with certificates made
by openssl at test time and bcrypt hashes made by libcrypt (test_webconfig --bcrypt).

1. TLS + basic auth: the right password is served over HTTPS with the configured headers; a
   wrong or missing password gets 401 (/healthz needs none); plain HTTP to the TLS port gets no
   HTTP answer; a real Prometheus scrapes it (scheme https, tls_config.ca_file, basic_auth) and
   the target is up, while a second job with a wrong password is down with a 401.
2. Client certificates, for each client_auth_type: RequireAndVerifyClientCert serves a
   certificate from the CA and refuses none, an expired one and one from another CA (no HTTP
   answer); VerifyClientCertIfGiven also serves none; RequireAnyClientCert refuses only none;
   RequestClientCert serves all.
3. The bearer token from --bearer-token-file and from TSLAB_BEARER_TOKEN; a malformed web
   configuration stops the demo with a message naming the file and line.

usage: webconfig_tls.py TSLAB_DEMO TEST_WEBCONFIG
"""
import base64
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile

import demolib
import prometheus_scrape as ps

checks = demolib.Checks("webconfig_tls")
demo_bin, helper = sys.argv[1], sys.argv[2]
tmp = tempfile.mkdtemp(prefix="tslab-tls-")


def run(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp)


def path(name):
    return os.path.join(tmp, name)


def make_certs(openssl):
    """A CA, a server certificate for 127.0.0.1/localhost, a good client certificate, an
    expired one (signed by the same CA, valid in 2020 only) and one from another CA."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        run(openssl, "req", "-x509", *key, "-keyout", path(f"{ca}.key"), "-out", path(f"{ca}.crt"),
            "-days", "2", "-subj", f"/CN=tslab test {ca}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    with open(path("server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                "basicConstraints=CA:FALSE\n")
    with open(path("client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    for name, ca, ext in (("server", "ca", "server.ext"), ("client", "ca", "client.ext"),
                          ("foreign", "other-ca", "client.ext")):
        run(openssl, "req", "-new", *key, "-keyout", path(f"{name}.key"), "-out",
            path(f"{name}.csr"), "-subj", f"/CN=tslab {name}")
        run(openssl, "x509", "-req", "-in", path(f"{name}.csr"), "-CA", path(f"{ca}.crt"),
            "-CAkey", path(f"{ca}.key"), "-CAcreateserial", "-days", "2", "-extfile", path(ext),
            "-out", path(f"{name}.crt"))
    # Expired: `openssl ca` is the tool of 3.0 that takes explicit dates.
    with open(path("ca.cnf"), "w") as f:
        f.write(f"""[ca]
default_ca = d
[d]
database = {path("index.txt")}
new_certs_dir = {tmp}
serial = {path("serial")}
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
[client_ext]
extendedKeyUsage = clientAuth
basicConstraints = CA:FALSE
""")
    open(path("index.txt"), "w").close()
    with open(path("serial"), "w") as f:
        f.write("1000\n")
    run(openssl, "req", "-new", *key, "-keyout", path("expired.key"), "-out", path("expired.csr"),
        "-subj", "/CN=tslab expired")
    run(openssl, "ca", "-batch", "-config", path("ca.cnf"), "-cert", path("ca.crt"), "-keyfile",
        path("ca.key"), "-in", path("expired.csr"), "-out", path("expired.crt"), "-notext",
        "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-extensions",
        "client_ext")


def bcrypt(password):
    out = subprocess.run([helper, "--bcrypt", password], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert out.startswith("$2b$") and len(out) == 60, out
    return out


def tls_context(cert=None):
    ctx = ssl.create_default_context(cafile=path("ca.crt"))
    if cert:
        ctx.load_cert_chain(path(f"{cert}.crt"), path(f"{cert}.key"))
    return ctx


def https_get(port, target="/metrics", user=None, password=None, cert=None):
    """(status, headers, body) over TLS; raises OSError/ssl.SSLError when refused."""
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=tls_context(cert))
    try:
        headers = {}
        if user is not None:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        c.request("GET", target, headers=headers)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def refused(port, cert):
    try:
        status, _, _ = https_get(port, cert=cert)
        print(f"  {cert or 'no'} client certificate answered {status}", file=sys.stderr)
        return False
    except (OSError, ssl.SSLError, http.client.HTTPException):
        return True


def plain_http_refused(port):
    """Plain HTTP to the TLS port: no HTTP status line comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        out = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
        except OSError:
            pass
    return not out.startswith(b"HTTP/")


def tls_and_basic_auth(prometheus):
    hash_ = bcrypt("correct horse")
    with open(path("web.yml"), "w") as f:
        f.write(f"""tls_server_config:
  cert_file: {path("server.crt")}
  key_file: {path("server.key")}
http_server_config:
  headers:
    X-Frame-Options: deny
    X-Content-Type-Options: nosniff
basic_auth_users:
  prometheus: '{hash_}'
""")
    demo, port = demolib.start_demo(demo_bin, "--web.config.file", path("web.yml"),
                                    scheme="https")
    status, headers, body = https_get(port, user="prometheus", password="correct horse")
    checks.check(status == 200 and b"tslab_build_info{" in body, f"right password: {status}")
    checks.check(headers.get("x-frame-options") == "deny"
                 and headers.get("x-content-type-options") == "nosniff",
                 f"configured headers missing: {headers}")
    for user, pw in (("prometheus", "wrong"), ("prometheus", ""), ("nobody", "correct horse"),
                     (None, None)):
        status, headers, body = https_get(port, user=user, password=pw)
        checks.check(status == 401 and b"tslab_" not in body, f"{user}/{pw!r}: {status}")
        checks.check(headers.get("www-authenticate", "").startswith("Basic"),
                     f"401 without a Basic challenge: {headers}")
    status, _, _ = https_get(port, "/healthz")
    checks.check(status == 200, f"/healthz without a password: {status}")
    checks.check(plain_http_refused(port), "plain HTTP to the TLS port got an HTTP answer")
    status, _, _ = https_get(port, user="prometheus", password="correct horse")
    checks.check(status == 200, f"served again after plain HTTP: {status}")

    if prometheus is None:
        print("  prometheus not installed: the scrape part is skipped", file=sys.stderr)
    else:
        prom_tmp = tempfile.mkdtemp(prefix="tslab-prom-", dir=tmp)
        jobs = ""
        for job, pw in (("tls-good", "correct horse"), ("tls-wrong", "incorrect")):
            jobs += f"""  - job_name: {job}
    scheme: https
    tls_config:
      ca_file: {path("ca.crt")}
    basic_auth:
      username: prometheus
      password: '{pw}'
    static_configs:
      - targets: ['127.0.0.1:{port}']
"""
        prom, prom_port = ps.start_prometheus(prometheus, prom_tmp, port, scrape_configs=jobs)

        def targets_settled():
            seen = {}
            for t in ps.api(prom_port, "/api/v1/targets")["activeTargets"]:
                if t["health"] != "unknown":
                    seen[t["labels"]["job"]] = t
            return seen if len(seen) == 2 and seen["tls-good"]["health"] == "up" else None

        seen = ps.poll("both TLS targets to be scraped", targets_settled, 60)
        checks.check(seen["tls-wrong"]["health"] == "down"
                     and "401" in seen["tls-wrong"].get("lastError", ""),
                     f"wrong password target: {seen['tls-wrong']}")
        rows = ps.poll("series from the TLS target",
                       lambda: ps.query(prom_port, 'tslab_build_info{job="tls-good"}'), 30)
        checks.check(len(rows) == 1 and rows[0][1] == 1.0, f"tslab_build_info over TLS: {rows}")
        checks.check(demolib.stop(prom) in (0, -15), "prometheus did not stop cleanly")
    checks.check(demolib.stop(demo) == 0, "tslab-demo exited nonzero")


def client_certificates():
    """Each client_auth_type: which of no, good, expired and foreign certificates is served."""
    modes = {
        "RequireAndVerifyClientCert": {None: False, "client": True, "expired": False,
                                       "foreign": False},
        "VerifyClientCertIfGiven": {None: True, "client": True, "expired": False,
                                    "foreign": False},
        "RequireAnyClientCert": {None: False, "client": True, "expired": True, "foreign": True},
        "RequestClientCert": {None: True, "client": True, "expired": True, "foreign": True},
    }
    for mode, expect in modes.items():
        with open(path("mtls.yml"), "w") as f:
            f.write(f"""tls_server_config:
  cert_file: {path("server.crt")}
  key_file: {path("server.key")}
  client_auth_type: {mode}
  client_ca_file: {path("ca.crt")}
""")
        demo, port = demolib.start_demo(demo_bin, "--web.config.file", path("mtls.yml"),
                                        scheme="https")
        for cert, served in expect.items():
            if served:
                status, _, body = https_get(port, cert=cert)
                checks.check(status == 200 and b"tslab_build_info{" in body,
                             f"{mode}: {cert or 'no'} client certificate answered {status}")
            else:
                checks.check(refused(port, cert),
                             f"{mode}: {cert or 'no'} client certificate was served")
        status, _, _ = https_get(port, cert="client")  # still serving after refusals
        checks.check(status == 200, f"{mode}: good client cert after refusals: {status}")
        checks.check(demolib.stop(demo) == 0, "tslab-demo exited nonzero")


def bearer_token_sources():
    with open(path("token"), "w") as f:
        f.write("  file-token\n")
    for args, env, token in ((["--bearer-token-file", path("token")], {}, "file-token"),
                             ([], {"TSLAB_BEARER_TOKEN": "env-token"}, "env-token")):
        old = dict(os.environ)
        os.environ.update(env)
        try:
            demo, port = demolib.start_demo(demo_bin, *args)
        finally:
            os.environ.clear()
            os.environ.update(old)
        status, _, _ = demolib.get(port, "/metrics")
        checks.check(status == 401, f"{args or env}: no token answered {status}")
        status, _, _ = demolib.get(port, "/metrics",
                                   headers={"Authorization": f"Bearer {token}"})
        checks.check(status == 200, f"{args or env}: right token answered {status}")
        checks.check(demolib.stop(demo) == 0, "tslab-demo exited nonzero")
    # not in the command line: ps shows no token
    # A malformed web configuration stops the demo with file and line.
    with open(path("bad.yml"), "w") as f:
        f.write("tls_server_config:\n  cert_file: [x]\n")
    r = subprocess.run([demo_bin, "--listen", "127.0.0.1:0", "--quiet", "--duration", "1",
                        "--web.config.file", path("bad.yml")], capture_output=True, text=True,
                       timeout=30)
    checks.check(r.returncode == 1 and "bad.yml:2: tls_server_config.cert_file must be a string"
                 in r.stderr, f"malformed web config: {r.returncode} {r.stderr!r}")


def main():
    openssl = demolib.need_tool("openssl")
    prometheus = shutil.which("prometheus")
    if prometheus is None and os.environ.get("CI") == "true":
        demolib.need_tool("prometheus")  # fails in CI
    try:
        make_certs(openssl)
        tls_and_basic_auth(prometheus)
        client_certificates()
        bearer_token_sources()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return checks.done()


if __name__ == "__main__":
    sys.exit(main())
