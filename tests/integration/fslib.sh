# shellcheck shell=bash
# fslib.sh - helpers for the tests of what builds put in images (files,
# owners, modes, names, configs): tests/integration/test_build_fs_* and
# test_build_row_*. Source it after buildlib.sh and bl_init:
#
#   fs_base W [NAME] [DOCKERFILE-LINES]  busybox base into worker W's store
#                                        (default fs/base:1; extra lines after
#                                        COPY rootfs/ /, e.g. an ENV)
#   fs_debian_base W                     Debian 12 minbase (scripts/debian-base)
#                                        as localhost/debbase:1 in worker W's
#                                        store and as the OCI layout $work/debbase.oci
#   fs_build W NAME CTX [args]           bl_must_build, image also written to
#                                        $work/NAME.oci (tag latest)
#   fs_unpack NAME                       umoci unpack of $work/NAME.oci as root
#                                        (owners kept) -> $work/NAME.root
#   fs_get NAME PATH                     fstree.py's line for PATH in that root
#   fs_expect NAME PATH PATTERN WHY      that line matches the extended regex
#   fs_config NAME                       the image config JSON of $work/NAME.oci
#   fs_buildah_import OCI TAG NAME       a layout's image into buildah's store
#   fs_buildah_build CTX NAME            Debian's buildah 1.28 (vfs, chroot) builds
#                                        CTX, pushed to $work/NAME.oci and unpacked
#                                        to $work/NAME.root (needs fs_debian_base)

fs_tree=$LC_ROOT/tests/integration/fstree.py

fs_base() {
  local w=$1 name=${2:-fs/base:1} extra=${3:-}
  local ctx=$work/fs-base-ctx
  if [ ! -d "$ctx/rootfs" ]; then
    mkdir -p "$ctx"
    bl_rootfs "$ctx/rootfs"
  fi
  printf 'FROM scratch\nCOPY rootfs/ /\n%b\nCMD ["/bin/sh"]\n' "$extra" >"$ctx/Dockerfile"
  bl_must_build "$w" "fs-base-w$w" -t "$name" "$ctx"
}

fs_debian_base() {
  local w=$1 tar ctx=$work/debbase-ctx
  tar=$("$LC_ROOT/scripts/debian-base") || fail "no Debian base (scripts/debian-base)"
  mkdir -p "$ctx"
  # The tar itself, not a link: ADD reads context files only.
  [ -f "$ctx/root.tar" ] || cp "$tar" "$ctx/root.tar"
  printf 'FROM scratch\nADD root.tar /\nCMD ["bash"]\n' >"$ctx/Dockerfile"
  rm -rf "$work/debbase.oci"
  bl_must_build "$w" "debbase-w$w" -t localhost/debbase:1 \
    --output "type=oci,dest=$work/debbase.oci" "$ctx"
}

fs_build() {
  local w=$1 name=$2
  shift 2
  rm -rf "$work/$name.oci"
  bl_must_build "$w" "$name" --output "type=oci,dest=$work/$name.oci" "$@"
}

fs_unpack() {
  local name=$1 tag=latest
  [ -f "$work/$name.oci/index.json" ] || fail "no OCI layout $work/$name.oci"
  tag=$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]' \
    "$work/$name.oci/index.json")
  rm -rf "$work/$name.bundle"
  umoci unpack --image "$work/$name.oci:$tag" "$work/$name.bundle" >"$work/$name.umoci.log" 2>&1 ||
    fail "umoci unpack $name: $(tail -5 "$work/$name.umoci.log")"
  rm -rf "$work/$name.root"
  mv "$work/$name.bundle/rootfs" "$work/$name.root"
}

fs_get() {
  "$fs_tree" get "$work/$1.root" "$2" || echo "(absent) $2"
}

fs_expect() {
  local line
  line=$(fs_get "$1" "$2")
  [[ $line =~ $3 ]] || fail "$4: $2 is '$line', want /$3/"
  echo "ok: $4"
}

fs_config() {
  local tag
  tag=$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]' \
    "$work/$1.oci/index.json")
  bl_config "$work/$1.oci" "$tag"
}

fs_buildah() {
  buildah --storage-driver vfs --root "$work/buildah/root" --runroot "$work/buildah/run" "$@"
}

# fs_buildah_import OCI-DIR TAG NAME: the layout's image into buildah's
# store as NAME (skopeo writes it: buildah would name it after the path).
fs_buildah_import() {
  mkdir -p "$work/buildah/root" "$work/buildah/run"
  skopeo copy -q "oci:$1:$2" \
    "containers-storage:[vfs@$work/buildah/root+$work/buildah/run]$3" >"$work/buildah-import.log" 2>&1 ||
    fail "skopeo copy $1 into buildah's store: $(tail -5 "$work/buildah-import.log")"
}

fs_buildah_build() {
  local ctx=$1 name=$2
  fs_buildah images -q localhost/debbase:1 >/dev/null 2>&1 ||
    fs_buildah_import "$work/debbase.oci" 1 localhost/debbase:1
  fs_buildah bud --isolation chroot -t "$name" "$ctx" >"$work/$name.buildah.log" 2>&1 ||
    fail "buildah bud $name: $(tail -20 "$work/$name.buildah.log")"
  rm -rf "$work/$name.oci"
  fs_buildah push -q "$name" "oci:$work/$name.oci:latest" >>"$work/$name.buildah.log" 2>&1 ||
    fail "buildah push $name: $(tail -5 "$work/$name.buildah.log")"
  fs_unpack "$name"
}
