"""trustlib - helpers for the tests of untrusted writers (cache-server/trust.h)
and of the private HTTP side: a tokens file with every role, clients whose
calls carry a token, action results whose blobs are really uploaded, the
entries Admin.ListActions shows, and small HTTP calls with a token or the
login cookie.
"""

import collections
import http.client as httpclient
import os
import secrets
import sys

import grpc

from lcreapi import (Client, admin_pb2, digest_of, mkdtemp, re_pb2)

SC = grpc.StatusCode

# name -> role; every test server gets these tokens.
ROLES = {
    "ops": "admin",
    "ci": "write",
    "ci-2": "write",
    "viewer": "read",
    "pr-1": "untrusted",
    "pr-2": "untrusted",
    "pr-3": "untrusted",
}


def make_tokens(extra=None):
    """Writes a tokens file; returns (path, {name: token})."""
    roles = dict(ROLES)
    roles.update(extra or {})
    tok = {name: "lct-%s-%s" % (role[0], secrets.token_hex(16)) for name, role in roles.items()}
    path = os.path.join(mkdtemp("lc-tokens-"), "tokens")
    with open(path, "w") as f:
        f.write("# trustlib tokens\n")
        for name, role in roles.items():
            f.write("%s %s %s\n" % (tok[name], role, name))
    os.chmod(path, 0o600)
    return path, tok


class _Details(collections.namedtuple("_Details", ("method", "timeout", "metadata", "credentials",
                                                   "wait_for_ready", "compression")),
               grpc.ClientCallDetails):
    pass


class _AddMetadata(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                   grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Sends the token (authorization: Bearer ...) with every call."""

    def __init__(self, md):
        self.md = md

    def _d(self, d):
        return _Details(d.method, d.timeout, list(d.metadata or []) + self.md, d.credentials,
                        getattr(d, "wait_for_ready", None), getattr(d, "compression", None))

    def intercept_unary_unary(self, cont, d, req):
        return cont(self._d(d), req)

    def intercept_unary_stream(self, cont, d, req):
        return cont(self._d(d), req)

    def intercept_stream_unary(self, cont, d, it):
        return cont(self._d(d), it)

    def intercept_stream_stream(self, cont, d, it):
        return cont(self._d(d), it)


class TokenClient(Client):
    """lcreapi.Client whose every call carries token (None: no token)."""

    def __init__(self, addr, token, instance=""):
        super().__init__(addr, instance=instance)
        if token:
            self.channel = grpc.intercept_channel(
                self.channel, _AddMetadata([("authorization", "Bearer " + token)]))
            from lcreapi import bs_grpc, re_grpc, admin_pb2_grpc
            self.caps = re_grpc.CapabilitiesStub(self.channel)
            self.ac = re_grpc.ActionCacheStub(self.channel)
            self.cas = re_grpc.ContentAddressableStorageStub(self.channel)
            self.bs = bs_grpc.ByteStreamStub(self.channel)
            self.admin = admin_pb2_grpc.AdminStub(self.channel)

    def upload(self, *blobs):
        """BatchUpdateBlobs of every blob; returns their digests."""
        ds = [digest_of(b) for b in blobs]
        r = self.cas.BatchUpdateBlobs(re_pb2.BatchUpdateBlobsRequest(
            instance_name=self.instance,
            requests=[re_pb2.BatchUpdateBlobsRequest.Request(digest=d, data=b)
                      for d, b in zip(ds, blobs)]), timeout=30)
        for x in r.responses:
            if x.status.code != 0:
                raise AssertionError("upload refused: %s" % x.status.message)
        return ds

    def put(self, key, ar):
        return self.ac.UpdateActionResult(re_pb2.UpdateActionResultRequest(
            instance_name=self.instance, action_digest=key, action_result=ar), timeout=30)

    def get(self, key):
        """The ActionResult a lookup gets, or None on NOT_FOUND."""
        try:
            return self.ac.GetActionResult(re_pb2.GetActionResultRequest(
                instance_name=self.instance, action_digest=key), timeout=30)
        except grpc.RpcError as e:
            if e.code() == SC.NOT_FOUND:
                return None
            raise

    def ls(self, **kw):
        """Every entry ListActions shows (all pages)."""
        out, token = [], ""
        while True:
            r = self.admin.ListActions(admin_pb2.ListActionsRequest(
                page_size=1000, page_token=token, **kw), timeout=30)
            out.extend(r.actions)
            token = r.next_page_token
            if not token:
                return out


def result(client, *contents, worker="test", stdout=b""):
    """An ActionResult with one output file per content (uploaded first)."""
    blobs = list(contents) + ([stdout] if stdout else [])
    ds = client.upload(*blobs) if blobs else []
    ar = re_pb2.ActionResult(exit_code=0)
    for i, d in enumerate(ds[:len(contents)]):
        ar.output_files.add(path="out/%d" % i, digest=d)
    if stdout:
        ar.stdout_digest.CopyFrom(ds[-1])
    ar.execution_metadata.worker = worker
    return ar


def key(name):
    """An action key (the digest of an Action-like blob; need not exist)."""
    return digest_of(("action " + name).encode())


def same(a, b):
    """Same outputs (what the server calls identical: metadata aside)."""
    if a is None or b is None:
        return a is b
    x, y = re_pb2.ActionResult(), re_pb2.ActionResult()
    x.CopyFrom(a)
    y.CopyFrom(b)
    x.ClearField("execution_metadata")
    y.ClearField("execution_metadata")
    return x == y


# ---- HTTP -------------------------------------------------------------------------------

def http(addr, path, method="GET", token=None, cookie=None, headers=None, timeout=15):
    """(status, {lowercase header: value}, body bytes)."""
    host, port = addr.rsplit(":", 1)
    c = httpclient.HTTPConnection(host, int(port), timeout=timeout)
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    if cookie:
        h["Cookie"] = cookie
    try:
        c.request(method, path, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def login(addr, token, headers=None):
    """POST /login; returns (status, the cookie pair "lc_session=..." or None)."""
    st, hd, _ = http(addr, "/login", method="POST", token=token, headers=headers)
    sc = hd.get("set-cookie", "")
    return st, (sc.split(";", 1)[0] if sc.startswith("lc_session=") else None)


class Checks:
    """Named checks that print and collect failures."""

    def __init__(self):
        self.failures = []

    def __call__(self, cond, what):
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            self.failures.append(what)
        return cond

    def done(self, server=None):
        if server is not None:
            rc = server.stop()
            self(rc == 0, "server exits 0 on SIGTERM (got %r)" % rc)
            rep = server.sanitizer_reports()
            self(not rep, "no sanitizer reports\n" + rep)
        if self.failures:
            print("%d check(s) failed:\n  %s" % (len(self.failures), "\n  ".join(self.failures)))
            if server is not None:
                print("--- server log tail:\n" + server.log_tail())
            sys.exit(1)
        print("ok")
