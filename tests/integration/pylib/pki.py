"""Throwaway certificates for TLS tests, made with the openssl CLI in a
directory the test owns (keys 0600)."""

import os
import subprocess


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    """name.pem / name.key: a self-signed CA."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
            "-out", name + ".pem", "-days", "2", "-subj", "/CN=layercache test " + name, cwd=d)
    os.chmod(os.path.join(d, name + ".key"), 0o600)


def make_cert(d, name, ca, cn, ext):
    """name.pem / name.key signed by ca, with the extension lines ext
    (e.g. "subjectAltName=DNS:localhost\\nextendedKeyUsage=serverAuth\\n")."""
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write(ext)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
            name + ".csr", "-subj", "/CN=" + cn, cwd=d)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext", cwd=d)
    os.chmod(os.path.join(d, name + ".key"), 0o600)


SERVER_EXT = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
CLIENT_EXT = "extendedKeyUsage=clientAuth\n"


def make_pki(d):
    """ca.pem/ca.key, server.pem/server.key (127.0.0.1, localhost),
    client.pem/client.key (signed by ca), other-ca.pem and
    other-client.pem/.key (signed by other-ca). Returns name -> path."""
    for ca in ("ca", "other-ca"):
        make_ca(d, ca)
    make_cert(d, "server", "ca", "127.0.0.1", SERVER_EXT)
    make_cert(d, "client", "ca", "ci-runner", CLIENT_EXT)
    make_cert(d, "other-client", "other-ca", "stranger", CLIENT_EXT)
    return lambda n: os.path.join(d, n)
