# registrylib.sh - a Debian docker-registry (distribution 2.8) on 127.0.0.1
# for the registry tests (tests/integration/test_registry_*). Source it after
# buildlib.sh and bl_init:
#
#   . "$(dirname "$0")/buildlib.sh"; . "$(dirname "$0")/registrylib.sh"
#   bl_init registry-pull skopeo docker-registry
#   rl_registry_start                 # plain HTTP -> $reg (127.0.0.1:PORT), $reg_log
#   rl_registry_start tls CERT KEY HTPASSWD   # HTTPS with htpasswd basic auth
#   rl_blob_gets                      # blob GETs answered so far (from its log)
#   rl_base_layout DIR                # the demo base image as an OCI layout, tag "1"
#
# Registries are stopped by PID on exit (before buildlib's own cleanup).

reg=
reg_log=
reg_pids=()

rl_cleanup() {
  local rc=$? p
  set +e
  for p in "${reg_pids[@]}"; do
    kill -TERM "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  reg_pids=()
  (exit $rc)
  bl_cleanup
}
# bl_init (often called after this file is sourced) sets its own EXIT trap:
# rl_registry_start installs this one again, so a registry is always stopped.
trap rl_cleanup EXIT

rl_free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# rl_registry_start [tls CERT KEY [HTPASSWD]]: sets $reg, $reg_log, $reg_dir.
rl_registry_start() {
  local port i dir tls="" auth=""
  port=$(rl_free_port)
  dir=$(mktemp -d "$work/registry.XXXXXX")
  mkdir -p "$dir/data"
  if [ "${1:-}" = tls ]; then
    tls=$(printf '  tls:\n    certificate: %s\n    key: %s\n' "$2" "$3")
    [ -n "${4:-}" ] && auth=$(printf 'auth:\n  htpasswd:\n    realm: layercache-test\n    path: %s\n' "$4")
  fi
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$tls
$auth
EOF
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  reg_pids+=($!)
  trap rl_cleanup EXIT
  for i in $(seq 200); do
    grep -q 'listening on' "$dir/log" 2>/dev/null && break
    sleep 0.05
  done
  grep -q 'listening on' "$dir/log" || fail "registry did not start: $(tail -5 "$dir/log")"
  reg=127.0.0.1:$port
  reg_log=$dir/log
  reg_dir=$dir
}

# rl_blob_gets: how many blob GETs the registry answered (its access log).
rl_blob_gets() {
  grep -cE '"GET /v2/[^ ]*/blobs/sha256:[0-9a-f]{64} HTTP' "$reg_log" || true
}

# rl_base_layout DIR [CONTEXT]: the demo base (busybox rootfs, FROM scratch;
# or the image of CONTEXT) built on worker 0 without a cache, written as an
# OCI layout whose image is tagged "1".
rl_base_layout() {
  local dest=$1
  bl_services
  BL_CACHE= bl_must_build 0 base-layout -t demo/base:1 --output "type=oci,dest=$dest" \
    "${2:-$work/services/base}"
}

# rl_push_layout DIR REF: copies the layout's image "1" to the registry.
rl_push_layout() {
  skopeo copy -q --dest-tls-verify=false "oci:$1:1" "docker://$2" >"$work/skopeo.log" 2>&1 ||
    fail "skopeo copy $1 to $2: $(cat "$work/skopeo.log")"
}
