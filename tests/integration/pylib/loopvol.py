"""loopvol - a real filesystem of a fixed size on a loop device, made by a test.

tmpfs behaves unlike a disk when it fills (no delayed allocation, no
journal, no preallocation), so disk-full tests run on ext4 or xfs images:
truncate + mkfs + losetup + mount, every name unique to this process (the
image and the mount point live in fresh temporary directories; the kernel
hands out the loop device). Always unmounted and detached: by close(),
and by the cleanup hooks of lcreapi whatever ends the test.
"""

import os
import shutil
import subprocess
import tempfile
import time

from lcreapi import on_cleanup


def _run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


class LoopVolume:
    def __init__(self, fstype="ext4", size_mib=128):
        if fstype not in ("ext4", "xfs"):
            raise ValueError("fstype must be ext4 or xfs")
        self.fstype = fstype
        self.dev = None
        self.mounted = False
        self.dir = tempfile.mkdtemp(prefix="lc-loop-%d-" % os.getpid())
        self.image = os.path.join(self.dir, "image")
        self.mnt = os.path.join(self.dir, "mnt")
        os.mkdir(self.mnt)
        on_cleanup(self.close)
        with open(self.image, "wb") as f:
            f.truncate(size_mib << 20)
        if fstype == "ext4":
            # No reserved root blocks: the server runs as root here and would
            # otherwise see 5 % more space than an unprivileged one.
            mk = ["mkfs.ext4", "-q", "-F", "-m", "0", self.image]
        else:
            mk = ["mkfs.xfs", "-q", "-f", self.image]
        r = _run(mk)
        if r.returncode != 0:
            raise RuntimeError("%s failed: %s" % (mk[0], r.stdout.decode(errors="replace")))
        r = _run(["losetup", "--find", "--show", self.image])
        if r.returncode != 0:
            raise RuntimeError("losetup failed: %s" % r.stdout.decode(errors="replace"))
        self.dev = r.stdout.decode().strip()
        r = _run(["mount", "-t", fstype, self.dev, self.mnt])
        if r.returncode != 0:
            raise RuntimeError("mount failed: %s" % r.stdout.decode(errors="replace"))
        self.mounted = True

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def free_bytes(self):
        st = os.statvfs(self.mnt)
        return st.f_bavail * st.f_frsize

    def fill(self, name="filler", leave=0):
        """Another process fills the volume (dd until ENOSPC, then fsync);
        with leave, stops that many bytes short. Returns the file's path."""
        p = self.path(name)
        if leave:
            n = max(0, self.free_bytes() - leave) >> 20
            _run(["dd", "if=/dev/zero", "of=" + p, "bs=1M", "count=%d" % n, "conv=fsync"])
        else:
            _run(["dd", "if=/dev/zero", "of=" + p, "bs=1M", "conv=fsync"])
            # The last partial MiB dd could not write: fill it 4 KiB at a
            # time (on xfs even opening the full file can fail).
            try:
                fd = os.open(p, os.O_WRONLY | os.O_APPEND)
            except OSError:
                fd = None
            if fd is not None:
                try:
                    while True:
                        os.write(fd, b"\0" * 4096)
                except OSError:
                    pass
                try:
                    os.fsync(fd)
                except OSError:
                    pass
                os.close(fd)
        return p

    def close(self):
        if self.mounted:
            for _ in range(50):
                if _run(["umount", self.mnt]).returncode == 0:
                    break
                time.sleep(0.1)
            else:
                _run(["umount", "-l", self.mnt])
            self.mounted = False
        if self.dev is not None:
            _run(["losetup", "-d", self.dev])
            self.dev = None
        shutil.rmtree(self.dir, ignore_errors=True)
