"""lcreapi - an independent REAPI client for layercache's integration tests.

Stubs are generated at import time from the repository's proto/ with
grpc_tools.protoc into a temporary directory (never from the C build), so
the tests check the server against the wire protocol itself. Also here: a
handle on a real layercache-server process (start, stop, SIGKILL) that
cleans up after itself even when a test fails or the runner times out.
"""

import atexit
import hashlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

# gRPC Python's fork handlers join its own threads before every fork(); with
# calls in flight that can hang forever. Tests start processes with vfork/
# exec only, so turn the handlers off (before grpc is first imported).
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"
import grpc  # noqa: E402

ROOT = os.environ.get("LC_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", ".."))
LC_BIN = os.environ.get("LC_BIN") or os.path.join(ROOT, "bin")
LC_MODE = os.environ.get("LC_MODE", "release")
ASAN = LC_MODE == "asan"

EMPTY_HASH = hashlib.sha256(b"").hexdigest()

_cleanups = []  # run at exit and on SIGTERM/SIGINT, newest first


def on_cleanup(fn):
    _cleanups.append(fn)
    return fn


def _run_cleanups():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # keep cleaning up the rest
            print("cleanup: %r" % (e,), file=sys.stderr)


atexit.register(_run_cleanups)


def _on_signal(signum, _frame):
    # The test runner's timeout sends SIGTERM: unwind so finally blocks and
    # atexit run and our servers and temp dirs go away.
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)


def mkdtemp(prefix="lc-test-"):
    d = tempfile.mkdtemp(prefix=prefix)
    on_cleanup(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


# ---- generated stubs ---------------------------------------------------------

def _generate_stubs():
    out = mkdtemp("lc-pystubs-")
    protos = []
    for dirpath, _dirs, files in os.walk(os.path.join(ROOT, "proto")):
        for f in files:
            if f.endswith(".proto"):
                protos.append(os.path.relpath(os.path.join(dirpath, f), os.path.join(ROOT, "proto")))
    protos.sort()
    cmd = ["/usr/bin/python3", "-m", "grpc_tools.protoc", "-I" + os.path.join(ROOT, "proto"),
           "-I/usr/include", "--python_out=" + out, "--grpc_python_out=" + out] + protos
    subprocess.run(cmd, check=True, cwd=os.path.join(ROOT, "proto"))
    sys.path.insert(0, out)
    return out


_generate_stubs()

from build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2  # noqa: E402
from build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc  # noqa: E402
from google.bytestream import bytestream_pb2 as bs_pb2  # noqa: E402
from google.bytestream import bytestream_pb2_grpc as bs_grpc  # noqa: E402
from google.rpc import status_pb2  # noqa: E402,F401
from layercache.v1 import admin_pb2, admin_pb2_grpc  # noqa: E402,F401


def digest_of(data):
    return re_pb2.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def dkey(d):
    return (d.hash, d.size_bytes)


# ---- server process ------------------------------------------------------------

# If this test process is SIGKILLed, the server must not outlive it. setpriv
# sets PR_SET_PDEATHSIG and execs the server (same pid). No preexec_fn: it
# forces fork() in a process full of gRPC threads.
_DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []

# For callers that still pass preexec_fn=_die_with_parent (lchttp.py): libc is
# loaded here, in the parent, so the forked child makes no dlopen call.
_PR_SET_PDEATHSIG = 1
try:
    import ctypes
    _libc = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    _libc = None


def _die_with_parent():
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_help_text = None


def server_help():
    """The server's --help text (cached), to pass only options it has."""
    global _help_text
    if _help_text is None:
        p = subprocess.run([os.path.join(LC_BIN, "layercache-server"), "--help"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        _help_text = p.stdout.decode(errors="replace")
    return _help_text


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "ERROR: UndefinedBehaviorSanitizer")


class Server:
    """One layercache-server on 127.0.0.1:0 with its own data dir."""

    def __init__(self, data_dir=None, extra_args=(), name="server"):
        self.data_dir = data_dir or mkdtemp("lc-data-")
        self.extra_args = list(extra_args)
        self.name = name
        self.proc = None
        self.addr = None
        self.log_path = os.path.join(mkdtemp("lc-log-"), name + ".log")
        self.starts = 0
        on_cleanup(self.kill)

    def default_args(self):
        # Loopback only: the HTTP side defaults to 0.0.0.0:9090.
        if "--http-listen" in server_help() and "--http-listen" not in self.extra_args:
            return ["--http-listen", "127.0.0.1:0"]
        return []

    def start(self, timeout=60):
        binary = os.path.join(LC_BIN, "layercache-server")
        if not os.access(binary, os.X_OK):
            raise RuntimeError("no server binary at %s (set LC_BIN)" % binary)
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(("==== start %d\n" % self.starts).encode())
        log.flush()
        self.proc = subprocess.Popen(
            _DIE_WITH_PARENT + [binary, "--listen", "127.0.0.1:0", "--data", self.data_dir]
            + self.default_args() + self.extra_args,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise RuntimeError("server did not print its address in %ds; log:\n%s"
                                   % (timeout, self.log_tail()))
            r, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.5))
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    rc = self.proc.wait()
                    raise RuntimeError("server exited (%d) before listening; log:\n%s"
                                       % (rc, self.log_tail()))
                buf += chunk
                m = re.search(rb"layercache-server listening grpc=(\S+)[ \n]", buf)
                if m:
                    self.addr = m.group(1).decode()
                    break
        # Keep draining stdout so the server never blocks on a full pipe.
        out = self.proc.stdout
        threading.Thread(target=lambda: [None for _ in iter(lambda: out.read(4096), b"")],
                         daemon=True).start()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no log)"

    def sanitizer_reports(self):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(l for l in text.splitlines() if any(m in l for m in SANITIZER_MARKERS))

    def stop(self, timeout=None):
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        timeout = timeout or (90 if ASAN else 30)
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        """SIGKILL now (crash simulation, or cleanup)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---- client ---------------------------------------------------------------------

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 256 << 20),
    ("grpc.max_send_message_length", 256 << 20),
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.enable_retries", 0),
]


class Client:
    def __init__(self, addr, instance="", creds=None, options=()):
        """creds: grpc.ssl_channel_credentials(...) for a TLS server."""
        opts = CHANNEL_OPTIONS + list(options)
        self.channel = (grpc.insecure_channel(addr, options=opts) if creds is None
                        else grpc.secure_channel(addr, creds, options=opts))
        self.instance = instance
        self.caps = re_grpc.CapabilitiesStub(self.channel)
        self.ac = re_grpc.ActionCacheStub(self.channel)
        self.cas = re_grpc.ContentAddressableStorageStub(self.channel)
        self.bs = bs_grpc.ByteStreamStub(self.channel)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)

    def close(self):
        self.channel.close()

    def capabilities(self, timeout=10):
        return self.caps.GetCapabilities(
            re_pb2.GetCapabilitiesRequest(instance_name=self.instance), timeout=timeout)

    def find_missing(self, digests, timeout=30):
        r = self.cas.FindMissingBlobs(re_pb2.FindMissingBlobsRequest(
            instance_name=self.instance, blob_digests=digests), timeout=timeout)
        return set(dkey(d) for d in r.missing_blob_digests)

    def is_present(self, d):
        return dkey(d) not in self.find_missing([d])

    def upload_resource(self, d, uuid=None):
        uuid = uuid or "%032x" % int.from_bytes(os.urandom(16), "big")
        prefix = self.instance + "/" if self.instance else ""
        return "%suploads/%s/blobs/%s/%d" % (prefix, uuid, d.hash, d.size_bytes)

    def read_resource(self, d):
        prefix = self.instance + "/" if self.instance else ""
        return "%sblobs/%s/%d" % (prefix, d.hash, d.size_bytes)

    def write(self, data, chunk=1 << 20, resource=None, digest=None, timeout=120):
        """ByteStream.Write of data in chunk-sized messages; returns the response."""
        d = digest or digest_of(data)
        resource = resource or self.upload_resource(d)
        return self.bs.Write(write_requests(resource, data, chunk), timeout=timeout)

    def read(self, resource, offset=0, limit=0, timeout=120):
        out = bytearray()
        for r in self.bs.Read(bs_pb2.ReadRequest(resource_name=resource, read_offset=offset,
                                                 read_limit=limit), timeout=timeout):
            out += r.data
        return bytes(out)

    def read_blob(self, d, **kw):
        return self.read(self.read_resource(d), **kw)


def write_requests(resource, data, chunk, start=0, finish=True):
    """WriteRequests as Bazel sends them: resource name only on the first."""
    off = start
    first = True
    mv = memoryview(data)
    if len(data) == start:
        yield bs_pb2.WriteRequest(resource_name=resource, write_offset=off,
                                  finish_write=finish, data=b"")
        return
    while off < len(data):
        piece = bytes(mv[off:off + chunk])
        last = off + len(piece) >= len(data)
        yield bs_pb2.WriteRequest(resource_name=resource if first else "", write_offset=off,
                                  finish_write=finish and last, data=piece)
        first = False
        off += len(piece)


def code_of(call):
    """Runs call() and returns its grpc.StatusCode (OK when it succeeds)."""
    try:
        call()
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()
