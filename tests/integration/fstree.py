#!/usr/bin/python3
"""fstree.py - what an unpacked image root holds, for comparing images.

  fstree.py list ROOT                 one line per path, sorted:
                                      path type mode uid:gid detail
  fstree.py diff ROOT_A ROOT_B [--ignore GLOB]...
                                      the lines only one side has; exit 1 when
                                      the roots differ outside the ignored paths
  fstree.py get ROOT PATH             the line of one path (exit 1 if absent)

detail: a regular file's size and SHA-256, a symlink's target (bytes shown
with backslash escapes), a device's major:minor; plus security.* and user.*
xattrs. Modification times are left out (layers normalize them). Names are
bytes: non-UTF-8 names are shown escaped, never lost.
"""

import fnmatch
import hashlib
import os
import stat
import sys


def esc(b):
    return b.decode("utf-8", "backslashreplace")


def xattrs(p):
    out = []
    try:
        names = os.listxattr(p, follow_symlinks=False)
    except OSError:
        return ""
    for n in sorted(names):
        if n.startswith("security.") or n.startswith("user."):
            if n == "security.selinux":
                continue
            v = os.getxattr(p, n, follow_symlinks=False)
            out.append("%s=%s" % (n, v.hex()))
    return (" xattrs:" + ",".join(out)) if out else ""


def describe(root, rel):
    p = os.path.join(root, rel)
    st = os.lstat(p)
    m = st.st_mode
    if stat.S_ISREG(m):
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        kind, detail = "file", "%d:%s" % (st.st_size, h.hexdigest())
    elif stat.S_ISDIR(m):
        kind, detail = "dir", ""
    elif stat.S_ISLNK(m):
        kind, detail = "link", "-> " + esc(os.readlink(p))
    elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
        kind = "chr" if stat.S_ISCHR(m) else "blk"
        detail = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
    elif stat.S_ISFIFO(m):
        kind, detail = "fifo", ""
    else:
        kind, detail = "other", ""
    return "%s %s %04o %d:%d %s%s" % (esc(rel), kind, stat.S_IMODE(m), st.st_uid, st.st_gid,
                                      detail, xattrs(p))


def walk(root):
    root_b = os.fsencode(root)
    out = {}
    for d, dirs, files in os.walk(root_b):
        for n in dirs + files:
            full = os.path.join(d, n)
            rel = os.path.relpath(full, root_b)
            out[esc(rel)] = describe(root_b, rel)
    return out


def ignored(path, globs):
    return any(fnmatch.fnmatchcase(path, g) or fnmatch.fnmatchcase(path, g + "/*") for g in globs)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "list":
        t = walk(sys.argv[2])
        for k in sorted(t):
            print(t[k])
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "get":
        t = walk(sys.argv[2])
        if sys.argv[3] not in t:
            return 1
        print(t[sys.argv[3]])
        return 0
    if len(sys.argv) >= 4 and sys.argv[1] == "diff":
        a, b = walk(sys.argv[2]), walk(sys.argv[3])
        globs = [sys.argv[i + 1] for i in range(4, len(sys.argv) - 1) if sys.argv[i] == "--ignore"]
        bad = 0
        for k in sorted(set(a) | set(b)):
            if ignored(k, globs):
                continue
            if a.get(k) != b.get(k):
                bad += 1
                print("- " + (a.get(k) or "(absent) " + k))
                print("+ " + (b.get(k) or "(absent) " + k))
        print("%d paths compared, %d differ" % (len(set(a) | set(b)), bad), file=sys.stderr)
        return 1 if bad else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
