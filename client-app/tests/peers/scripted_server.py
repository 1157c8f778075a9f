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
Every shape answers the last 828 with the PLAINTEXT size in 1603 (variant 11).

Prints the port it listens on, then serves one client run; on 900 it prints
"verified SIZE CKSUM" and exits 0. Any deviation: a line on stderr, exit 1.
Usage: scripted_server.py SHAPE"""
import os
import socket
import struct
import subprocess
import sys
import tempfile

FIXED = 23 + 267 + 1024


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


class Peer:
    def __init__(self, shape):
        self.shape = shape
        self.work = tempfile.mkdtemp()
        self.cid = os.urandom(16)
        self.aes = os.urandom(32)
        self.content = []
        self.received = 0

    def handle(self, sock, cid, code, payload):
        """Answers one request; returns True when the run is over."""
        if code == 825:
            respond(sock, 1600, self.cid)
        elif code == 826:
            pub = os.path.join(self.work, "pub.der")
            with open(pub, "wb") as f:
                f.write(payload[255:255 + 160])
            enc = run(["openssl", "pkeyutl", "-encrypt", "-pubin", "-keyform", "DER",
                       "-inkey", pub, "-pkeyopt", "rsa_padding_mode:oaep",
                       "-pkeyopt", "rsa_oaep_md:sha1"], self.aes)
            respond(sock, 1602, self.cid + enc)
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
            respond(sock, 1604, self.cid)
            print("verified %d %d" % (self.size, self.sum), flush=True)
            return True
        elif code == 901:
            pass
        else:
            fail("unexpected request %d" % code)
        return False


def main():
    shape = sys.argv[1]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(120)
    print(listener.getsockname()[1], flush=True)
    peer = Peer(shape)
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
