# SPDX-License-Identifier: MIT
"""Shared helpers for the telemetry test drivers (python3 standard library only).

Every process started here is killed when the test ends, however it ends: it is registered for
atexit and SIGTERM/SIGINT cleanup, and it gets PR_SET_PDEATHSIG so that even a SIGKILL of the
test driver (a ctest timeout) takes it down.
"""
import atexit
import ctypes
import http.client
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

SKIP = 77  # ctest SKIP_RETURN_CODE
_children = []


def _die_with_parent():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _cleanup():
    for p in _children:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def _on_signal(signo, _frame):
    _cleanup()
    sys.exit(128 + signo)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def spawn(argv, **kw):
    """Popen that is always cleaned up."""
    p = subprocess.Popen(argv, preexec_fn=_die_with_parent, **kw)
    _children.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=20):
    """Signals p and waits for it; returns its exit status (kills it after `timeout`)."""
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError(f"{p.args[0]} did not stop within {timeout}s of signal {sig}")
    return p.returncode


def need_tool(name):
    """Path of a tool; when it is missing, fail in CI (CI=true) and skip locally."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI") == "true":
        print(f"FAIL: {name} is required in CI but not installed "
              f"(apt-get install --no-install-recommends prometheus)", file=sys.stderr)
        sys.exit(1)
    print(f"SKIP: {name} not installed", file=sys.stderr)
    sys.exit(SKIP)


def read_line(p, deadline_s=30):
    """The next line of p's stdout, waiting at most deadline_s (the process writes it)."""
    end = time.monotonic() + deadline_s
    buf = b""
    fd = p.stdout.fileno()
    while not buf.endswith(b"\n"):
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no line from {p.args[0]} within {deadline_s}s (got {buf!r})")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 1)
            if not chunk:
                raise AssertionError(f"{p.args[0]} exited (status {p.wait()}) before writing a "
                                     f"line (got {buf!r})")
            buf += chunk
    return buf.decode()


def start_demo(demo, *args, scheme="http"):
    """Starts tslab-demo on an ephemeral loopback port; returns (process, port)."""
    p = spawn([demo, "--listen", "127.0.0.1:0", "--quiet", *args], stdout=subprocess.PIPE)
    line = read_line(p)
    m = re.fullmatch(r"listening on " + scheme + r"://127\.0\.0\.1:(\d+)/\n", line)
    assert m, f"unexpected first line from tslab-demo: {line!r}"
    return p, int(m.group(1))


def get(port, path="/metrics", headers=None, method="GET", host="127.0.0.1", source=None,
        timeout=10):
    """(status, headers dict with lower-case names, body bytes)."""
    c = http.client.HTTPConnection(host, port, timeout=timeout,
                                   source_address=(source, 0) if source else None)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


def free_port():
    """A loopback port that was free a moment ago (for programs that cannot take port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert port != 9090
    return port


def parse_prom(text):
    """{series: value} of a Prometheus/OpenMetrics text body, and {family: type}."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
        elif line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            samples[series] = float(value)
    return samples, types


class Checks:
    """Collects failures so one run reports all of them."""

    def __init__(self, name):
        self.name = name
        self.failures = 0

    def check(self, cond, what):
        if not cond:
            print(f"FAIL: {what}", file=sys.stderr)
            self.failures += 1
        return cond

    def done(self):
        if self.failures:
            print(f"{self.name}: {self.failures} check(s) failed", file=sys.stderr)
            return 1
        print(f"{self.name}: all checks passed")
        return 0
