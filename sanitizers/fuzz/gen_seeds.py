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

# Epoch operations (opcodes 16..23): the epoch byte picks among the input's epochs in slot order.
EP_ALLOC, EP_MALLOC, EP_OPEN, EP_CLOSE, EP_DESTROY, EP_BAD, EP_FIGURES, EP_REALLOC = range(16, 24)
def sz(cls, off=0): return bytes([cls]) + struct.pack("<H", off)  # a size inside class cls
def raw(n): return bytes([15]) + struct.pack("<H", n)             # any 16-bit size
def ep_alloc(e, size, api=EP_ALLOC): return bytes([api, e]) + size
def ep_open(label): return op(EP_OPEN, label)  # 0 req, 1 batch, 2 NULL, 3 "", 4 other, 5 long
def bad(kind, *args): return op(EP_BAD, kind, *args)

w("fuzz_alloc", "epoch-close", ep_open(0) + b"".join(ep_alloc(0, sz(c)) for c in range(8)) + ep_alloc(0, sz(2, 5), EP_MALLOC)
  + alloc(0, 64) + op(FREE_H, 3) + op(EP_FIGURES) + op(EP_CLOSE, 0) + ep_alloc(0, sz(1)) + ep_alloc(0, sz(1), EP_MALLOC)
  + op(EP_CLOSE, 0) + op(EP_FIGURES) + op(FREE_P, 0) + op(LOOK, 1) + op(FLUSH) + op(EP_FIGURES))
w("fuzz_alloc", "epoch-destroy", ep_open(1) + alloc(0, 24) + ep_alloc(0, sz(3)) * 5 + ep_alloc(0, sz(5), EP_MALLOC) * 2
  + op(EP_DESTROY, 0) + op(DEAD_H, 0) + op(DEAD_H, 3) + op(DEAD_P, 1) + op(DEAD_P, 6) + ep_alloc(0, sz(3))
  + op(EP_CLOSE, 0) + op(EP_DESTROY, 0) + op(EP_FIGURES) + op(FOREIGN, 0))
w("fuzz_alloc", "epoch-realloc", ep_open(2) + ep_alloc(0, sz(0, 3)) + ep_alloc(0, sz(4)) + op(EP_REALLOC, 0) + sz(6)
  + op(EP_REALLOC, 1) + sz(4, 9) + op(EP_REALLOC, 0) + raw(0) + op(EP_FIGURES) + op(EP_CLOSE, 0)
  + op(EP_REALLOC, 0) + sz(1) + op(REALLOC, 0) + sz(7) + op(EP_FIGURES))
w("fuzz_alloc", "epoch-bad-ids", ep_open(0) + ep_open(3) + ep_alloc(0, sz(2)) + ep_alloc(1, sz(2)) + op(EP_DESTROY, 1)
  + bad(0, 0) + sz(2) + bad(1) + struct.pack("<Q", 0) + sz(2) + bad(1) + struct.pack("<Q", 0xFFFFFFFFFFFFFFFF) + sz(1)
  + bad(2, 0, 40, 0) + sz(2) + bad(2, 0, 63, 1, 7) + sz(2) + bad(2, 0, 20, 1, 50) + sz(3)
  + bad(3, 0) + sz(2) + bad(4, 0) + bad(1) + struct.pack("<Q", 1 << 45 | 1 << 32 | 5) + raw(20000) + op(EP_FIGURES))
w("fuzz_alloc", "epoch-labels", b"".join(ep_open(l) + ep_alloc(0, sz(l)) + op(EP_CLOSE, 0) + op(FREE_H, 0) for l in range(6))
  + op(EP_FIGURES) + ep_open(5) + ep_open(4) + ep_open(2) + ep_open(3) + ep_open(0) + op(EP_FIGURES))
w("fuzz_alloc", "epoch-reuse", (ep_open(0) + ep_alloc(0, sz(2)) + op(FREE_H, 0) + op(EP_CLOSE, 0) + op(FLUSH)
  + ep_alloc(0, sz(2)) + op(EP_CLOSE, 0)) * 6 + op(EP_DESTROY, 2) + op(EP_FIGURES))
w("fuzz_alloc", "epoch-ceiling", b"".join(ep_open(0) + ep_alloc(i, sz(7)) * 14 for i in range(4)) + op(EP_DESTROY, 1)
  + op(FLUSH) + op(PURGE) + ep_alloc(0, sz(7)) * 4 + op(EP_FIGURES))
w("fuzz_alloc", "epoch-end-open", ep_open(0) + ep_open(1) + ep_open(5) + ep_alloc(0, sz(1)) + ep_alloc(1, sz(1))
  + ep_alloc(2, sz(6), EP_MALLOC) + op(EP_CLOSE, 2) + alloc(1, 100))

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
