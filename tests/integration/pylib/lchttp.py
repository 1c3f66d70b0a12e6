"""lchttp - helpers for the tests of layercache-server's HTTP side
(/metrics, /status, the dashboard): a server handle that also knows the
HTTP address, a small HTTP client, a parser of the
Prometheus text format, and a fixed mix of cache traffic whose counts the
tests then expect to see.
"""

import http.client
import re
import socket

from lcreapi import Client, Server, digest_of, re_pb2

# The HTTP thread logs its address ("http: serving ... on HOST:PORT") before
# the start line is printed; read from the log, it works whether or not the
# start line carries issue 5's " http=HOST:PORT".
LOG_RE = re.compile(r"http: serving \S.* on (\S+)")


class HttpServer(Server):
    """A layercache-server with --http-listen 127.0.0.1:0; .addr is the gRPC
    address, .http the HTTP one."""

    def __init__(self, extra_args=(), name="http-server", **kw):
        super().__init__(extra_args=["--http-listen", "127.0.0.1:0"] + list(extra_args),
                         name=name, **kw)
        self.http = None

    def start(self, timeout=60):
        super().start(timeout=timeout)
        with open(self.log_path, errors="replace") as f:
            found = LOG_RE.findall(f.read())
        if not found:
            raise RuntimeError("no HTTP address in the server log:\n" + self.log_tail())
        self.http = found[-1]
        return self


def get(addr, path, method="GET", timeout=10):
    """(status, headers dict with lowercase names, body bytes)."""
    host, port = addr.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def raw(addr, data, timeout=10):
    """Sends raw bytes, returns everything the server answers until it closes."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(data)
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset of (label, value)): float} of every sample, and the
    {name: type} of every TYPE line."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError("unparsable sample line %r" % line)
        labels = frozenset(_LABEL.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples, types


def sample(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


AC = "build.bazel.remote.execution.v2.ActionCache"

# Known traffic: per instance, how many hits and misses it gets.
TRAFFIC = {"team-a": {"hits": 3, "misses": 2}, "team-b": {"hits": 1, "misses": 4}}
EXEC_SECONDS = 2.5  # the cached result's original execution time


def action_digest(instance, i):
    return digest_of(("action %s %d" % (instance, i)).encode())


def produce_traffic(addr):
    """Stores one result per instance, looks it up TRAFFIC[i]["hits"] times
    and looks up TRAFFIC[i]["misses"] absent keys; uploads one blob per
    instance (BatchUpdateBlobs) and reads it back. Returns
    {instance: {"blob": bytes}}."""
    out = {}
    for inst, want in sorted(TRAFFIC.items()):
        c = Client(addr, instance=inst)
        try:
            blob = ("blob of %s " % inst).encode() * 100
            d = digest_of(blob)
            c.cas.BatchUpdateBlobs(re_pb2.BatchUpdateBlobsRequest(
                instance_name=inst,
                requests=[re_pb2.BatchUpdateBlobsRequest.Request(digest=d, data=blob)]),
                timeout=30)
            got = c.cas.BatchReadBlobs(re_pb2.BatchReadBlobsRequest(
                instance_name=inst, digests=[d]), timeout=30)
            assert got.responses[0].data == blob
            meta = re_pb2.ExecutedActionMetadata(worker="test")
            meta.execution_start_timestamp.FromSeconds(1000)
            meta.execution_completed_timestamp.FromNanoseconds(int((1000 + EXEC_SECONDS) * 1e9))
            ar = re_pb2.ActionResult(exit_code=0, stdout_raw=b"ok", execution_metadata=meta)
            key = action_digest(inst, 0)
            c.ac.UpdateActionResult(re_pb2.UpdateActionResultRequest(
                instance_name=inst, action_digest=key, action_result=ar), timeout=30)
            for _ in range(want["hits"]):
                c.ac.GetActionResult(re_pb2.GetActionResultRequest(
                    instance_name=inst, action_digest=key), timeout=30)
            for i in range(want["misses"]):
                try:
                    c.ac.GetActionResult(re_pb2.GetActionResultRequest(
                        instance_name=inst, action_digest=action_digest(inst, 100 + i)),
                        timeout=30)
                    raise AssertionError("lookup of an absent key hit")
                except Exception as e:  # grpc.RpcError NOT_FOUND expected
                    if not hasattr(e, "code") or e.code().name != "NOT_FOUND":
                        raise
            out[inst] = {"blob": blob, "key": key}
        finally:
            c.close()
    return out
