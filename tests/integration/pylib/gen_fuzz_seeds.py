#!/usr/bin/python3
"""Writes the seed corpus of tests/fuzz/fuzz_requests.c: real serialized
requests, each prefixed with the harness's message-type byte (the index in
its `messages[]` table, kept in the same order here), plus raw resource
names behind 0xff. Usage: gen_fuzz_seeds.py [OUTDIR]
(default tests/fuzz/corpus/requests). Deterministic: no randomness.
"""

import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lcreapi import ROOT, EMPTY_HASH, admin_pb2, bs_pb2, re_pb2  # noqa: E402

# Same order as messages[] in tests/fuzz/fuzz_requests.c.
TYPES = [
    re_pb2.GetCapabilitiesRequest, re_pb2.GetActionResultRequest,
    re_pb2.UpdateActionResultRequest, re_pb2.FindMissingBlobsRequest,
    re_pb2.BatchUpdateBlobsRequest, re_pb2.BatchReadBlobsRequest, re_pb2.GetTreeRequest,
    bs_pb2.ReadRequest, bs_pb2.WriteRequest, bs_pb2.QueryWriteStatusRequest,
    admin_pb2.GetStatsRequest, admin_pb2.PurgeRequest, admin_pb2.ListActionsRequest,
    re_pb2.RequestMetadata, re_pb2.ActionResult, admin_pb2.StoredActionResult,
    re_pb2.Action, re_pb2.Command,
]


def D(data):
    return re_pb2.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def seeds():
    h = D(b"hello").hash
    empty = re_pb2.Digest(hash=EMPTY_HASH, size_bytes=0)
    ar = re_pb2.ActionResult(
        output_files=[re_pb2.OutputFile(path="out/a", digest=D(b"a"), is_executable=True),
                      re_pb2.OutputFile(path="state.json", digest=D(b"{}"))],
        exit_code=0, stdout_digest=D(b"so"), stderr_digest=empty)
    ar.execution_metadata.worker = "worker-1"
    ar.execution_metadata.worker_start_timestamp.seconds = 1700000000
    ar.execution_metadata.worker_completed_timestamp.seconds = 1700000009
    ar.execution_metadata.worker_completed_timestamp.nanos = 5
    ar.output_directories.add(path="dir", tree_digest=D(b"tree"))
    ar.output_symlinks.add(path="link", target="out/a")
    yield "caps", re_pb2.GetCapabilitiesRequest()
    yield "caps_instance", re_pb2.GetCapabilitiesRequest(instance_name="team/a")
    yield "get_ac", re_pb2.GetActionResultRequest(action_digest=D(b"action"))
    yield "get_ac_inline", re_pb2.GetActionResultRequest(
        instance_name="ci", action_digest=D(b"action"), inline_stdout=True,
        inline_output_files=["out/a"], digest_function=1)
    yield "get_ac_bad_hash", re_pb2.GetActionResultRequest(
        action_digest=re_pb2.Digest(hash="XYZ", size_bytes=-4))
    yield "update_ac", re_pb2.UpdateActionResultRequest(action_digest=D(b"action"),
                                                         action_result=ar)
    yield "update_ac_instance", re_pb2.UpdateActionResultRequest(
        instance_name="a/b/c", action_digest=D(b"x"), action_result=re_pb2.ActionResult(
            stdout_raw=b"inline", exit_code=3), results_cache_policy=re_pb2.ResultsCachePolicy(
                priority=2))
    yield "find_missing", re_pb2.FindMissingBlobsRequest(
        blob_digests=[D(b"a"), D(b"b"), empty, D(b"x" * 1000)])
    yield "find_missing_bad", re_pb2.FindMissingBlobsRequest(
        instance_name="blobs", blob_digests=[re_pb2.Digest(hash=h.upper(), size_bytes=5)])
    yield "batch_update", re_pb2.BatchUpdateBlobsRequest(requests=[
        re_pb2.BatchUpdateBlobsRequest.Request(digest=D(b"one"), data=b"one"),
        re_pb2.BatchUpdateBlobsRequest.Request(digest=D(b"two"), data=b"TWO"),
        re_pb2.BatchUpdateBlobsRequest.Request(digest=empty, data=b"")])
    yield "batch_update_zstd", re_pb2.BatchUpdateBlobsRequest(
        instance_name="x", digest_function=1, requests=[
            re_pb2.BatchUpdateBlobsRequest.Request(digest=D(b"z"), data=b"z", compressor=1)])
    yield "batch_read", re_pb2.BatchReadBlobsRequest(digests=[D(b"one"), D(b"absent")],
                                                     acceptable_compressors=[0])
    yield "get_tree", re_pb2.GetTreeRequest(root_digest=D(b"dir"), page_size=10, page_token="t")
    for name in ("blobs/%s/5" % h, "ci/team/blobs/%s/5" % h, "blobs/%s/05" % h,
                 "blobs/%s/-5" % h, "blobs/%s" % h, "compressed-blobs/zstd/%s/5" % h,
                 "uploads/u/blobs/%s/5" % h):
        yield "read_" + name.replace("/", "_")[:40], bs_pb2.ReadRequest(
            resource_name=name, read_offset=1, read_limit=3)
    yield "read_negative", bs_pb2.ReadRequest(resource_name="blobs/%s/5" % h, read_offset=-1,
                                              read_limit=-1)
    for name in ("uploads/3f2a0c1e-1111-4222-8333-944455556666/blobs/%s/5" % h,
                 "inst/uploads/u1/blobs/%s/5/meta/data" % h,
                 "uploads/u1/blobs/%s/5" % EMPTY_HASH, "uploads//blobs/%s/5" % h,
                 "uploads/u1/compressed-blobs/zstd/%s/5" % h, "uploads/u1/blobs/%s/18446744073709551616" % h):
        yield "write_" + name.replace("/", "_")[:40], bs_pb2.WriteRequest(
            resource_name=name, write_offset=0, finish_write=True, data=b"hello")
    yield "write_next", bs_pb2.WriteRequest(write_offset=16384, data=b"\0" * 64)
    yield "query", bs_pb2.QueryWriteStatusRequest(resource_name="uploads/u1/blobs/%s/5" % h)
    yield "stats", admin_pb2.GetStatsRequest(instance_name="ci")
    yield "purge", admin_pb2.PurgeRequest(instance_name="ci", action_digests=[D(b"k")],
                                          writer="w", older_than_seconds=3600, cascade=True,
                                          dry_run=True)
    yield "purge_all", admin_pb2.PurgeRequest(all=True)
    yield "list", admin_pb2.ListActionsRequest(instance_name="ci", page_size=50,
                                               page_token="abc", order=1)
    yield "reqmeta", re_pb2.RequestMetadata(
        tool_details=re_pb2.ToolDetails(tool_name="bazel", tool_version="4.2.3"),
        action_id="a1", tool_invocation_id="inv", action_mnemonic="Genrule", target_id="//:x")
    yield "action_result", ar
    yield "stored", admin_pb2.StoredActionResult(action_result=ar.SerializeToString(),
                                                 writer="ci", created_unix=1700000000,
                                                 hit_count=3, size_bytes=12345)
    yield "action", re_pb2.Action(command_digest=D(b"cmd"), input_root_digest=empty,
                                  do_not_cache=False)
    yield "command", re_pb2.Command(arguments=["/bin/sh", "-c", "RUN apt-get update"],
                                    output_paths=["state.json"])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fuzz", "corpus",
                                                             "requests")
    os.makedirs(out, exist_ok=True)
    n = 0
    for name, msg in seeds():
        idx = TYPES.index(type(msg))
        with open(os.path.join(out, "%02d_%02d_%s" % (idx, n, name)), "wb") as f:
            f.write(bytes([idx]) + msg.SerializeToString())
        n += 1
    h = D(b"hello").hash
    for i, name in enumerate(("blobs/%s/5" % h, "a/b/uploads/u/blobs/%s/5/x" % h, "blobs//1",
                              "actions/blobs/%s/0" % h, h, "uploads/u/blobs/%s/007" % h)):
        with open(os.path.join(out, "ff_raw_%d" % i), "wb") as f:
            f.write(b"\xff" + name.encode())
        n += 1
    print("%d seeds in %s" % (n, out))


if __name__ == "__main__":
    main()
