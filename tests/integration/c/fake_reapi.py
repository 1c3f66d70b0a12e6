#!/usr/bin/python3
"""A deliberately misbehaving REAPI server for itest_cache_fake_server.

The real server never sends corrupt data, so the C client's own checks
(digest of a whole-blob read, per-blob digest of BatchReadBlobs, too many
bytes, bearer token metadata, a server-side UNAVAILABLE on a live
connection) are exercised against this fake. Messages are encoded by hand:
only Debian's python3-grpcio is needed, no generated stubs.

Blobs (by content): GOOD is served correctly, CORRUPT is served with one
byte flipped, LONG is served with extra bytes appended.
Prints "fake-reapi listening grpc=127.0.0.1:PORT" and serves until killed.
"""
import hashlib
import sys
from concurrent import futures

import grpc

GOOD = b"the bytes as stored"
CORRUPT = b"bytes that will be corrupted"
LONG = b"bytes that get a tail"
TOKEN = "Bearer s3cret"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def fbytes(num, b):
    return varint(num << 3 | 2) + varint(len(b)) + b


def fvarint(num, v):
    return varint(num << 3) + varint(v)


def digest_msg(data):
    return fbytes(1, hashlib.sha256(data).hexdigest().encode()) + fvarint(2, len(data))


def served(data):
    """What the fake sends for a blob."""
    if data == CORRUPT:
        return bytes([data[0] ^ 1]) + data[1:]
    if data == LONG:
        return data + b"++"
    return data


def blob_for(request):
    for data in (GOOD, CORRUPT, LONG):
        if hashlib.sha256(data).hexdigest().encode() in request:
            return data
    return None


def read(request, context):
    data = blob_for(request)
    if data is None:
        context.abort(grpc.StatusCode.NOT_FOUND, "no such blob here")
    out = served(data)
    half = len(out) // 2
    yield fbytes(10, out[:half])
    yield fbytes(10, out[half:])


def batch_read(request, context):
    resp = b""
    for data in (GOOD, CORRUPT):
        one = fbytes(1, digest_msg(data)) + fbytes(2, served(data)) + fbytes(3, b"")
        resp += fbytes(1, one)
    return resp


def get_action_result(request, context):
    md = dict(context.invocation_metadata())
    if md.get("authorization") != TOKEN:
        context.abort(grpc.StatusCode.UNAUTHENTICATED,
                      "missing or wrong bearer token: %r" % md.get("authorization"))
    return fvarint(4, 42)  # ActionResult.exit_code = 42


def get_capabilities(request, context):
    context.abort(grpc.StatusCode.UNAVAILABLE, "fake server is draining")


HANDLERS = {
    "/google.bytestream.ByteStream/Read": grpc.unary_stream_rpc_method_handler(read),
    "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchReadBlobs":
        grpc.unary_unary_rpc_method_handler(batch_read),
    "/build.bazel.remote.execution.v2.ActionCache/GetActionResult":
        grpc.unary_unary_rpc_method_handler(get_action_result),
    "/build.bazel.remote.execution.v2.Capabilities/GetCapabilities":
        grpc.unary_unary_rpc_method_handler(get_capabilities),
}


class Handler(grpc.GenericRpcHandler):
    def service(self, details):
        return HANDLERS.get(details.method)


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((Handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print("fake-reapi listening grpc=127.0.0.1:%d" % port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
