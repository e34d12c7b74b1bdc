#!/usr/bin/env python3
"""HTTP robustness of the exporter, against tslab-demo: malformed request lines, oversized
headers, unknown methods, 200 idle connections, slow clients (writer and reader), pipelining,
half-closed connections. After each, the exporter must still answer a scrape with valid content.

usage: http_robustness.py TSLAB_DEMO
"""
import select
import socket
import sys
import threading
import time

import demolib

checks = demolib.Checks("http_robustness")
demo, port = None, None


def still_serving(after, source=None, retry_for=0.0):
    """A normal scrape answers 200 with the metrics. With retry_for, connection errors are
    retried for that long (for when the exporter has yet to notice connections the test just
    closed, which still count against the per-IP limit)."""
    end = time.monotonic() + retry_for
    while True:
        try:
            status, headers, body = demolib.get(port, "/metrics", source=source)
            ok = (status == 200 and b"tslab_build_info{" in body
                  and headers.get("content-type", "").startswith("text/plain; version=0.0.4"))
            break
        except OSError as e:
            ok = False
            if time.monotonic() >= end:
                print(f"  scrape error: {e}", file=sys.stderr)
                break
            time.sleep(0.05)
    checks.check(ok, f"exporter still answers /metrics after: {after}")
    checks.check(demo.poll() is None, f"tslab-demo still running after: {after}")


def connect(source=None, timeout=10):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source, 0) if source else None)


def finish(s):
    """Half-closes s (the server sees EOF, so it need not wait for more of a request it cannot
    parse) and returns everything it answers until it closes."""
    try:
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:  # already reset by the server
            return b""
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def raw(data, source=None):
    """Sends bytes on a fresh connection; returns the reply bytes (b'' when closed without one)."""
    s = connect(source)
    try:
        s.sendall(data)
    except OSError:  # the server may close before reading everything
        pass
    return finish(s)


def status_of(reply):
    if not reply.startswith(b"HTTP/1."):
        return None
    return int(reply.split(b" ", 2)[1])


def malformed():
    cases = [
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /metrics\r\n\r\n",  # HTTP/0.9 style
        b"GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /metrics HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        b"\x00\x01\x02\xff\xfe binary \r\n\r\n",
        b"GET /" + b"A" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # 100 KB request line
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
        b"\r\n\r\n\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n",  # never finished, then half-closed
    ]
    for data in cases:
        s = connect()
        try:
            s.sendall(data)
        except OSError:
            pass
        still_serving(f"malformed request {data[:40]!r} pending")  # while it is open
        st = status_of(finish(s))
        checks.check(st is None or st >= 400,
                      f"malformed request {data[:40]!r} answered {st}, expected 4xx/5xx or close")
        still_serving(f"malformed request {data[:40]!r}")


def oversized_headers():
    big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n"
    st = status_of(raw(big))
    checks.check(st in (None, 413, 431), f"100 KB header answered {st}, expected 431/413/close")
    still_serving("a 100 KB header")
    many = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n"
    st = status_of(raw(many))
    checks.check(st in (None, 413, 431), f"5000 headers answered {st}, expected 431/413/close")
    still_serving("5000 headers")


def unknown_methods():
    for m in [b"BREW", b"POST", b"PUT", b"DELETE", b"PROPFIND", b"CONNECT", b"X" * 300]:
        reply = raw(m + b" /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        st = status_of(reply)
        checks.check(st in (405, 400, 501), f"method {m[:20]!r} answered {st}")
        if st == 405:
            checks.check(b"Allow: GET, HEAD" in reply, f"405 for {m[:20]!r} lacks Allow header")
        still_serving(f"method {m[:20]!r}")
    st = status_of(raw(b"BREW /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    checks.check(st == 405, f"BREW answered {st}, expected 405")


def idle_connections():
    """200 idle connections from one address: the per-IP limit (16 by default) closes the
    excess at once, another address is served meanwhile, and all is well once they go."""
    socks = []
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                     source_address=("127.0.0.1", 0))
        socks.append(s)
    # Wait (event-driven, bounded) until the exporter has closed the ones over the limit.
    closed = set()
    deadline = time.monotonic() + 10
    while len(closed) < 200 - 16 and time.monotonic() < deadline:
        r, _, _ = select.select([s for s in socks if s not in closed], [], [],
                                max(0.0, deadline - time.monotonic()))
        for s in r:
            try:
                if s.recv(1) == b"":
                    closed.add(s)
            except ConnectionResetError:
                closed.add(s)
    checks.check(len(closed) >= 200 - 16,
                 f"only {len(closed)} of 200 idle connections were refused by the per-IP limit")
    still_serving("200 idle connections, from another address", source="127.0.0.2")
    for s in socks:
        s.close()
    still_serving("200 idle connections closed", retry_for=5)


def slow_clients():
    # A writer sending its request one byte every 40 ms, while another client is served at once.
    req = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    result = {}

    def slow_writer():
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        for i in range(len(req)):
            s.sendall(req[i:i + 1])
            time.sleep(0.04)  # the slowness under test, not synchronisation
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        s.close()
        result["status"] = status_of(out)

    t = threading.Thread(target=slow_writer)
    t.start()
    t0 = time.monotonic()
    still_serving("a slow writer, concurrently")
    checks.check(time.monotonic() - t0 < 1.5, "a scrape waited behind a slow writer")
    t.join()
    checks.check(result.get("status") == 200, f"slow writer got {result.get('status')}")

    # A reader that requests the metrics many times and reads nothing (tiny receive buffer).
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.connect(("127.0.0.1", port))
    s.settimeout(10)
    pipelined = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 50
    try:
        s.sendall(pipelined)
    except OSError:
        pass
    t0 = time.monotonic()
    still_serving("a client that does not read its replies")
    checks.check(time.monotonic() - t0 < 1.0, "a scrape waited behind a stalled reader")
    s.close()
    still_serving("the stalled reader went away")


def pipelining_and_half_close():
    two = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reply = raw(two)
    checks.check(reply.count(b"HTTP/1.1 200") == 2, f"pipelined requests: {reply[:200]!r}")
    # Half-closed after a keep-alive request: the reply still comes (libmicrohttpd may then keep
    # the connection until its timeout, so read by Content-Length, not to EOF).
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    s.shutdown(socket.SHUT_WR)
    out = b""
    while b"\r\n\r\nok\n" not in out:
        chunk = s.recv(4096)
        if not chunk:
            break
        out += chunk
    s.close()
    checks.check(out.startswith(b"HTTP/1.1 200") and out.endswith(b"\r\n\r\nok\n"),
                 f"half-closed request answered {out[:40]!r}")
    # a client that connects and disappears at once, 100 times
    for _ in range(100):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # RST
    still_serving("pipelining, half-close and 100 resets", retry_for=5)


def main():
    global demo, port
    demo, port = demolib.start_demo(sys.argv[1], "--threads", "2")
    still_serving("start")
    malformed()
    oversized_headers()
    unknown_methods()
    idle_connections()
    slow_clients()
    pipelining_and_half_close()
    rc = demolib.stop(demo)
    checks.check(rc == 0, f"tslab-demo exited {rc} after SIGTERM")
    return checks.done()


if __name__ == "__main__":
    sys.exit(main())
