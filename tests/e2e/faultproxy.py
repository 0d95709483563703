"""A fault-injecting HTTP proxy on 127.0.0.1 for end-to-end tests.

It sits between logferry and a real server (moto), reads each HTTP/1.1
request, forwards it, and with probability `rate` replaces the exchange with
one fault, chosen at random:

  reset      the connection is reset (RST) before any answer, the request not forwarded
  reset_after the request is forwarded and done, then the connection is reset (the
             client cannot know it succeeded: retries must be harmless)
  slowdown   503 SlowDown (S3's error XML) without forwarding
  stall      the answer is held back for `stall_seconds`, then sent
  truncate   the answer's headers and half its body are sent, then the connection closes

Faults stop after `max_faults`, so every run terminates. Counts per kind are
in `faults`."""

import random
import socket
import struct
import threading
import time

KINDS = ("reset", "reset_after", "slowdown", "stall", "truncate")


def _read_until(sock, buf, marker):
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    return buf


def _read_message(sock, buf, is_response=False, head_request=False):
    """Reads one HTTP message (Content-Length framing or chunked); returns (raw, rest)."""
    buf = _read_until(sock, buf, b"\r\n\r\n")
    if buf is None:
        return None, b""
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    status = int(lines[0].split()[1]) if is_response else 0
    if is_response and (head_request or status in (204, 304) or 100 <= status < 200):
        return head + b"\r\n\r\n", rest
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while True:
            rest = _read_until(sock, rest, b"\r\n")
            if rest is None:
                return None, b""
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    return None, b""
                rest += chunk
            body += rest[:size]
            rest = rest[size + 2:]
            if size == 0:
                break
        # Re-frame with Content-Length so the message can be cut precisely.
        kept = [l for l in lines if not l.lower().startswith(b"transfer-encoding")]
        kept.append(b"Content-Length: %d" % len(body))
        return b"\r\n".join(kept) + b"\r\n\r\n" + body, rest
    if is_response and b"content-length" not in headers:
        # Framed by closing the connection.
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        lines.append(b"Content-Length: %d" % len(rest))
        return b"\r\n".join(lines) + b"\r\n\r\n" + rest, b""
    n = int(headers.get(b"content-length", b"0"))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        rest += chunk
    return head + b"\r\n\r\n" + rest[:n], rest[n:]


def _reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultProxy:
    def __init__(self, upstream_port, rate=0.15, max_faults=40, stall_seconds=1.5, seed=None, kinds=KINDS,
                 match=None):
        self.upstream_port = upstream_port
        self.rate = rate
        self.max_faults = max_faults
        self.stall_seconds = stall_seconds
        self.kinds = kinds
        self.match = match  # request line (bytes) -> whether it may get a fault; None: all
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.faults = {k: 0 for k in KINDS}
        self.requests = 0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def total_faults(self):
        with self.lock:
            return sum(self.faults.values())

    def stop(self):
        self.stopped = True
        try:
            self.listener.close()
        except OSError:
            pass

    def _pick(self, request):
        if self.match is not None and not self.match(request.split(b"\r\n", 1)[0]):
            with self.lock:
                self.requests += 1
            return None
        with self.lock:
            self.requests += 1
            if sum(self.faults.values()) >= self.max_faults or self.rng.random() >= self.rate:
                return None
            kind = self.rng.choice(self.kinds)
            self.faults[kind] += 1
            return kind

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        client.settimeout(120)
        buf = b""
        try:
            while True:
                request, buf = _read_message(client, buf)
                if request is None:
                    client.close()
                    return
                fault = self._pick(request)
                if fault == "reset":
                    _reset(client)
                    return
                if fault == "slowdown":
                    body = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>"
                            b"<Message>Please reduce your request rate.</Message><RequestId>FAULT</RequestId></Error>")
                    client.sendall(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                                   b"Content-Length: %d\r\n\r\n" % len(body) + body)
                    continue
                head_request = request.startswith(b"HEAD ")
                with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=120) as up:
                    # One upstream connection per request keeps framing simple.
                    head, _, body = request.partition(b"\r\n\r\n")
                    lines = [l for l in head.split(b"\r\n") if not l.lower().startswith(b"connection:")]
                    up.sendall(b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n" + body)
                    response, _ = _read_message(up, b"", is_response=True, head_request=head_request)
                if response is None:
                    _reset(client)
                    return
                if fault == "reset_after":
                    _reset(client)
                    return
                if fault == "stall":
                    time.sleep(self.stall_seconds)
                if fault == "truncate":
                    head, _, body = response.partition(b"\r\n\r\n")
                    if body:
                        client.sendall(head + b"\r\n\r\n" + body[: len(body) // 2])
                        client.close()
                        return
                # Keep the client's connection alive with a Content-Length frame.
                head, _, body = response.partition(b"\r\n\r\n")
                lines = [l for l in head.split(b"\r\n") if not l.lower().startswith(b"connection:")]
                client.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        except (OSError, ValueError):
            try:
                client.close()
            except OSError:
                pass
