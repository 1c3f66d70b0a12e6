"""debbase - the real Debian 12 base image of the corpus tests and the
real-Dockerfile benchmark, as an OCI image layout both builders start from.

scripts/debian-base makes (once, offline, from apt's own mirror) a minbase
rootfs tar. Here that tar becomes an OCI layout like Docker Hub's debian:12:
the rootfs layer, a second layer with the apt and dpkg configuration the
official image carries (DOCKER_CONFIG: no .deb files or package caches left
behind by an install, no translations, no service starts), and the config it
has (PATH, CMD ["bash"]). The layout is cached beside the tar, so the rootfs
is compressed once, not per run. layercache imports the layout
(`layercache image import`), buildah pulls it from the same layout
(`buildah pull oci:DIR:TAG`): both start from byte-identical layer blobs.

  debbase.py layout      prints the layout directory (making it if needed)
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.environ.get("LC_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
TAG = "12"
# What `docker image inspect debian:12` shows; ENV PATH=...:$PATH in the
# corpus expands this value.
BASE_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
BASE_CMD = ["bash"]
# Bump when the layout's construction changes (invalidates cached layouts).
LAYOUT_VERSION = "2"

# What docker-library's debian images add to debootstrap's rootfs
# (debuerreotype's minimizing configuration): `apt-get install` leaves no
# .deb files and no pkgcache.bin in the layer, Dockerfiles that want apt's
# cache (RUN --mount=type=cache) remove docker-clean first.
_CLEAN = ('"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
          '/var/cache/apt/*.bin || true"')
DOCKER_CONFIG = [
    ("etc/apt/apt.conf.d/docker-clean", 0o644,
     "DPkg::Post-Invoke { %s; };\nAPT::Update::Post-Invoke { %s; };\n"
     'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n' % (_CLEAN, _CLEAN)),
    ("etc/apt/apt.conf.d/docker-autoremove-suggests", 0o644,
     'Apt::AutoRemove::SuggestsImportant "false";\n'),
    ("etc/apt/apt.conf.d/docker-no-languages", 0o644, 'Acquire::Languages "none";\n'),
    ("etc/dpkg/dpkg.cfg.d/docker-apt-speedup", 0o644, "force-unsafe-io\n"),
    ("usr/sbin/policy-rc.d", 0o755, "#!/bin/sh\nexit 101\n"),
]


def base_tar():
    """Path of the cached minbase rootfs tar (scripts/debian-base makes it once)."""
    p = subprocess.run([os.path.join(ROOT, "scripts", "debian-base")], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError("scripts/debian-base failed:\n" + p.stderr.decode(errors="replace"))
    return p.stdout.decode().strip().splitlines()[-1]


def arch():
    return subprocess.run(["dpkg", "--print-architecture"], stdout=subprocess.PIPE,
                          check=True).stdout.decode().strip()


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}


def _config_layer():
    """(gzip blob, diff_id) of the DOCKER_CONFIG layer: root-owned files and
    their parent directories, fixed times."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dirs = sorted({"/".join(p.split("/")[:i]) for p, _, _ in DOCKER_CONFIG
                       for i in range(1, p.count("/") + 1)})
        for d in dirs:
            ti = tarfile.TarInfo(d + "/")
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1686355200
            tf.addfile(ti)
        for path, mode, text in DOCKER_CONFIG:
            data = text.encode()
            ti = tarfile.TarInfo(path)
            ti.size, ti.mode, ti.mtime = len(data), mode, 1686355200
            tf.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0), "sha256:" + hashlib.sha256(raw).hexdigest()


def _make_layout(tar, dest):
    """Writes the layout of tar into the new directory dest."""
    os.makedirs(os.path.join(dest, "blobs", "sha256"))
    diff_id = _sha256_file(tar)
    gz = os.path.join(dest, "layer.tar.gz")
    # gzip -n: no name or time in the header, the same bytes every time.
    with open(gz, "wb") as out:
        subprocess.run(["gzip", "-n", "-6", "-c", tar], stdout=out, check=True)
    ld = _sha256_file(gz)
    size = os.path.getsize(gz)
    os.rename(gz, os.path.join(dest, "blobs", "sha256", ld))
    cfg_blob, cfg_diff_id = _config_layer()
    cl = _write_blob(dest, cfg_blob)
    created = "2023-06-10T00:00:00Z"  # bookworm's release: fixed, so the digest is stable
    config = {
        "architecture": arch(), "os": "linux", "created": created,
        "config": {"Env": BASE_ENV, "Cmd": BASE_CMD},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id, cfg_diff_id]},
        "history": [{"created": created,
                     "created_by": "debootstrap --variant=minbase bookworm (scripts/debian-base)"},
                    {"created": created,
                     "created_by": "docker-library's apt and dpkg configuration (debbase.py)"}],
    }
    cd = _write_blob(dest, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": dict(cd, mediaType="application/vnd.oci.image.config.v1+json"),
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + ld, "size": size},
                   dict(cl, mediaType="application/vnd.oci.image.layer.v1.tar+gzip")],
    }
    md = _write_blob(dest, json.dumps(manifest, sort_keys=True).encode())
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [dict(md, mediaType="application/vnd.oci.image.manifest.v1+json",
                                annotations={"org.opencontainers.image.ref.name": TAG})]}
    with open(os.path.join(dest, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(dest, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


def layout():
    """The OCI layout directory of the base image (tag TAG), cached beside
    the rootfs tar and remade when the tar changes. Safe against concurrent
    callers: made in a temporary directory, then renamed into place."""
    tar = base_tar()
    st = os.stat(tar)
    stamp = "%s-%d-%d" % (LAYOUT_VERSION, st.st_size, int(st.st_mtime))
    dest = tar[:-len(".tar")] + ".oci" if tar.endswith(".tar") else tar + ".oci"
    stamp_file = os.path.join(dest, "stamp")
    try:
        with open(stamp_file) as f:
            if f.read().strip() == stamp:
                return dest
    except OSError:
        pass
    tmp = tempfile.mkdtemp(prefix=".layout.", dir=os.path.dirname(dest))
    try:
        _make_layout(tar, os.path.join(tmp, "oci"))
        with open(os.path.join(tmp, "oci", "stamp"), "w") as f:
            f.write(stamp + "\n")
        old = None
        if os.path.exists(dest):
            old = tempfile.mkdtemp(prefix=".old.", dir=os.path.dirname(dest))
            try:
                os.rename(dest, os.path.join(old, "oci"))
            except OSError:
                pass  # another caller moved it first
        try:
            os.rename(os.path.join(tmp, "oci"), dest)
        except OSError:
            pass  # another caller put its (identical) layout there first
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def main(argv):
    if argv[1:] == ["layout"]:
        print(layout())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
