#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""HTTP robustness of the exporter, against tslab-demo: malformed request lines, oversized
headers, unknown methods, 200 idle connections, slow clients (writer and reader), pipelining,
half-closed connections, abandoned requests, and 200 slow attackers from the scraper's own
address (issue 11: a normal scrape must still succeed within 2 s in at least 99 of 100 tries,
and /healthz must answer within 1 s of the attackers leaving). After each, the exporter must still answer a scrape with valid content.

usage: http_robustness.py TSLAB_DEMO
"""
import json
import select
import selectors
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
        b"GET /metrics HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /metrics HTTP/1.1 extra\r\nHost: 127.0.0.1\r\n\r\n",
        b"\x00\x01\x02\xff\xfe binary \r\n\r\n",
        b"GET /" + b"A" * 100000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # 100 KB request line
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
        b"\r\n\r\n\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # never finished, then half-closed
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
    big = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n"
    st = status_of(raw(big))
    checks.check(st in (None, 413, 431), f"100 KB header answered {st}, expected 431/413/close")
    still_serving("a 100 KB header")
    many = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(
        b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n"
    st = status_of(raw(many))
    checks.check(st in (None, 413, 431), f"5000 headers answered {st}, expected 431/413/close")
    still_serving("5000 headers")


def unknown_methods():
    for m in [b"BREW", b"POST", b"PUT", b"DELETE", b"PROPFIND", b"CONNECT", b"X" * 300]:
        reply = raw(m + b" /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        st = status_of(reply)
        checks.check(st in (405, 400, 501), f"method {m[:20]!r} answered {st}")
        if st == 405:
            checks.check(b"Allow: GET, HEAD" in reply, f"405 for {m[:20]!r} lacks Allow header")
        still_serving(f"method {m[:20]!r}")
    st = status_of(raw(b"BREW /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))
    checks.check(st == 405, f"BREW answered {st}, expected 405")


def idle_connections():
    """200 idle connections from one address: the per-IP limit (16 by default) evicts the
    excess (the oldest, once past their short grace), another address is served meanwhile, and
    all is well once they go."""
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
                 f"only {len(closed)} of 200 idle connections were evicted by the per-IP limit")
    still_serving("200 idle connections, from another address", source="127.0.0.2")
    for s in socks:
        s.close()
    still_serving("200 idle connections closed", retry_for=5)


def slow_clients():
    # A writer sending its request one byte every 40 ms, while another client is served at once.
    req = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
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
    pipelined = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 50
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
    two = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    reply = raw(two)
    checks.check(reply.count(b"HTTP/1.1 200") == 2, f"pipelined requests: {reply[:200]!r}")
    # Half-closed after a keep-alive request: the reply still comes (libmicrohttpd may then keep
    # the connection until its timeout, so read by Content-Length, not to EOF).
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
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


def abandoned_requests():
    """16 connections from 127.0.0.1 send part of a request and close: the next scrape from the
    same address is served at once (no retry)."""
    for _ in range(16):
        s = connect("127.0.0.1")
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Partial: ")
        s.close()
    still_serving("16 abandoned partial requests", source="127.0.0.1")


SLOW_ATTACKERS = 200


def slow_attack():
    """200 connections from 127.0.0.1, each sending one header byte a second and reconnecting
    whenever the exporter closes it, while a normal client scrapes from the same address."""
    stop = threading.Event()
    stats = {"opened": 0, "closed": 0, "max_open": 0, "error": None}
    head = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "

    def attacker():
        sel = selectors.DefaultSelector()

        def open_one():
            s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                         source_address=("127.0.0.1", 0))
            s.setblocking(False)
            try:
                s.send(head)
            except OSError:
                pass
            sel.register(s, selectors.EVENT_READ)
            stats["opened"] += 1

        try:
            for _ in range(SLOW_ATTACKERS):
                open_one()
            next_byte = time.monotonic() + 1.0
            while not stop.is_set():
                stats["max_open"] = max(stats["max_open"], len(sel.get_map()))
                # the attack's own pace (one byte a second), not synchronisation
                for key, _ in sel.select(timeout=max(0.0, min(0.1, next_byte - time.monotonic()))):
                    s = key.fileobj
                    try:
                        gone = s.recv(4096) == b""
                    except BlockingIOError:
                        gone = False
                    except OSError:
                        gone = True
                    if gone:
                        sel.unregister(s)
                        s.close()
                        stats["closed"] += 1
                        if not stop.is_set():
                            open_one()
                if time.monotonic() >= next_byte:
                    next_byte += 1.0
                    for key in list(sel.get_map().values()):
                        try:
                            key.fileobj.send(b"a")
                        except OSError:
                            pass
        except Exception as e:  # reported by the main thread
            stats["error"] = repr(e)
        finally:
            for key in list(sel.get_map().values()):
                key.fileobj.close()
            sel.close()

    t = threading.Thread(target=attacker)
    t.start()
    # Wait (bounded) until all 200 are open, so every scrape below competes with them.
    deadline = time.monotonic() + 20
    while stats["opened"] < SLOW_ATTACKERS and stats["error"] is None and time.monotonic() < deadline:
        time.sleep(0.01)  # polling a counter with a deadline
    checks.check(stats["opened"] >= SLOW_ATTACKERS, f"attackers opened only {stats['opened']}")
    ok, failures = 0, []
    for i in range(100):
        t0 = time.monotonic()
        try:
            status, _, body = demolib.get(port, "/metrics", source="127.0.0.1", timeout=2)
            if status == 200 and b"tslab_build_info{" in body and time.monotonic() - t0 < 2:
                ok += 1
            else:
                failures.append(f"try {i}: status {status} after {time.monotonic() - t0:.2f}s")
        except OSError as e:
            failures.append(f"try {i}: {e!r} after {time.monotonic() - t0:.2f}s")
    for f in failures[:5]:
        print(f"  {f}", file=sys.stderr)
    checks.check(ok >= 99, f"with {SLOW_ATTACKERS} slow attackers, only {ok} of 100 scrapes "
                           f"succeeded within 2 s")
    # The attack was real: the exporter had to close attackers to keep serving.
    checks.check(stats["closed"] > 0, "the exporter never closed a slow attacker")
    stop.set()
    t.join()
    checks.check(stats["error"] is None, f"attacker thread failed: {stats['error']}")
    print(f"  slow attack: {stats['opened']} attacker connections opened, "
          f"{stats['closed']} closed by the exporter; {ok}/100 scrapes served")
    # After the attackers leave, /healthz answers within 1 s (retrying on errors until then).
    t0 = time.monotonic()
    answered = None
    while answered is None and time.monotonic() - t0 < 1.0:
        try:
            status, _, body = demolib.get(port, "/healthz", source="127.0.0.1",
                                          timeout=max(0.05, 1.0 - (time.monotonic() - t0)))
            if status == 200 and body == b"ok\n":
                answered = time.monotonic() - t0
        except OSError:
            pass
    checks.check(answered is not None, "/healthz did not answer within 1 s of the attackers leaving")
    still_serving("200 slow attackers", source="127.0.0.1")


def debug_endpoints():
    """tslab-demo --debug-endpoints serves the heap profile and the rejection ring; without the
    flag (the demo under test above) both are 404."""
    for path in ("/debug/pprof/heap", "/debug/rejections"):
        st, _, _ = demolib.get(port, path)
        checks.check(st == 404, f"{path} without --debug-endpoints: {st}, want 404")
    d, dport = demolib.start_demo(sys.argv[1], "--threads", "1", "--debug-endpoints",
                                  "--inject-bad-frees", "200")
    try:
        deadline = time.monotonic() + 20
        rejections = []
        while time.monotonic() < deadline:
            st, _, body = demolib.get(dport, "/debug/rejections")
            checks.check(st == 200, f"/debug/rejections with --debug-endpoints: {st}")
            doc = json.loads(body)
            rejections = [r for inst in doc.get("allocators", []) for r in inst.get("rejections", [])]
            if rejections or st != 200:
                break
            time.sleep(0.05)  # polling for the injected frees, not synchronising
        checks.check(len(rejections) > 0, "/debug/rejections lists the demo's injected frees")
        st, hdr, body = demolib.get(dport, "/debug/pprof/heap")
        checks.check(st == 200 and len(body) > 0, f"/debug/pprof/heap: {st}, {len(body)} bytes")
    finally:
        checks.check(demolib.stop(d) == 0, "tslab-demo --debug-endpoints exited 0 after SIGTERM")


def main():
    global demo, port
    demo, port = demolib.start_demo(sys.argv[1], "--threads", "2")
    still_serving("start")
    debug_endpoints()
    malformed()
    oversized_headers()
    unknown_methods()
    idle_connections()
    slow_clients()
    pipelining_and_half_close()
    abandoned_requests()
    slow_attack()
    rc = demolib.stop(demo)
    checks.check(rc == 0, f"tslab-demo exited {rc} after SIGTERM")
    return checks.done()


if __name__ == "__main__":
    sys.exit(main())
