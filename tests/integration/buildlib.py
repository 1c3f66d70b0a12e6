"""buildlib.py - REAPI probes for the `layercache build` integration tests.

Run with /usr/bin/python3 from tests/integration/test_build_* (bash):

  buildlib.py stats ADDR                      server totals as JSON (entries, blobs, ...)
  buildlib.py ac ADDR KEY...                  "hit" or "miss" per step key (sha256:<hex>,
                                              as --summary-json prints it)
  buildlib.py missing ADDR sha256:HEX:SIZE...  "present" or "missing" per blob (CAS)
  buildlib.py poison ADDR KEY CASE OUTDIR     replace KEY's result by one whose top layer
                                              is the hostile tar CASE, aimed at OUTDIR
  buildlib.py cases -                         the hostile CASE names

Keys in a build's summary are REAPI action digests without their size; the
size comes from Admin.ListActions, which lists every entry with its digest.
"""

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "pylib"))
import lcreapi  # noqa: E402
from lcreapi import re_pb2, admin_pb2, digest_of  # noqa: E402


def die(msg):
    print("buildlib.py: " + msg, file=sys.stderr)
    sys.exit(2)


def stats(client):
    r = client.admin.GetStats(admin_pb2.GetStatsRequest(), timeout=30)
    t = r.total
    return {"entries": t.entries, "ac_updates": t.ac_updates, "ac_hits": t.ac_hits,
            "bytes_written": t.bytes_written, "blobs": r.blobs, "bytes_stored": r.bytes_stored}


def action_digests(client):
    """hash -> Digest of every action cache entry (Admin.ListActions), or None
    when the server does not implement ListActions."""
    out, token = {}, ""
    while True:
        try:
            r = client.admin.ListActions(
                admin_pb2.ListActionsRequest(page_size=500, page_token=token), timeout=30)
        except lcreapi.grpc.RpcError as e:
            if e.code() == lcreapi.grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise
        for a in r.actions:
            out[a.action_digest.hash] = a.action_digest
        token = r.next_page_token
        if not token:
            return out


def action_digest(client, known, key):
    """The full Digest of the action whose hash is key. The worker uploads
    the Action message beside its result; without ListActions its size is
    found by asking the CAS which (hash, size) it holds for sizes up to 4 KiB
    (an Action of a step is ~150 bytes)."""
    h = strip_key(key)
    if known is not None:
        return known.get(h)
    cands = [re_pb2.Digest(hash=h, size_bytes=n) for n in range(1, 4097)]
    missing = client.find_missing(cands)
    have = [d for d in cands if lcreapi.dkey(d) not in missing]
    return have[0] if have else None


def strip_key(key):
    return key[len("sha256:"):] if key.startswith("sha256:") else key


def lookup(client, digest):
    try:
        return client.ac.GetActionResult(re_pb2.GetActionResultRequest(action_digest=digest),
                                         timeout=30)
    except lcreapi.grpc.RpcError as e:
        if e.code() == lcreapi.grpc.StatusCode.NOT_FOUND:
            return None
        raise


def cmd_ac(client, keys):
    known = action_digests(client)
    for k in keys:
        d = action_digest(client, known, k)
        print("hit" if d is not None and lookup(client, d) is not None else "miss")


# ---- hostile layers ------------------------------------------------------------

def tar_bytes(build):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        build(tf)
    return buf.getvalue()


def add_file(tf, name, data=b"pwned\n", mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = mode
    tf.addfile(ti, io.BytesIO(data))


def add_dir(tf, name):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    tf.addfile(ti)


def add_link(tf, name, target, hard=False):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    ti.linkname = target
    tf.addfile(ti)


def hostile(case, outside):
    """A layer tar that tries to write `outside` (an absolute directory that is
    not under the worker's state directory): the file `escape-<case>` there,
    or overwrite `outside/victim`."""
    rel = os.path.relpath(outside, "/")  # "tmp/lc-x/..." for ../../.. chains
    dotdots = "../" * 24 + rel  # enough to climb out of any unpack dir

    def b(tf):
        add_dir(tf, "ok")
        add_file(tf, "ok/file", b"fine\n")
        if case == "benign":
            pass  # the control: the same path with a harmless layer must work
        elif case == "dotdot":
            add_file(tf, dotdots + "/escape-dotdot")
        elif case == "dotdot-inner":
            add_file(tf, "ok/../../" + "../" * 22 + rel + "/escape-dotdot-inner")
        elif case == "absolute":
            add_file(tf, outside + "/escape-absolute")
        elif case == "symlink-abs":
            add_link(tf, "evil", outside)
            add_file(tf, "evil/escape-symlink-abs")
        elif case == "symlink-rel":
            add_link(tf, "evil", dotdots)
            add_file(tf, "evil/escape-symlink-rel")
        elif case == "symlink-chain":
            add_link(tf, "ok/a", "../b")
            add_link(tf, "b", dotdots)
            add_file(tf, "ok/a/escape-symlink-chain")
        elif case == "hardlink":
            # A hard link to a file outside, then content written "into" it.
            add_link(tf, "hl", outside + "/victim", hard=True)
            add_file(tf, "hl", b"overwritten\n")
        elif case == "hardlink-rel":
            add_link(tf, "hl", dotdots + "/victim", hard=True)
            add_file(tf, "hl", b"overwritten\n")
        else:
            die("unknown hostile case " + case)
    return tar_bytes(b)


HOSTILE = ["dotdot", "dotdot-inner", "absolute", "symlink-abs", "symlink-rel", "symlink-chain",
           "hardlink", "hardlink-rel"]


def upload(client, data):
    d = digest_of(data)
    if client.is_present(d):
        return d
    client.write(data)
    return d


def cmd_poison(client, key, case, outside):
    ad = action_digest(client, action_digests(client), key)
    if ad is None:
        die("no action cache entry for " + key)
    ar = lookup(client, ad)
    if ar is None:
        die("entry for %s reads as a miss" % key)
    files = {f.path: f.digest for f in ar.output_files}
    state = json.loads(client.read_blob(files["state.json"]))
    raw = hostile(case, outside)
    gz = gzip.compress(raw, mtime=0)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    blob = upload(client, gz)
    top = state["layers"][-1]
    top.update({"digest": "sha256:" + blob.hash, "size": blob.size_bytes, "diffID": diff_id})
    cfg = state.get("config", {})
    if "rootfs" in cfg and cfg["rootfs"].get("diff_ids"):
        cfg["rootfs"]["diff_ids"][-1] = diff_id
    doc = json.dumps(state, sort_keys=True, separators=(",", ":")).encode()
    sd = upload(client, doc)
    new = re_pb2.ActionResult()
    new.CopyFrom(ar)
    del new.output_files[:]
    new.output_files.add(path="state.json", digest=sd)
    for i, layer in enumerate(state["layers"]):
        h = layer["digest"][len("sha256:"):]
        new.output_files.add(path="layers/%d" % i,
                             digest=re_pb2.Digest(hash=h, size_bytes=layer["size"]))
    client.ac.UpdateActionResult(re_pb2.UpdateActionResultRequest(action_digest=ad,
                                                                   action_result=new), timeout=30)
    check = lookup(client, ad)
    if check is None or check.output_files[0].digest.hash != sd.hash:
        die("the poisoned entry does not read back")
    print(json.dumps({"blob": "sha256:" + blob.hash, "diff_id": diff_id,
                      "state": "sha256:" + sd.hash}))


def main(argv):
    if len(argv) < 3:
        die(__doc__)
    cmd, addr = argv[1], argv[2]
    if cmd == "cases":
        print(" ".join(HOSTILE))
        return
    client = lcreapi.Client(addr)
    try:
        if cmd == "stats":
            print(json.dumps(stats(client), sort_keys=True))
        elif cmd == "ac":
            cmd_ac(client, argv[3:])
        elif cmd == "missing":
            ds = []
            for a in argv[3:]:
                h, size = a.split(":")[-2:] if a.count(":") == 2 else (a.split(":")[0], 0)
                ds.append(re_pb2.Digest(hash=h, size_bytes=int(size)))
            missing = client.find_missing(ds)
            for d in ds:
                print("missing" if lcreapi.dkey(d) in missing else "present")
        elif cmd == "poison" and len(argv) == 6:
            cmd_poison(client, argv[3], argv[4], argv[5])
        else:
            die(__doc__)
    finally:
        client.close()


if __name__ == "__main__":
    main(sys.argv)
