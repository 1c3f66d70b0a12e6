# shellcheck shell=bash
# netlib.sh - a network the test controls, for RUN networking tests and
# bench/bench-network: a network namespace of the test's own joined to the
# host by a veth pair, with an HTTP server in it, and a listener on the
# worker's 127.0.0.1. Source after buildlib.sh (or set $work and fail()):
#
#   nl_init                       # names from the pid; cleanup hooked in
#   nl_netns_up                   # ns $nl_ns, server address $nl_ip (host side $nl_host_ip)
#   nl_http_serve DIR             # python3 http.server on $nl_ip:80 in the ns
#   nl_loopback_listen            # HTTP on the worker's 127.0.0.1:$nl_lo_port
#
# Everything (processes by PID, the veth, the namespace) goes on exit,
# whatever trap wins. Names and addresses come from the pid, so parallel
# runs never collide.

nl_ns= nl_veth= nl_ip= nl_host_ip= nl_lo_port=
nl_pids=()

nl_cleanup() {
  local p
  for p in "${nl_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${nl_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  nl_pids=()
  [ -n "$nl_veth" ] && ip link del "$nl_veth" 2>/dev/null || true
  [ -n "$nl_ns" ] && ip netns del "$nl_ns" 2>/dev/null || true
  nl_veth= nl_ns=
}

# nl_init: names from the pid, cleanup before buildlib's (which keeps $?).
nl_init() {
  local t
  for t in ip; do command -v "$t" >/dev/null || fail "missing tool $t"; done
  [ -x /usr/bin/python3 ] || fail "missing /usr/bin/python3"
  nl_ns="lcnet$$"
  nl_veth="lcv$$"
  # 10.(200-249).x.y/30 from the pid: a /30 of our own
  local a=$((200 + ($$ % 50))) b=$((($$ / 50) % 256)) c=$(((($$ / 12800) % 64) * 4))
  nl_host_ip="10.$a.$b.$((c + 1))"
  nl_ip="10.$a.$b.$((c + 2))"
  trap 'nl_rc=$?; nl_cleanup; (exit $nl_rc); bl_cleanup' EXIT
}

nl_netns_up() {
  ip netns add "$nl_ns" || fail "ip netns add $nl_ns"
  ip link add "$nl_veth" type veth peer name "${nl_veth}p" || fail "ip link add $nl_veth"
  ip link set "${nl_veth}p" netns "$nl_ns"
  ip addr add "$nl_host_ip/30" dev "$nl_veth"
  ip link set "$nl_veth" up
  ip -n "$nl_ns" addr add "$nl_ip/30" dev "${nl_veth}p"
  ip -n "$nl_ns" link set "${nl_veth}p" up
  ip -n "$nl_ns" link set lo up
}

# nl_http_serve DIR: serves DIR on $nl_ip:80 inside the namespace.
nl_http_serve() {
  ip netns exec "$nl_ns" /usr/bin/python3 -m http.server --bind "$nl_ip" --directory "$1" 80 \
    >"$work/nl-http.log" 2>&1 &
  nl_pids+=($!)
  local i
  for i in $(seq 100); do
    curl -s -o /dev/null "http://$nl_ip:80/" && return 0
    sleep 0.05
  done
  fail "the HTTP server in $nl_ns did not start: $(cat "$work/nl-http.log")"
}

# nl_loopback_listen: an HTTP server on the worker's own 127.0.0.1 (what a
# RUN step must not reach); its port in $nl_lo_port, checked reachable.
nl_loopback_listen() {
  mkdir -p "$work/nl-lo"
  echo "loopback-secret-$$" >"$work/nl-lo/index.html"
  /usr/bin/python3 -c '
import http.server, sys, os
os.chdir(sys.argv[1])
s = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
print(s.server_address[1], flush=True)
s.serve_forever()' "$work/nl-lo" >"$work/nl-lo.port" 2>"$work/nl-lo.log" &
  nl_pids+=($!)
  local i
  for i in $(seq 100); do
    nl_lo_port=$(head -n 1 "$work/nl-lo.port" 2>/dev/null || true)
    [ -n "$nl_lo_port" ] && curl -s "http://127.0.0.1:$nl_lo_port/" | grep -q loopback-secret && return 0
    sleep 0.05
  done
  fail "the loopback listener did not start: $(cat "$work/nl-lo.log")"
}
