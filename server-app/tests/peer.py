#!/usr/bin/env python3
"""An independent client of the protocol: Python's standard library for the wire,
the openssl command line for RSA and AES, and the cksum command for the checksum.
Registers, exchanges keys, uploads one file in 1 KiB packets, confirms with 900.
Prints the client id in hex on success. Usage: peer.py PORT FILE"""
import os
import socket
import struct
import subprocess
import sys
import tempfile


def run(args, data=None):
    return subprocess.run(args, input=data, capture_output=True, check=True).stdout


def field(text):
    b = text.encode()
    return b + b"\0" * (255 - len(b))


def request(sock, cid, code, payload):
    sock.sendall(cid + struct.pack("<BHI", 3, code, len(payload)) + payload)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise SystemExit("server closed the connection")
        buf += chunk
    return buf


def response(sock):
    version, code, size = struct.unpack("<BHI", recv_exact(sock, 7))
    return code, recv_exact(sock, size)


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    work = tempfile.mkdtemp()
    key = os.path.join(work, "key.pem")
    run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024",
         "-pkeyopt", "rsa_keygen_pubexp:17", "-out", key])
    public = run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"])
    assert len(public) == 160, len(public)

    sock = socket.create_connection(("127.0.0.1", port))
    name = "python peer"
    request(sock, b"\0" * 16, 825, field(name))
    code, payload = response(sock)
    assert code == 1600, code
    cid = payload[:16]
    request(sock, cid, 826, field(name) + public)
    code, payload = response(sock)
    assert code == 1602, code
    enc_key = os.path.join(work, "aes.enc")
    with open(enc_key, "wb") as f:
        f.write(payload[16:])
    aes = run(["openssl", "pkeyutl", "-decrypt", "-inkey", key, "-in", enc_key,
               "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1"])
    assert len(aes) == 32, len(aes)

    with open(path, "rb") as f:
        plain = f.read()
    cipher = run(["openssl", "enc", "-aes-256-cbc", "-K", aes.hex(), "-iv", "00" * 16,
                  "-nosalt", "-in", path])
    packets = [cipher[i:i + 1024] for i in range(0, len(cipher), 1024)]
    fname = os.path.basename(path)
    for n, content in enumerate(packets, 1):
        head = struct.pack("<IIHH", len(cipher), len(plain), n, len(packets)) + field(fname)
        request(sock, cid, 828, head + content)
    code, payload = response(sock)
    assert code == 1603, code
    (server_sum,) = struct.unpack("<I", payload[16 + 4 + 255:])
    ours = int(run(["cksum", path]).split()[0])
    assert server_sum == ours, (server_sum, ours)
    request(sock, cid, 900, field(fname))
    code, payload = response(sock)
    assert code == 1604 and payload == cid, code
    print(cid.hex())


if __name__ == "__main__":
    main()
