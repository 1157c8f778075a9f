#!/usr/bin/env python3
"""A scripted server that behaves like deployed peers our client must serve: Python's
standard library for the wire, the openssl command line for RSA and AES, the cksum
command for the checksum.

Shapes (first argument):
  one-recv        reads every request with ONE recv of 1,314 bytes (header, fixed part,
                  1 KiB of content); a request in pieces, or sharing a recv with
                  another, is refused (variants 9 and 13)
  padded          as one-recv, and every 828 must be exactly 1,314 bytes: a 1,024-byte
                  content field, zero-filled past the declared total (variant 12)
  per-connection  one request per connection, closed after its answer; every 828
                  answered (variant 7)
The deployed servers A-D of docs/PROTOCOL.md section 8, as measured (each serves
connections one after the other, keeps its clients in memory, answers 827):
  a               reads the 23-byte header, then the payload with ONE recv; the network
                  cuts a request at 32,768 bytes (as captured: 65,826 arrived as
                  32,768 + 33,058), so a bigger request is misread and the connection
                  reset (variants 9, 13)
  b               reads whole requests; takes the packet number / total field as total
                  first (2), decrypts each packet on its own (4), 1604 with an empty
                  payload (6); every 828 it cannot take gets 1607
  c               as a, but a misread request gets 1607, then the reset
  d               reads the payload whole, then a fixed struct: an 828 that is not
                  exactly 1,291 bytes gets no answer and the connection is left open,
                  unread (12, 13)
  silent          as d, for every 828 whatever its shape: no dialect fits
Every shape answers the last 828 with the PLAINTEXT size in 1603 (variant 11).

Prints the port it listens on, then serves RUNS client runs (default 1); on each 900
it prints "verified SIZE CKSUM", and exits 0 after the last. Any deviation: a line on
stderr, exit 1.
With a folder as KEEP, each verified file is also written there as RUN.bin (1, 2, ...).
Usage: scripted_server.py SHAPE [RUNS [KEEP]]"""
import os
import socket
import struct
import subprocess
import sys
import tempfile

FIXED = 23 + 267 + 1024
# Where the network cut a large request to servers A and C in the capture.
SEGMENT = 32768
DEPLOYED = ("a", "b", "c", "d", "silent")


def fail(why):
    sys.stderr.write("scripted server: " + why + "\n")
    sys.exit(1)


def run(args, data=None):
    return subprocess.run(args, input=data, capture_output=True, check=True).stdout


def field(text):
    return text + b"\0" * (255 - len(text))


def respond(sock, code, payload=b""):
    sock.sendall(struct.pack("<BHI", 3, code, len(payload)) + payload)


def one_recv(sock, shape):
    data = sock.recv(FIXED)
    if not data:
        return None
    if len(data) < 23:
        fail("a request header arrived in pieces (%d bytes)" % len(data))
    cid, _, code, size = struct.unpack("<16sBHI", data[:23])
    if len(data) != 23 + size:
        fail("request %d: one recv got %d bytes, the header says %d"
             % (code, len(data), 23 + size))
    if shape == "padded" and code == 828 and len(data) != FIXED:
        fail("828 of %d bytes, not the fixed 1,024-byte content field" % len(data))
    return cid, code, data[23:]


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def whole(sock):
    head = recv_exact(sock, 23)
    if head is None:
        return None
    cid, _, code, size = struct.unpack("<16sBHI", head)
    return cid, code, recv_exact(sock, size)


def reset(sock):
    """Closes with a reset, as a server whose parser fell out of step does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def deployed(sock, shape):
    """One request as server A-D reads it: (cid, code, payload), None when the client
    closed, "reset" or "stuck" when the server fails the connection."""
    head = recv_exact(sock, 23)
    if head is None:
        return None
    cid, _, code, size = struct.unpack("<16sBHI", head)
    if shape in ("a", "c"):
        payload = sock.recv(min(size, SEGMENT)) if size else b""
        if len(payload) < size:
            if shape == "c":
                respond(sock, 1607)
            return "reset"
    else:
        payload = recv_exact(sock, size)
        if payload is None:
            return None
        if code == 828 and (shape == "silent" or (shape == "d" and size != FIXED - 23)):
            return "stuck"
    return cid, code, payload


class Peer:
    def __init__(self, shape):
        self.shape = shape
        self.work = tempfile.mkdtemp()
        self.cid = os.urandom(16)
        self.aes = os.urandom(32)
        self.content = []
        self.received = 0
        self.pub = None
        self.runs = 0

    def handle(self, sock, cid, code, payload):
        """Answers one request; returns True when the run is over."""
        if code == 825:
            respond(sock, 1600, self.cid)
        elif code == 826:
            self.pub = os.path.join(self.work, "pub.der")
            with open(self.pub, "wb") as f:
                f.write(payload[255:255 + 160])
            respond(sock, 1602, self.cid + self.wrapped_key())
        elif code == 827:
            if cid != self.cid or self.pub is None:
                respond(sock, 1606, cid)
            else:
                self.aes = os.urandom(32)
                respond(sock, 1605, self.cid + self.wrapped_key())
        elif code == 828 and self.shape == "b":
            return self.total_first_per_packet(sock, payload)
        elif code == 828:
            total, original, number, count = struct.unpack("<IIHH", payload[:12])
            name = payload[12:267]
            if number == 1:
                self.content, self.received = [], 0
            self.content.append(payload[267:])
            self.received += len(payload) - 267
            if number < count:
                if self.shape == "per-connection":
                    respond(sock, 1603, self.cid + struct.pack("<I", self.received)
                            + name + struct.pack("<I", 0))
                return False
            content = b"".join(self.content)
            cipher, fill = content[:total], content[total:]
            if fill.strip(b"\0"):
                fail("bytes past the declared total that are not zeros")
            path = os.path.join(self.work, "file")
            with open(path, "wb") as f:
                f.write(run(["openssl", "enc", "-d", "-aes-256-cbc", "-K", self.aes.hex(),
                             "-iv", "00" * 16, "-nosalt"], cipher))
            size = os.path.getsize(path)
            if size != original:
                fail("decrypted %d bytes, the packets said %d" % (size, original))
            self.sum = int(run(["cksum", path]).split()[0])
            self.size = size
            # Variant 11: the plaintext size, not the ciphertext total.
            respond(sock, 1603, self.cid + struct.pack("<I", size) + name
                    + struct.pack("<I", self.sum))
        elif code == 900:
            # Kept before the answer: the client's success means the file is there.
            self.runs += 1
            if len(sys.argv) > 3:
                with open(os.path.join(self.work, "file"), "rb") as f:
                    data = f.read()
                with open(os.path.join(sys.argv[3], "%d.bin" % self.runs), "wb") as f:
                    f.write(data)
            respond(sock, 1604, b"" if self.shape == "b" else self.cid)
            print("verified %d %d" % (self.size, self.sum), flush=True)
            return True
        elif code == 901:
            pass
        else:
            fail("unexpected request %d" % code)
        return False

    def wrapped_key(self):
        return run(["openssl", "pkeyutl", "-encrypt", "-pubin", "-keyform", "DER",
                    "-inkey", self.pub, "-pkeyopt", "rsa_padding_mode:oaep",
                    "-pkeyopt", "rsa_oaep_md:sha1"], self.aes)

    def total_first_per_packet(self, sock, payload):
        """Server B's 828: total before number, each packet decrypted on its own."""
        total, original, count, number = struct.unpack("<IIHH", payload[:12])
        name = payload[12:267]
        if number == 1:
            self.content = []
        try:
            if number != len(self.content) + 1 or number > count:
                raise ValueError("packet %d of %d out of order" % (number, count))
            self.content.append(run(
                ["openssl", "enc", "-d", "-aes-256-cbc", "-K", self.aes.hex(),
                 "-iv", "00" * 16, "-nosalt"], payload[267:]))
        except (ValueError, subprocess.CalledProcessError):
            respond(sock, 1607)
            return False
        if number < count:
            return False
        path = os.path.join(self.work, "file")
        with open(path, "wb") as f:
            f.write(b"".join(self.content))
        self.size = os.path.getsize(path)
        if self.size != original:
            fail("decrypted %d bytes, the packets said %d" % (self.size, original))
        self.sum = int(run(["cksum", path]).split()[0])
        respond(sock, 1603, self.cid + struct.pack("<I", self.size) + name
                + struct.pack("<I", self.sum))
        return False


def serve_deployed(listener, peer, shape, runs):
    """Connections one after the other; a failed one is left as the server leaves it."""
    stuck = []
    while True:
        sock, _ = listener.accept()
        sock.settimeout(120)
        try:
            while True:
                req = deployed(sock, shape)
                if req is None:
                    sock.close()
                    break
                if req == "reset":
                    reset(sock)
                    break
                if req == "stuck":
                    stuck.append(sock)
                    break
                if peer.handle(sock, *req):
                    runs -= 1
                    if runs == 0:
                        return
        except ConnectionError:
            # A client that gave up closes with our answers unread: a reset. The
            # server drops that connection and takes the next.
            sock.close()


def main():
    shape = sys.argv[1]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(120)
    print(listener.getsockname()[1], flush=True)
    peer = Peer(shape)
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    if shape in DEPLOYED:
        serve_deployed(listener, peer, shape, runs)
        return
    if shape == "per-connection":
        while True:
            sock, _ = listener.accept()
            req = whole(sock)
            if req is None:
                sock.close()
                continue
            done = peer.handle(sock, *req)
            sock.close()
            if done:
                return
    sock, _ = listener.accept()
    sock.settimeout(120)
    while True:
        req = one_recv(sock, shape)
        if req is None:
            fail("the client closed before 900")
        if peer.handle(sock, *req):
            return


if __name__ == "__main__":
    main()
