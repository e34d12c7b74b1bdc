#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the committed seed corpora (sanitizers/fuzz/corpus/*). Run it again after changing an
input format; the fuzzers grow their own corpora from these seeds in a scratch directory."""
import os, struct

here = os.path.dirname(os.path.abspath(__file__))

def w(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

# ---- fuzz_alloc: opcode byte (op % 16) followed by its arguments ----
def alloc(api, size, k=1):
    b = bytes([api]) + struct.pack("<H", size)
    return b + (bytes([k]) if api == 2 else b"")
FREE_H, FREE_P, DEAD_H, DEAD_P, FORGE, FLIP, INTERIOR, WILD, REALLOC, FOREIGN, FLUSH, PURGE, LOOK = range(3, 16)
def op(code, *args): return bytes([code]) + bytes(args)

every = b"".join(alloc(api, s) for api in (0, 1, 2) for s in (1, 8, 24, 64, 65, 100, 255, 256, 1000, 4096, 10000))
w("fuzz_alloc", "all-classes", every + b"".join(op(FREE_H, i) for i in range(0, 33, 3)) + op(FLUSH) + op(PURGE))
w("fuzz_alloc", "bad-sizes", alloc(0, 0) + alloc(1, 0) + alloc(1, 10001) + alloc(2, 0, 3) + alloc(0, 10049))
w("fuzz_alloc", "double-free", alloc(0, 64) * 4 + op(FREE_H, 1) + op(DEAD_H, 0) + op(DEAD_H, 0) + op(FREE_P, 0) + op(DEAD_P, 1))
w("fuzz_alloc", "stale-reuse", (alloc(0, 128) + op(FREE_H, 0)) * 8 + op(DEAD_H, 3) + op(DEAD_P, 5) + alloc(1, 128) + op(DEAD_P, 0))
w("fuzz_alloc", "forged", alloc(0, 256) * 3 + op(FORGE) + struct.pack("<Q", 0xFFFFFFFFFFFFFFFF) + op(FORGE) + struct.pack("<Q", 1)
  + op(FLIP, 0, 0, 1, 63) + op(FLIP, 1, 5, 0) + op(FLIP, 2, 40, 1, 41) + op(LOOK, 1))
w("fuzz_alloc", "pointers", alloc(1, 100) * 3 + op(INTERIOR, 0, 8, 0) + op(INTERIOR, 1, 0x80, 0) + op(INTERIOR, 2, 0xf8, 0xff)
  + op(WILD) + struct.pack("<Q", 0x1000) + op(WILD) + struct.pack("<Q", 0x7fff00000000) + op(WILD) + struct.pack("<Q", 0))
w("fuzz_alloc", "realloc", alloc(1, 20) + op(REALLOC, 0) + struct.pack("<H", 60) + op(REALLOC, 0) + struct.pack("<H", 5000)
  + op(REALLOC, 0) + struct.pack("<H", 0) + op(REALLOC, 0) + struct.pack("<H", 20000) + op(REALLOC, 0) + struct.pack("<H", 1))
w("fuzz_alloc", "foreign", alloc(0, 64) + alloc(1, 512) + op(FOREIGN, 0) + op(FOREIGN, 1))
w("fuzz_alloc", "ceiling", alloc(0, 10000) * 20 + op(FREE_H, 3) + alloc(0, 10000) + op(FLUSH) + op(PURGE) + alloc(1, 9000) * 3)
w("fuzz_alloc", "churn", (alloc(1, 300) + alloc(0, 40) + op(FREE_P, 0) + op(FLUSH)) * 30 + op(PURGE) + op(DEAD_P, 7))

# ---- fuzz_http: raw request bytes sent to the exporter ----
reqs = {
    "get-metrics": b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "get-json": b"GET /metrics.json HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\n\r\n",
    "openmetrics": b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: application/openmetrics-text; version=1.0.0,text/plain;q=0.5\r\nAccept-Encoding: gzip, deflate\r\n\r\n",
    "head-healthz": b"HEAD /healthz HTTP/1.0\r\n\r\n",
    "index": b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "post": b"POST /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello",
    "notfound": b"GET /nope?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "bad-line": b"GARBAGE\r\n\r\n",
    "bearer": b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer wrong\r\n\r\n",
    "pipelined": b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\nGET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "chunked": b"PUT / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "long-header": b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Long: " + b"a" * 2000 + b"\r\n\r\n",
}
for k, v in reqs.items():
    w("fuzz_http", k, v)
