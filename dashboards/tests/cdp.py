# SPDX-License-Identifier: MIT
"""A minimal Chrome DevTools Protocol client over a hand-written WebSocket (RFC 6455), standard
library only: enough to drive one headless Chromium page from a test."""
import base64
import json
import os
import socket
import struct
import time
import urllib.parse


class CDPError(Exception):
    pass


class WebSocket:
    def __init__(self, url, timeout=30):
        u = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = u.path + ("?" + u.query if u.query else "")
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, u.hostname, u.port, key))
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise CDPError("websocket handshake: connection closed")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise CDPError("websocket handshake refused: %r" % head[:200])

    def _frame(self):
        """Parses one whole frame from the buffer, reading more as needed. A timeout while
        reading leaves the buffer intact, so a later call resumes cleanly."""
        while True:
            b = self.buf
            if len(b) >= 2:
                n, pos = b[1] & 0x7F, 2
                if n == 126 and len(b) >= 4:
                    n, pos = struct.unpack(">H", b[2:4])[0], 4
                elif n == 127 and len(b) >= 10:
                    n, pos = struct.unpack(">Q", b[2:10])[0], 10
                if (b[1] & 0x7F) < 126 or pos > 2:
                    masked = b[1] & 0x80
                    total = pos + (4 if masked else 0) + n
                    if len(b) >= total:
                        data = b[pos + (4 if masked else 0):total]
                        if masked:
                            mask = b[pos:pos + 4]
                            data = bytes(x ^ mask[i % 4] for i, x in enumerate(data))
                        self.buf = b[total:]
                        return b[0], data
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise CDPError("websocket closed")
            self.buf += chunk

    def send(self, text):
        data = text.encode()
        hdr = bytes([0x81])
        n = len(data)
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        """The next text message (fragments joined; pings answered)."""
        parts = []
        while True:
            b0, data = self._frame()
            op = b0 & 0x0F
            if op == 0x9:  # ping -> pong (masked, as a client must)
                mask = os.urandom(4)
                self.sock.sendall(bytes([0x8A, 0x80 | len(data)]) + mask +
                                  bytes(x ^ mask[i % 4] for i, x in enumerate(data)))
                continue
            if op == 0x8:
                raise CDPError("websocket closed by peer")
            if op in (0x0, 0x1, 0x2):
                parts.append(data)
                if b0 & 0x80:
                    return b"".join(parts).decode()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Page:
    """One page target. Events are kept in self.events, in arrival order."""

    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.events = []

    def call(self, method, timeout=30, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            self.ws.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                msg = json.loads(self.ws.recv())
            except socket.timeout:
                raise CDPError("%s: no answer in %d s" % (method, timeout))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise CDPError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def evaluate(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise CDPError("evaluate %r: %s" % (expression[:80], json.dumps(r["exceptionDetails"])[:500]))
        return r.get("result", {}).get("value")

    def pump(self, seconds):
        """Collects events for a while (also used as a bounded wait between polls)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.ws.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                msg = json.loads(self.ws.recv())
            except socket.timeout:
                return
            if "method" in msg:
                self.events.append(msg)

    def close(self):
        self.ws.close()
