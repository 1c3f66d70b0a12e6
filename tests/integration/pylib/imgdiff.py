"""imgdiff - what an OCI image holds, and how two images differ.

Reads an OCI image layout (index.json, manifest, config, layer blobs) and
applies its layers in order the way a runtime unpacks them (OCI image-spec
"Applying Changesets": `.wh.NAME` deletes NAME of the lower layers,
`.wh..wh..opq` empties its directory of the lower layers' entries, a
non-directory replaces whatever was at its path, a directory entry over a
directory only updates its metadata). The result is one record per path:
type, mode (permission, setuid/setgid/sticky bits), owner, link target,
SHA-256 of the content, extended attributes, device numbers, and the other
paths that are hard links to the same file. Modification times are not
recorded: builders are free to normalize them.

Layer listings are cached by diff_id, so a base layer both images share is
read once.

  imgdiff.py list LAYOUT[:TAG]            one line per path
  imgdiff.py diff LAYOUT[:TAG] LAYOUT[:TAG]  the differences (exit 1 if any)
"""

import base64
import fnmatch
import gzip
import hashlib
import json
import os
import stat
import subprocess
import sys
import tarfile
import urllib.parse

REF = "org.opencontainers.image.ref.name"
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


class LayoutError(Exception):
    pass


# ---- reading a layout ----------------------------------------------------------

def _blob(layout, digest):
    if not isinstance(digest, str) or not digest.startswith("sha256:") or "/" in digest:
        raise LayoutError("%s: bad digest %r" % (layout, digest))
    return os.path.join(layout, "blobs", "sha256", digest[len("sha256:"):])


def _json(path):
    with open(path, "rb") as f:
        return json.load(f)


class Image:
    """An image of an OCI layout: .manifest, .manifest_digest, .config and
    .layers, a list of (blob path, media type, diff_id)."""

    def __init__(self, layout, tag=None):
        self.layout = layout
        index = _json(os.path.join(layout, "index.json"))
        mans = index.get("manifests") or []
        if tag is not None:
            mans = [m for m in mans if (m.get("annotations") or {}).get(REF) == tag]
        if len(mans) != 1:
            raise LayoutError("%s: %d images%s in index.json, want 1" % (
                layout, len(mans), " tagged %r" % tag if tag is not None else ""))
        desc = mans[0]
        if desc.get("mediaType") == "application/vnd.oci.image.index.v1+json":
            raise LayoutError("%s: the image is an index (several platforms)" % layout)
        self.manifest_digest = desc["digest"]
        self.manifest = _json(_blob(layout, desc["digest"]))
        self.config = _json(_blob(layout, self.manifest["config"]["digest"]))
        diff_ids = (self.config.get("rootfs") or {}).get("diff_ids") or []
        layers = self.manifest.get("layers") or []
        if len(diff_ids) != len(layers):
            raise LayoutError("%s: %d layers but %d diff_ids" % (layout, len(layers),
                                                                len(diff_ids)))
        self.layers = [(_blob(layout, l["digest"]), l.get("mediaType", ""), d)
                       for l, d in zip(layers, diff_ids)]


def parse_ref(ref):
    """LAYOUT[:TAG] -> (layout, tag or None): the part after the last ':' is a
    tag when the part before it is a directory."""
    if ":" in ref:
        d, t = ref.rsplit(":", 1)
        if os.path.isdir(d) and "/" not in t:
            return d, t
    return ref, None


# ---- reading layers ------------------------------------------------------------

class Entry:
    """One tar member: kind is file, dir, symlink, hardlink, char, block,
    fifo; whiteouts are kept as kind 'whiteout' / 'opaque'."""
    __slots__ = ("path", "kind", "mode", "uid", "gid", "size", "sha256", "target", "xattrs",
                 "dev")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))


def norm(name):
    """A tar member name as an absolute path without a trailing slash."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayoutError("member name with '..': %r" % name)
    return "/" + "/".join(parts)


def _xattrs(ti):
    out = {}
    for k, v in (ti.pax_headers or {}).items():
        if k.startswith("SCHILY.xattr."):
            out[k[len("SCHILY.xattr."):]] = v.encode("utf-8", "surrogateescape")
    for k, v in (ti.pax_headers or {}).items():
        if k.startswith("LIBARCHIVE.xattr."):
            name = urllib.parse.unquote(k[len("LIBARCHIVE.xattr."):])
            out.setdefault(name, base64.b64decode(v + "=" * (-len(v) % 4)))
    return {k: hashlib.sha256(v).hexdigest()[:16] + ":%d" % len(v) for k, v in out.items()}


class _Hashing:
    """A read-only stream that hashes what is read through it."""

    def __init__(self, f):
        self.f, self.h = f, hashlib.sha256()

    def read(self, n=-1):
        b = self.f.read(n)
        self.h.update(b)
        return b

    def drain(self):
        while self.read(1 << 20):
            pass
        return "sha256:" + self.h.hexdigest()


def _open_layer(path, media):
    """(tarfile in stream mode, hashing stream of the uncompressed bytes,
    process to wait for or None)."""
    proc = None
    if media.endswith("+zstd"):
        proc = subprocess.Popen(["zstd", "-dc", path], stdout=subprocess.PIPE)
        raw = proc.stdout
    else:  # gzip (by its magic bytes) or a plain tar
        raw = gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")
    hs = _Hashing(raw)
    return tarfile.open(fileobj=hs, mode="r|", errors="surrogateescape"), hs, proc


def _is_gzip(path):
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def read_layer(path, media="", diff_id=None):
    """Every member of a layer blob as an Entry, in tar order. With diff_id,
    the uncompressed bytes must hash to it (LayoutError otherwise)."""
    tf, hs, proc = _open_layer(path, media)
    out = []
    try:
        for ti in tf:
            p = norm(ti.name)
            base = p.rsplit("/", 1)[1]
            e = Entry(path=p, mode=ti.mode & 0o7777, uid=ti.uid, gid=ti.gid, xattrs=_xattrs(ti))
            if base == OPAQUE:
                e.kind, e.path = "opaque", p.rsplit("/", 1)[0] or "/"
            elif base.startswith(WHITEOUT):
                e.kind = "whiteout"
                e.path = (p.rsplit("/", 1)[0].rstrip("/") + "/" + base[len(WHITEOUT):])
            elif ti.isreg():
                e.kind, e.size = "file", ti.size
                h = hashlib.sha256()
                f = tf.extractfile(ti)
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
                e.sha256 = h.hexdigest()
            elif ti.isdir():
                e.kind = "dir"
            elif ti.issym():
                e.kind, e.target, e.mode = "symlink", ti.linkname, None
            elif ti.islnk():
                e.kind, e.target = "hardlink", norm(ti.linkname)
            elif ti.ischr() or ti.isblk():
                e.kind = "char" if ti.ischr() else "block"
                e.dev = (ti.devmajor, ti.devminor)
            elif ti.isfifo():
                e.kind = "fifo"
            else:
                raise LayoutError("%s: member %r of unknown type %r" % (path, ti.name, ti.type))
            out.append(e)
        got = hs.drain()
    finally:
        tf.close()
        hs.f.close()
        if proc is not None:
            proc.wait()
    if diff_id is not None and got != diff_id:
        raise LayoutError("%s: uncompressed content is %s, the config's diff_id %s"
                          % (path, got, diff_id))
    return out


# ---- applying layers -----------------------------------------------------------

class Node:
    """A path of the unpacked image."""
    __slots__ = ("kind", "mode", "uid", "gid", "size", "sha256", "target", "xattrs", "dev",
                 "inode", "implicit")

    def view(self):
        """The comparable record (inode numbers are replaced by link groups
        in Tree.records)."""
        out = {}
        for k in self.__slots__:
            v = getattr(self, k)
            if k == "inode" or v is None or (k in ("xattrs", "implicit") and not v):
                continue
            out[k] = v
        return out


def _ancestors(p):
    while p != "/":
        p = p.rsplit("/", 1)[0] or "/"
        yield p


class Tree:
    """The file system an image unpacks to: .nodes maps path -> Node."""

    def __init__(self):
        self.nodes = {"/": self._node("dir", mode=0o755, uid=0, gid=0)}
        self.nodes["/"].implicit = True
        self._inodes = 0

    @staticmethod
    def _node(kind, **kw):
        n = Node()
        for k in Node.__slots__:
            setattr(n, k, kw.get(k))
        n.kind = kind
        return n

    def _remove(self, p, keep_self=False):
        pre = p.rstrip("/") + "/"
        for k in [k for k in self.nodes if k.startswith(pre)]:
            del self.nodes[k]
        if not keep_self and p != "/":
            self.nodes.pop(p, None)

    def apply(self, entries):
        deleted = {e.path for e in entries if e.kind == "whiteout"}
        opaque = {e.path for e in entries if e.kind == "opaque"}
        if deleted or opaque:
            # Whiteouts hide lower layers only: drop before adding this layer.
            for k in list(self.nodes):
                if k in deleted or any(a in deleted or a in opaque for a in _ancestors(k)):
                    del self.nodes[k]
        for e in entries:
            if e.kind in ("whiteout", "opaque"):
                continue
            old = self.nodes.get(e.path)
            for a in reversed(list(_ancestors(e.path))):
                if a not in self.nodes:
                    n = self._node("dir", mode=0o755, uid=0, gid=0)
                    n.implicit = True
                    self.nodes[a] = n
                elif self.nodes[a].kind != "dir":
                    raise LayoutError("%s: parent %s is a %s" % (e.path, a, self.nodes[a].kind))
            if e.kind == "hardlink":
                t = self.nodes.get(e.target)
                if t is None or t.kind != "file":
                    raise LayoutError("hard link %s to %s, which is %s" % (
                        e.path, e.target, t.kind if t else "absent"))
                if t.inode is None:
                    self._inodes += 1
                    t.inode = self._inodes
                if old is not None and e.path != e.target:
                    self._remove(e.path)
                self.nodes[e.path] = t
                continue
            n = self._node(e.kind, mode=e.mode, uid=e.uid, gid=e.gid, size=e.size,
                           sha256=e.sha256, target=e.target, xattrs=e.xattrs, dev=e.dev)
            if old is not None and not (old.kind == "dir" and e.kind == "dir"):
                self._remove(e.path)
            self.nodes[e.path] = n

    def records(self):
        """path -> comparable dict, with 'links' (the other paths of the same
        file) for hard-linked files."""
        groups = {}
        for p, n in self.nodes.items():
            if n.inode is not None:
                groups.setdefault(id(n), []).append(p)
        out = {}
        for p, n in self.nodes.items():
            r = n.view()
            g = groups.get(id(n))
            if g and len(g) > 1:
                r["links"] = sorted(x for x in g if x != p)
            out[p] = r
        return out


class Reader:
    """Unpacks images, reading each distinct layer (by diff_id) once."""

    def __init__(self):
        self._layers = {}

    def layer(self, path, media, diff_id):
        if diff_id not in self._layers:
            self._layers[diff_id] = read_layer(path, media, diff_id)
        return self._layers[diff_id]

    def tree(self, image):
        t = Tree()
        for path, media, diff_id in image.layers:
            t.apply(self.layer(path, media, diff_id))
        return t

    def records(self, image):
        return self.tree(image).records()


def walk(root):
    """The records of a directory tree on disk (an unpacked image, e.g. by
    umoci), comparable with Reader.records except for 'implicit'."""
    out, inodes = {}, {}
    kinds = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
             stat.S_IFCHR: "char", stat.S_IFBLK: "block", stat.S_IFIFO: "fifo"}
    broot = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(broot):
        names = dirnames + filenames
        if dirpath == broot:
            names = [b""] + names  # the root itself; other directories via their parent
        for name in names:
            full = os.path.join(dirpath, name) if name else dirpath
            relb = os.path.relpath(full, broot)
            rel = "/" if relb == b"." else "/" + os.fsdecode(relb)
            st = os.lstat(full)
            kind = kinds.get(stat.S_IFMT(st.st_mode))
            r = {"kind": kind, "uid": st.st_uid, "gid": st.st_gid}
            if kind != "symlink":
                r["mode"] = stat.S_IMODE(st.st_mode)
            if kind == "file":
                h = hashlib.sha256()
                with open(full, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                r["sha256"], r["size"] = h.hexdigest(), st.st_size
                if st.st_nlink > 1:
                    inodes.setdefault(st.st_ino, []).append(rel)
            elif kind == "symlink":
                r["target"] = os.fsdecode(os.readlink(full))
            elif kind in ("char", "block"):
                r["dev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
            try:
                names = os.listxattr(full, follow_symlinks=False)
            except OSError:
                names = []
            xa = {}
            for n in names:
                v = os.getxattr(full, n, follow_symlinks=False)
                xa[n] = hashlib.sha256(v).hexdigest()[:16] + ":%d" % len(v)
            if xa:
                r["xattrs"] = xa
            out[rel] = r
    for paths in inodes.values():
        if len(paths) > 1:
            for p in paths:
                out[p]["links"] = sorted(x for x in paths if x != p)
    return out


# ---- comparing -----------------------------------------------------------------

def matches(path, pattern):
    """Whether path or one of its parent directories matches the glob
    pattern ('*' also matches '/')."""
    return fnmatch.fnmatchcase(path, pattern) or \
        fnmatch.fnmatchcase(path, pattern.rstrip("/") + "/*")


def ignored(path, patterns):
    """The reason of the first (glob, reason) pattern that matches path, else None."""
    for pat, why in patterns:
        if matches(path, pat):
            return why
    return None


def show(path):
    """A path for messages: bytes that are not UTF-8 as \\xNN."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def fmt(rec):
    if rec is None:
        return "absent"
    parts = [rec["kind"]]
    if rec.get("mode") is not None:
        parts.append("%04o" % rec["mode"])
    if rec.get("uid") is not None:
        parts.append("%d:%d" % (rec["uid"], rec["gid"]))
    if rec.get("target") is not None:
        parts.append("-> " + show(rec["target"]))
    if rec.get("sha256"):
        parts.append("sha256:%s.. %dB" % (rec["sha256"][:12], rec["size"]))
    if rec.get("xattrs"):
        parts.append("xattrs=%s" % sorted(rec["xattrs"]))
    if rec.get("dev"):
        parts.append("dev=%d,%d" % tuple(rec["dev"]))
    if rec.get("links"):
        parts.append("links=%s" % [show(x) for x in rec["links"]])
    if rec.get("implicit"):
        parts.append("(no entry in any layer)")
    return " ".join(parts)


def diff_records(a, b, ignore=(), names=("A", "B")):
    """Differences between two records maps, as lines; ignore is a list of
    (glob, reason). Implicit directories compare like any other."""
    out = []
    for p in sorted(set(a) | set(b)):
        ra, rb = a.get(p), b.get(p)
        if ra == rb or ignored(p, ignore):
            continue
        if ra is not None and rb is not None:
            # Hard-link groups only differ if the paths not ignored differ.
            la = [x for x in ra.get("links", []) if not ignored(x, ignore)]
            lb = [x for x in rb.get("links", []) if not ignored(x, ignore)]
            if la == lb and {k: v for k, v in ra.items() if k != "links"} == \
                    {k: v for k, v in rb.items() if k != "links"}:
                continue
        out.append("%s: %s %s, %s %s" % (show(p), names[0], fmt(ra), names[1], fmt(rb)))
    return out


CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts",
               "Volumes", "StopSignal", "Healthcheck", "OnBuild")


def config_view(config):
    """The parts of an image config a runtime uses, normalized: Env as a
    sorted list (builders order a replaced variable differently), ports and
    volumes as sorted lists, empty values as absent."""
    c = config.get("config") or {}
    v = {"architecture": config.get("architecture"), "os": config.get("os")}
    if config.get("variant"):
        v["variant"] = config["variant"]
    for k in CONFIG_KEYS:
        x = c.get(k)
        if x in (None, "", [], {}):
            continue
        if k == "Env":
            x = sorted(x)
        elif k in ("ExposedPorts", "Volumes"):
            x = sorted(x)
        v[k] = x
    return v


def strip_config(view, ignore_keys):
    """A config view without ignore_keys: top-level keys, or 'Labels.NAME'."""
    v = dict(view)
    for k in ignore_keys:
        if k.startswith("Labels."):
            if "Labels" in v:
                v["Labels"] = {n: x for n, x in v["Labels"].items() if n != k[len("Labels."):]}
                if not v["Labels"]:
                    del v["Labels"]
        else:
            v.pop(k, None)
    return v


def diff_config(a, b, ignore_keys=(), names=("A", "B")):
    """Differences between two config views (config_view), as lines; ignore_keys
    as strip_config's."""
    out = []
    a, b = strip_config(a, ignore_keys), strip_config(b, ignore_keys)
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            out.append("config %s: %s %s, %s %s" % (k, names[0], json.dumps(a.get(k)), names[1],
                                                    json.dumps(b.get(k))))
    return out


def main(argv):
    if len(argv) == 3 and argv[1] == "list":
        img = Image(*parse_ref(argv[2]))
        for p, r in sorted(Reader().records(img).items()):
            print("%s %s" % (show(p), fmt(r)))
        print(json.dumps(config_view(img.config), sort_keys=True))
        return 0
    if len(argv) == 4 and argv[1] == "diff":
        rd = Reader()
        a, b = Image(*parse_ref(argv[2])), Image(*parse_ref(argv[3]))
        lines = diff_records(rd.records(a), rd.records(b)) + \
            diff_config(config_view(a.config), config_view(b.config))
        for line in lines:
            print(line)
        return 1 if lines else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
