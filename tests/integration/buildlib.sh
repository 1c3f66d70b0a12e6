# shellcheck shell=bash
# buildlib.sh - shared helpers for the `layercache build` integration tests
# (tests/integration/test_build_*). Source it from bash after `set -euo pipefail`:
#
#   . "$(dirname "$0")/buildlib.sh"
#   bl_init build-edits            # temp dir $work, cleanup trap, tool checks
#   bl_server_start                # layercache-server on 127.0.0.1:0 -> $addr, $server_pid
#   bl_base 1                      # demo base image (busybox) into worker 1's store
#   bl_build 1 out CTX [args...]   # build on worker 1; summary in $work/out.json
#   bl_expect out "XXLLR" "why"    # per-step pattern: L local hit, R remote hit, X executed
#
# Every worker N has its own state directory $work/wN, as separate machines
# would. The server and anything mounted under $work are cleaned up on exit,
# whatever happened; the server is stopped by its PID.

: "${LC_BIN:?LC_BIN must name the directory with layercache and layercache-server}"
LC_ROOT=${LC_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
lc=$LC_BIN/layercache
lcs=$LC_BIN/layercache-server
work=
addr=
server_pid=
bl_pids=() # other processes a test started (stopped on exit, by PID)

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Undo every mount under $work (deepest first), stop the server, remove $work.
bl_cleanup() {
  local rc=$? p i
  # SIGTERM first (a registry or server may want to flush), SIGKILL after 5 s.
  for p in "${bl_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${bl_pids[@]}"; do
    for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  bl_pids=()
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  # The server's own sanitizer reports (ASan build) fail the test too.
  if [ -n "$work" ] && grep -E 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:' \
    "$work/server.err" >&2 2>/dev/null; then
    echo "FAIL: sanitizer report from layercache-server (log $work/server.err)" >&2
    rc=1
  fi
  if [ -n "$work" ] && [ -d "$work" ]; then
    local m
    for m in $(awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r); do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    if [ $rc -ne 0 ] || [ -n "${LC_KEEP:-}" ]; then
      # Show the last build's output: the reason is usually there.
      local last
      last=$(ls -t "$work"/*.log 2>/dev/null | head -n 1 || true)
      [ -n "$last" ] && [ $rc -ne 0 ] && { echo "--- tail of $last"; tail -n 30 "$last"; } >&2
    fi
    if [ -n "${LC_KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
  fi
  exit $rc
}

# bl_init NAME [tool...]: temp dir, traps, checks root and the tools.
bl_init() {
  local name=$1 t
  shift
  [ "$(id -u)" -eq 0 ] || fail "needs root (runc, overlayfs)"
  for t in jq runc "$@"; do command -v "$t" >/dev/null || fail "missing tool $t"; done
  [ -x /bin/busybox ] || fail "missing busybox-static (/bin/busybox)"
  [ -x "$lc" ] && [ -x "$lcs" ] || fail "no binaries in $LC_BIN"
  work=$(mktemp -d "/tmp/lc-$name.XXXXXX")
  trap bl_cleanup EXIT
  trap 'exit 143' TERM
  trap 'exit 130' INT
}

# bl_server_start [extra server args]: sets $addr and $server_pid.
bl_server_start() {
  local http=()
  # Loopback only: the HTTP side (when the server has one) on a free port too.
  grep -q -- --http-listen <<<"$("$lcs" --help 2>/dev/null)" && http=(--http-listen 127.0.0.1:0)
  "$lcs" --listen 127.0.0.1:0 "${http[@]}" --data "$work/server-data" "$@" \
    >"$work/server.out" 2>>"$work/server.err" &
  server_pid=$!
  for _ in $(seq 300); do
    grep -q 'listening grpc=' "$work/server.out" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  addr=$(sed -n 's/.*listening grpc=\([^ ]*\).*/\1/p' "$work/server.out")
  [ -n "$addr" ] || { cat "$work/server.err" >&2; fail "server did not start"; }
}

bl_server_kill() { # SIGKILL, as a crash would
  [ -n "$server_pid" ] || return 0
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

# bl_rootfs DIR: a busybox-static root filesystem (2 MB) with users root and app.
bl_rootfs() {
  local r=$1 a
  mkdir -p "$r/bin" "$r/etc" "$r/root" "$r/tmp"
  cp /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/app:/bin/sh\n' >"$r/etc/passwd"
  printf 'root:x:0:\napp:x:1000:\n' >"$r/etc/group"
  chmod 1777 "$r/tmp"
}

# bl_services: copies scripts/demo-services to $work/services with its rootfs.
bl_services() {
  [ -d "$work/services" ] && return 0
  mkdir -p "$work/services"
  local d
  for d in "$LC_ROOT"/scripts/demo-services/*/; do
    d=${d%/}
    mkdir -p "$work/services/$(basename "$d")"
    # Only tracked content: never a rootfs left behind by someone's demo run.
    (cd "$d" && tar --exclude=./rootfs -cf - .) | tar -xf - -C "$work/services/$(basename "$d")"
  done
  bl_rootfs "$work/services/base/rootfs"
}

# bl_base WORKER [NAME]: builds the demo base image (FROM scratch, COPY
# rootfs/) into the worker's image store as demo/base:1 (or NAME), through
# the cache when a server runs.
bl_base() {
  bl_services
  bl_build "$1" "base-w$1" "$work/services/base" -t "${2:-demo/base:1}" >/dev/null ||
    fail "building the base image on worker $1"
}

# bl_build WORKER NAME [build args...] CONTEXT: runs `layercache build` on
# worker WORKER's state dir with the server ($addr, unless BL_CACHE is set:
# empty means no --cache). Summary JSON in $work/NAME.json, stdout+stderr in
# $work/NAME.log. Returns the build's exit status; sanitizer reports fail.
bl_build() {
  local w=$1 name=$2 rc=0
  shift 2
  local cache=()
  if [ -n "${BL_CACHE+set}" ]; then
    [ -n "$BL_CACHE" ] && cache=(--cache "$BL_CACHE")
  elif [ -n "$addr" ]; then
    cache=(--cache "grpc://$addr")
  fi
  rm -f "$work/$name.json"
  "$lc" build --state-dir "$work/w$w" "${cache[@]}" --worker-id "test-worker-$w" \
    --summary-json "$work/$name.json" "$@" >"$work/$name.log" 2>&1 || rc=$?
  if grep -qE 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:' "$work/$name.log"; then
    cat "$work/$name.log" >&2
    fail "sanitizer report in build $name"
  fi
  return $rc
}

# bl_must_build: bl_build that must succeed.
bl_must_build() {
  local name=$2
  bl_build "$@" || { cat "$work/$name.log" >&2; fail "build $name failed"; }
}

# bl_pattern NAME: one letter per step of the summary: L, R or X.
bl_pattern() {
  jq -r '[.steps[] | if .cached == "local" then "L" elif .cached == "remote" then "R" else "X" end] | join("")' \
    "$work/$1.json"
}

# bl_expect NAME PATTERN WHY: the build's per-step hit/miss pattern.
bl_expect() {
  local got
  got=$(bl_pattern "$1")
  if [ "$got" != "$2" ]; then
    jq -r '.steps[] | "  \(.stage) \(.index) \(.cached // "executed")\t\(.instruction)"' "$work/$1.json" >&2
    fail "$3: build $1 pattern $got, want $2"
  fi
  echo "ok: $3 ($got)"
}

bl_manifest() { jq -r .image.manifest_digest "$work/$1.json"; }
bl_total() { jq -r ".summary.$2" "$work/$1.json"; }

# bl_config DIR TAG: the image config JSON of an OCI layout directory.
bl_config() {
  local dir=$1 tag=$2 m c
  m=$(jq -r --arg t "$tag" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' \
    "$dir/index.json" | head -n 1)
  [ -n "$m" ] || fail "no manifest tagged $tag in $dir/index.json"
  c=$(jq -r .config.digest "$dir/blobs/sha256/${m#sha256:}")
  cat "$dir/blobs/sha256/${c#sha256:}"
}
