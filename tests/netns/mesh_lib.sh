# shellcheck shell=bash
# Mesh topology helpers for the interception tests (tests/netns/test_mesh_*.sh), on top of
# lib.sh. Source it instead of lib.sh:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/mesh_lib.sh"
#
# The topology is a small node:
#
#   node netns (made here): bridge br0, no address, no route anywhere
#     |-- pod netns:  eth0 (veth to br0) 198.18.0.N/24 + fd00::N/64, lo up (+ ::6/128)
#     |-- ...
#     `-- plain hosts: same wiring, but not workloads (an "external" host that stands in for
#         another node, a node-level proxy)
#
# Every address is in 198.18.0.0/15 or fd00::/8 and no namespace has a route out. Proxies
# (HAProxy for IPv4, ml_proxy for IPv6) run as the mesh's proxy uid/gid inside their pod's
# netns AND the test cgroup; app servers and clients run in the test cgroup too. Everything is
# undone by lib.sh's cleanup stack (processes by PID, namespaces, cgroup).
#
# Environment besides lib.sh's: ML_PROXY (default $MESHLANE_BIN/ml_proxy), HAPROXY (default
# haproxy from PATH).
# Over 600 lines on purpose: one library for the mesh topology (nodes, pods, sidecars, the
# istio-iptables rules) that every mesh test sources.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ML_PROXY=${ML_PROXY:-$MESHLANE_BIN/ml_proxy}
HAPROXY=${HAPROXY:-haproxy}
MESH_V4=198.18.0
MESH_V6=fd00:
MESH_NODE_NS=""
MESH_DIR=""

# Interception counters (besides lib.sh's splice counters) that ml_snapshot records.
for ML__C in intercepted_outbound intercepted_to_node_proxy intercepted_inbound_local \
  intercepted_inbound_tc bypassed_excluded bypassed_proxy_own orig_dst_answered orig_dst_unknown \
  spliced_app_to_proxy spliced_proxy_to_proxy spliced_proxy_to_app spliced_other \
  sockets_skipped_blocking denied_connect denied_inbound_tc sockets_skipped_by_workload \
  intercept_skipped_map_full orig_dst_file_failed tc_flow_collisions tc_flows_full; do
  [[ " $ML_COUNTERS " == *" $ML__C "* ]] || ML_COUNTERS+=" $ML__C"
done

# mesh_setup: ml_setup plus the tools the mesh tests use and a directory readable by the proxy
# users (configs and logs of proxies running as a non-root uid).
mesh_setup() {
  ml_setup
  ml_require_cmd "$HAPROXY" setpriv ss tc iptables-save ip6tables-save
  [[ -x $ML_PROXY ]] || ml_fail "ml_proxy not found at $ML_PROXY (set MESHLANE_BIN)"
  # The work directory is 0700; proxies running as their mesh uid must reach their config.
  chmod 711 "$ML_WORKDIR"
  MESH_DIR="$ML_WORKDIR/mesh"
  mkdir -m 755 "$MESH_DIR"
}

# mesh_v4 N / mesh_v6 N: the addresses of host number N.
mesh_v4() { echo "$MESH_V4.$1"; }
mesh_v6() { echo "$MESH_V6:$1"; }

# mesh_make_node: the node netns with bridge br0 (STP off, forwarding at once). Sets
# MESH_NODE_NS.
mesh_make_node() {
  ml_make_netns MESH_NODE_NS node
  host_add_bridge "$MESH_NODE_NS" || ml_fail "no bridge in $MESH_NODE_NS (above)"
}

# mesh_add_host VAR SUFFIX N: a netns on the bridge with eth0 = 198.18.0.N/24 and fd00::N/64
# (nodad), lo up. Its name goes to VAR. Returns once eth0 is up and no address is tentative.
mesh_add_host() {
  local var=$1 suffix=$2 n=$3 ns
  [[ -n $MESH_NODE_NS ]] || ml_fail "mesh_add_host before mesh_make_node"
  ml_make_netns ns "$suffix"
  # Both ends are made inside namespaces: nothing ever appears in the root netns.
  host_add_veth "$MESH_NODE_NS" "mlv$n" "$ns" "$(mesh_v4 "$n")/24" "$(mesh_v6 "$n")/64" ||
    ml_fail "cannot wire $ns to the node bridge (above)"
  if ! host_wait_for "$ML_WAIT_S" host_eth0_usable "$ns"; then
    ip -n "$ns" addr show >&2
    ml_fail "eth0 of $ns did not come up with usable addresses"
  fi
  printf -v "$var" '%s' "$ns"
}

# mesh_add_pod VAR SUFFIX N: a host that will be a workload: also gets ::6/128 on lo, the IPv6
# inbound passthrough source (Istio adds it the same way; 127.0.0.6 is already on lo).
mesh_add_pod() {
  mesh_add_host "$@"
  local ns=${!1}
  ip -n "$ns" addr add ::6/128 dev lo nodad || ml_fail "cannot add ::6 to lo in $ns"
}

# mesh_assert_no_iptables NS...: no iptables or ip6tables rule of any table in each NS (the
# mesh must work without them).
mesh_assert_no_iptables() {
  local ns out
  for ns in "$@"; do
    out=$(ip netns exec "$ns" iptables-save 2>&1; ip netns exec "$ns" ip6tables-save 2>&1)
    if grep -qE '^-A ' <<<"$out"; then
      printf '%s\n' "$out" >&2
      ml_fail "$ns has iptables rules"
    fi
  done
}

# mesh_tc_filters NS [DEV]: the tc filters on DEV's (default eth0) clsact ingress and egress.
mesh_tc_filters() {
  local ns=$1 dev=${2:-eth0}
  ip netns exec "$ns" tc filter show dev "$dev" ingress 2>/dev/null || true
  ip netns exec "$ns" tc filter show dev "$dev" egress 2>/dev/null || true
}

# mesh_sk_lookup_links NS: how many socket-lookup links are attached to NS's network namespace,
# as the kernel lists them (bpftool link).
mesh_sk_lookup_links() {
  local ino
  ino=$(stat -L -c %i "/var/run/netns/$1") || ml_fail "no network namespace $1"
  "$BPFTOOL" -j link show 2>/dev/null | python3 -c '
import json, sys
links = json.load(sys.stdin)
print(sum(1 for l in links if l.get("type") == "netns" and l.get("attach_type") == "sk_lookup"
          and l.get("netns_ino") == int(sys.argv[1])))' "$ino"
}

# mesh_assert_steering NS: meshlane's inbound steering is on NS's interface eth0: tc filters on
# ingress and egress with ML_INBOUND_STEERING=tc, or else (socket-lookup steering, the default)
# one socket-lookup link on its namespace and no tc filter at all.
mesh_assert_steering() {
  local ns=$1
  if [[ ${ML_INBOUND_STEERING:-sk_lookup} == sk_lookup ]]; then
    [[ $(mesh_sk_lookup_links "$ns") -eq 1 ]] ||
      ml_fail "$(mesh_sk_lookup_links "$ns") socket-lookup link(s) on workload $ns, expected 1"
    [[ -z $(mesh_tc_filters "$ns") ]] ||
      ml_fail "tc filters on workload $ns with socket-lookup steering: $(mesh_tc_filters "$ns")"
    return 0
  fi
  [[ -n $(ip netns exec "$ns" tc filter show dev eth0 ingress) ]] ||
    ml_fail "no tc ingress filter on eth0 in workload $ns"
  [[ -n $(ip netns exec "$ns" tc filter show dev eth0 egress) ]] ||
    ml_fail "no tc egress filter on eth0 in workload $ns"
}

# mesh_assert_no_steering NS: neither tc filters on eth0 nor a socket-lookup link in NS.
mesh_assert_no_steering() {
  local ns=$1
  [[ -z $(mesh_tc_filters "$ns") ]] || {
    mesh_tc_filters "$ns" >&2
    ml_fail "tc filters on eth0 in $ns"
  }
  [[ $(mesh_sk_lookup_links "$ns") -eq 0 ]] || ml_fail "a socket-lookup link on $ns"
}

# mesh_assert_cleaned NS...: after `meshlaned --cleanup`: no tc filter on eth0 and no
# socket-lookup link in any NS, no bpffs directory, no program attached to the test cgroup.
mesh_assert_cleaned() {
  local ns
  for ns in "$@"; do
    [[ -z $(mesh_tc_filters "$ns") ]] || {
      mesh_tc_filters "$ns" >&2
      ml_fail "tc filters left on eth0 in $ns after meshlaned --cleanup"
    }
    [[ $(mesh_sk_lookup_links "$ns") -eq 0 ]] ||
      ml_fail "a socket-lookup link left on $ns after meshlaned --cleanup"
  done
  [[ ! -e $ML_BPFFS_DIR ]] || ml_fail "$ML_BPFFS_DIR still exists after meshlaned --cleanup"
  [[ -z $(ml_cgroup_progs "$ML_CG") ]] || {
    ml_cgroup_progs "$ML_CG" >&2
    ml_fail "programs still attached to $ML_CG after meshlaned --cleanup"
  }
}

# ---------------------------------------------------------------------------------------------
# Proxies

# mesh_haproxy_cfg FILE OUT_PORT IN_PORT [IN_SOURCE [STATS_SOCKET]]: an HAProxy sidecar config,
# mode tcp, with a stats socket at STATS_SOCKET if given (mesh_haproxy_sessions reads it).
#   frontend outbound (bind :OUT_PORT) -> server x 0.0.0.0:0   (the original destination)
#   frontend inbound  (bind :IN_PORT)  -> server x 0.0.0.0:0, "source IN_SOURCE" if given
# An empty OUT_PORT or IN_PORT leaves that frontend out (a node proxy has only "outbound").
# Logs one line per connection on stdout, at its end: "FRONTEND CLIENT FRONTEND_ADDR SERVER",
# e.g. "outbound 127.0.0.1:40312 127.0.0.1:15001 198.18.0.11:8080"; SERVER is the address
# HAProxy connected to, i.e. the original destination it got from SO_ORIGINAL_DST.
mesh_haproxy_cfg() {
  local file=$1 out=$2 in=$3 src=${4:-} stats=${5:-}
  {
    cat <<EOF
global
  log stdout format raw local0
  maxconn 512
EOF
    [[ -z $stats ]] || echo "  stats socket $stats mode 600 level user"
    cat <<EOF

defaults
  mode tcp
  log global
  log-format "%ft %ci:%cp %fi:%fp %si:%sp"
  timeout connect 5s
  timeout client 60s
  timeout server 60s
EOF
    if [[ -n $out ]]; then
      cat <<EOF

frontend outbound
  bind :$out
  default_backend outbound_orig

backend outbound_orig
  server x 0.0.0.0:0
EOF
    fi
    if [[ -n $in ]]; then
      cat <<EOF

frontend inbound
  bind :$in
  default_backend inbound_orig

backend inbound_orig
EOF
      [[ -z $src ]] || echo "  source $src"
      echo "  server x 0.0.0.0:0"
    fi
  } >"$file"
  chmod 644 "$file"
}

# mesh__proxy_log LABEL UID: creates the log file of proxy LABEL, writable by UID; prints it.
mesh__proxy_log() {
  local log="$MESH_DIR/$1.log"
  : >"$log"
  chown "$2:$2" "$log"
  chmod 644 "$log"
  echo "$log"
}

# mesh_start_haproxy VAR NS LABEL UID OUT_PORT IN_PORT [IN_SOURCE]: HAProxy as uid/gid UID in NS
# and the test cgroup, with mesh_haproxy_cfg's config; waits until it listens. PID in VAR, log
# in $MESH_DIR/LABEL.log, stats socket $MESH_DIR/LABEL.run/stats.sock.
mesh_start_haproxy() {
  local var=$1 ns=$2 label=$3 uid=$4 out=$5 in=$6 src=${7:-}
  local cfg="$MESH_DIR/$label.cfg" run="$MESH_DIR/$label.run" log pid
  if ! mkdir -m 700 "$run" || ! chown "$uid:$uid" "$run"; then
    ml_fail "cannot create $run for HAProxy's stats socket"
  fi
  mesh_haproxy_cfg "$cfg" "$out" "$in" "$src" "$run/stats.sock"
  log=$(mesh__proxy_log "$label" "$uid")
  ml_bg pid "$log" "$MESH_DIR/$label.err" "$ML_CG" "$ns" \
    setpriv --reuid="$uid" --regid="$uid" --clear-groups "$HAPROXY" -db -f "$cfg"
  local ports=()
  [[ -z $out ]] || ports+=("$out")
  [[ -z $in ]] || ports+=("$in")
  mesh__wait_proxy "$pid" "$ns" "$label" "${ports[@]}"
  printf -v "$var" '%s' "$pid"
}

# mesh_haproxy_sessions LABEL FRONTEND: the sessions HAProxy LABEL's FRONTEND has accepted since
# it started (`show stat` stot). Unlike the log, which HAProxy writes at a session's end and can
# be short of a few lines under load, this counts every session.
mesh_haproxy_sessions() {
  local -A mesh__one=()
  mesh_haproxy_sessions_of mesh__one "$1"
  [[ -n ${mesh__one[$1-$2]+set} ]] || ml_fail "HAProxy $1 has no frontend $2"
  echo "${mesh__one[$1-$2]}"
}

# mesh_haproxy_sessions_of ARRAY LABEL...: ARRAY[LABEL-FRONTEND] = the sessions each frontend of
# each HAProxy LABEL has accepted (as mesh_haproxy_sessions), all read by one process: a Python
# start costs up to 2 s on a loaded 2-CPU machine, and tests read six frontends per step.
mesh_haproxy_sessions_of() {
  local -n mesh__sessions=$1
  local label frontend count failed=0 socks=()
  shift
  for label in "$@"; do socks+=("$label=$MESH_DIR/$label.run/stats.sock"); done
  while read -r label frontend count; do
    if [[ $label == "error" ]]; then failed=1; else mesh__sessions[$label-$frontend]=$count; fi
  done < <(python3 - "${socks[@]}" <<'PY' || echo "error"
import socket, sys
for arg in sys.argv[1:]:
    label, path = arg.split("=", 1)
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(b"show stat\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    for line in data.decode().splitlines():
        fields = line.split(",")
        if len(fields) > 7 and fields[1] == "FRONTEND" and not fields[0].startswith("#"):
            print(label, fields[0], fields[7])
PY
  )
  ((failed == 0)) || ml_fail "cannot read the stats of HAProxy $*"
  for label in "$@"; do
    for frontend in "${!mesh__sessions[@]}"; do [[ $frontend == "$label-"* ]] && continue 2; done
    ml_fail "HAProxy $label reported no frontend"
  done
}

# mesh_start_ml_proxy VAR NS LABEL UID ARGS...: ml_proxy ARGS --log $MESH_DIR/LABEL.log as
# uid/gid UID in NS and the test cgroup; waits until every --listen port listens. PID in VAR.
mesh_start_ml_proxy() {
  local var=$1 ns=$2 label=$3 uid=$4
  shift 4
  local log pid a prev="" ports=()
  for a in "$@"; do
    [[ $prev == --listen ]] && ports+=("$a")
    prev=$a
  done
  log=$(mesh__proxy_log "$label" "$uid")
  ml_bg pid "$MESH_DIR/$label.out" "$MESH_DIR/$label.err" "$ML_CG" "$ns" \
    setpriv --reuid="$uid" --regid="$uid" --clear-groups "$ML_PROXY" "$@" --log "$log"
  mesh__wait_proxy "$pid" "$ns" "$label" "${ports[@]}"
  printf -v "$var" '%s' "$pid"
}

mesh__wait_proxy() {
  local pid=$1 ns=$2 label=$3 rc=0
  shift 3
  host_wait_listen "$ns" "$pid" "$ML_WAIT_S" "$@" || rc=$?
  if [[ $rc -eq 1 ]]; then
    cat "$MESH_DIR/$label.err" >&2
    ml_fail "proxy $label exited before listening on $*"
  fi
  [[ $rc -eq 0 ]] || ml_fail "proxy $label does not listen on $* after $ML_WAIT_S s"
  ml_log "proxy $label (pid $pid) listens on $* in $ns"
}

# mesh_log_lines FILE: number of lines in a proxy log.
mesh_log_lines() { wc -l <"$1"; }

# mesh_log_since FILE START: the lines of FILE after line START (as counted by mesh_log_lines).
mesh_log_since() { tail -n "+$(($2 + 1))" "$1"; }

# mesh_wait_log FILE START REGEX [SECONDS]: waits (default ML_WAIT_S) until a line after START
# matches the extended REGEX (HAProxy logs a connection when it ends, a moment after the
# transfer); returns 1 if none does by then.
mesh_wait_log() {
  local file=$1 start=$2 re=$3 secs=${4:-$ML_WAIT_S}
  host_wait_for "$secs" mesh__log_matches "$file" "$start" "$re"
}
# (grep -c reads the whole log: grep -q would stop at the first match and tail get SIGPIPE.)
mesh__log_matches() {
  local n
  n=$(mesh_log_since "$1" "$2" | grep -cE -- "$3" || true)
  ((n > 0))
}

# mesh_re STRING: STRING with the extended-regex metacharacters escaped.
mesh_re() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|/]/\\&/g'; }

# mesh_dump_logs FILE...: every given log on stderr (for failures).
mesh_dump_logs() {
  local f
  for f in "$@"; do
    echo "----- $f -----" >&2
    tail -n 30 "$f" >&2 2>/dev/null || true
  done
}

# ---------------------------------------------------------------------------------------------
# Workloads

# mesh_workload NAME NS IPS MESH ["KEY = VALUE" ...]: appends the config lines of one
# [[workload]] (netns /var/run/netns/NS) to the array MESH_WL_LINES, one element per line, to
# be passed to ml_daemon_start. IPS is a TOML array body, e.g. '"198.18.0.10", "fd00::10"'.
MESH_WL_LINES=()
mesh_workload() {
  local name=$1 ns=$2 ips=$3 mesh=$4
  shift 4
  MESH_WL_LINES+=("" "[[workload]]" "name = \"$name\"" "netns = \"/var/run/netns/$ns\""
    "ips = [$ips]" "mesh = \"$mesh\"")
  local l
  for l in "$@"; do MESH_WL_LINES+=("$l"); done
}

# ---------------------------------------------------------------------------------------------
# Traffic

# mesh_xfer LABEL SERVER_NS LISTEN CLIENT_NS CONNECT [COMMON ARGS...]: one verified ml_xfer
# transfer between two namespaces, both sides non-blocking (so they may be spliced), both in
# the test cgroup. ML_XFER_WIRE holds the bytes both sides sent; MESH_SERVER_PEER the client
# address the server saw (a.b.c.d:port or [v6]:port, v4-mapped shown as IPv4).
mesh_xfer() {
  local label=$1 sns=$2 listen=$3 cns=$4 connect=$5 pid
  shift 5
  ml_xfer_server_bg pid "$ML_CG" "$sns" "$label" --listen "$listen" --nonblocking "$@"
  ml_xfer_client "$ML_CG" "$cns" "$label" --connect "$connect" --nonblocking "$@"
  ml_xfer_wait_server "$pid" "$label"
  ml_xfer_check "$label" "$ML__CLIENT_RC" "$ML__SERVER_RC"
  MESH_SERVER_PEER=$(sed -n 's/.*accepted conn [0-9]* from \([^ ]*\).*/\1/p' \
    "$ML_WORKDIR/$label.server.err" | sed -n 1p)
  MESH_SERVER_PEER=${MESH_SERVER_PEER/\[::ffff:/}
  [[ $MESH_SERVER_PEER == *.*.*.*\]:* ]] && MESH_SERVER_PEER=${MESH_SERVER_PEER/\]:/:}
  ml_log "$label: $connect from $cns: ok, server saw client $MESH_SERVER_PEER"
}

# mesh_peer_host ADDR:PORT: the address part (IPv6 without brackets).
mesh_peer_host() {
  local a=${1%:*}
  a=${a#[}
  echo "${a%]}"
}

# ---------------------------------------------------------------------------------------------
# Counter assertions between two ml_snapshot PREFIXes

# mesh_assert_rose A B LABEL COUNTER [MIN]: COUNTER rose by at least MIN (default 1).
mesh_assert_rose() {
  local a="${1}_$4" b="${2}_$4"
  local d=$((${!b} - ${!a}))
  [[ $d -ge ${5:-1} ]] || ml_fail "$3: $4 rose by $d, expected at least ${5:-1}"
}

# mesh_assert_flat A B LABEL COUNTER: COUNTER did not change.
mesh_assert_flat() {
  local a="${1}_$4" b="${2}_$4"
  local d=$((${!b} - ${!a}))
  [[ $d -eq 0 ]] || ml_fail "$3: $4 changed by $d, expected no change"
}

# ---------------------------------------------------------------------------------------------
# The scenario suite shared by test_mesh_istio.sh and test_mesh_linkerd.sh
#
# The caller sets, then calls mesh_run_suite:
#   MESH_KIND        istio | linkerd (the workloads' mesh preset)
#   MESH_UID         the preset's proxy uid (= gid)
#   MESH_OUT/MESH_IN the preset's outbound / inbound proxy ports
#   MESH_EXCL_IN     the preset's exclude_inbound_ports, as a TOML array body
#   MESH_SRC4/MESH_SRC6  the inbound proxy's upstream source (istio 127.0.0.6 / ::6), empty
#                    for none; also the address B's app sees for proxied connections (none: B's
#                    own address)
#
# Hosts (198.18.0.N, fd00::N):
#   A  .10  workload with a sidecar; exclude_outbound_ports [9090], exclude_outbound_cidrs X2
#   B  .11  workload with a sidecar; app port 8080 (and 9090, excluded inbound too)
#   C4 .12  sidecarless workload, node_proxy = 198.18.0.50:OUT     (IPv4 phase)
#   C6 .13  sidecarless workload, node_proxy = [fd00::50]:OUT      (IPv6 phase)
#   NP .50  the node-level proxy's netns, not a workload
#   X  .100 an external host (another node), not a workload
#   X2 .101 another external host, in A's exclude_outbound_cidrs
# Phase IPv4: HAProxy sidecars and node proxy. Phase IPv6: ml_proxy sidecars and node proxy.
MESH_APP_PORT=8080
MESH_EXCL_PORT=9090

mesh__build_topology() {
  mesh_make_node
  mesh_add_pod MESH_A a 10
  mesh_add_pod MESH_B b 11
  mesh_add_pod MESH_C4 c4 12
  mesh_add_pod MESH_C6 c6 13
  mesh_add_host MESH_NP np 50
  mesh_add_host MESH_X x 100
  mesh_add_host MESH_X2 x2 101
  MESH_PODS=("$MESH_A" "$MESH_B" "$MESH_C4" "$MESH_C6")
  MESH_ALL=("${MESH_PODS[@]}" "$MESH_NP" "$MESH_X" "$MESH_X2")
}

mesh__workloads() {
  MESH_WL_LINES=()
  mesh_workload pod-a "$MESH_A" "\"$(mesh_v4 10)\", \"$(mesh_v6 10)\"" "$MESH_KIND" \
    "exclude_outbound_ports = [$MESH_EXCL_PORT]" \
    "exclude_outbound_cidrs = [\"$(mesh_v4 101)/32\", \"$(mesh_v6 101)/128\"]"
  mesh_workload pod-b "$MESH_B" "\"$(mesh_v4 11)\", \"$(mesh_v6 11)\"" "$MESH_KIND" \
    "exclude_inbound_ports = [$MESH_EXCL_IN, $MESH_EXCL_PORT]"
  mesh_workload pod-c4 "$MESH_C4" "\"$(mesh_v4 12)\", \"$(mesh_v6 12)\"" "$MESH_KIND" \
    "node_proxy = \"$(mesh_v4 50):$MESH_OUT\""
  mesh_workload pod-c6 "$MESH_C6" "\"$(mesh_v4 13)\", \"$(mesh_v6 13)\"" "$MESH_KIND" \
    "node_proxy = \"[$(mesh_v6 50)]:$MESH_OUT\""
}

# mesh__addr FAMILY N: the address of host N in FAMILY (4 or 6), as used in ADDR:PORT (IPv6 in
# brackets).
mesh__addr() {
  if [[ $1 == 4 ]]; then mesh_v4 "$2"; else echo "[$(mesh_v6 "$2")]"; fi
}

# mesh__log_re KIND FRONTEND CLIENT_RE ORIG: a regex for one proxy log line. KIND haproxy:
# "FRONTEND CLIENT FRONTEND_ADDR SERVER"; KIND ml_proxy: "accepted client=CLIENT local=.. orig=..".
# ORIG is ADDR:PORT as printed by mesh__addr.
mesh__log_re() {
  local kind=$1 fe=$2 client=$3 orig
  orig=$(mesh_re "$4")
  if [[ $kind == haproxy ]]; then
    echo "^$fe $client [^ ]+ $orig\$"
  else
    echo "^accepted client=$client local=[^ ]+ orig=$orig\$"
  fi
}

# mesh__expect_log LABEL FILE START REGEX WHAT: fails unless a line after START matches.
mesh__expect_log() {
  local label=$1 file=$2 start=$3 re=$4 what=$5
  if ! mesh_wait_log "$file" "$start" "$re"; then
    mesh_dump_logs "$file"
    ml_fail "$label: $what: no line matching /$re/ in $file"
  fi
}

# mesh__expect_quiet LABEL START_VAR_PREFIX FILES...: no new line in FILES since the counts
# stored by mesh__mark (HAProxy logs at connection end: give it a moment first).
mesh__mark() {
  local f
  MESH_MARKS=()
  for f in "$@"; do MESH_MARKS+=("$(mesh_log_lines "$f")"); done
}
mesh__expect_quiet() {
  local label=$1 i=0 f new
  shift
  sleep 0.5
  for f in "$@"; do
    new=$(mesh_log_since "$f" "${MESH_MARKS[i]}")
    if [[ -n $new ]]; then
      printf '%s\n' "$new" >&2
      ml_fail "$label: proxy log $f got a line for a connection that should not be proxied"
    fi
    i=$((i + 1))
  done
}

# mesh__phase FAMILY PROXYKIND: every scenario in one address family, with the proxies already
# started (logs in MESH_LOG_A, MESH_LOG_B, MESH_LOG_NP).
mesh__phase() {
  local fam=$1 kind=$2
  local a b c x x2 np app=$MESH_APP_PORT label
  a=$(mesh__addr "$fam" 10)
  b=$(mesh__addr "$fam" 11)
  x=$(mesh__addr "$fam" 100)
  x2=$(mesh__addr "$fam" 101)
  np=$(mesh__addr "$fam" 50)
  local a_re x_re
  a_re=$(mesh_re "$a")
  x_re=$(mesh_re "$x")
  local c_ns=$MESH_C4
  [[ $fam == 6 ]] && c_ns=$MESH_C6
  c=$(mesh__addr "$fam" "$([[ $fam == 4 ]] && echo 12 || echo 13)")
  local proxied_src=$MESH_SRC4
  [[ $fam == 6 ]] && proxied_src=$MESH_SRC6
  [[ -n $proxied_src ]] || proxied_src=$(mesh_peer_host "$b:0")
  local fe_out=outbound fe_in=inbound
  local sa sb snp

  # 1. A's app -> A's sidecar -> B's sidecar -> B's app.
  label="v$fam-mesh"
  ml_log "$label: $MESH_A app -> A sidecar -> B sidecar -> $b:$app"
  sa=$(mesh_log_lines "$MESH_LOG_A")
  sb=$(mesh_log_lines "$MESH_LOG_B")
  ml_snapshot m0
  mesh_xfer "$label" "$MESH_B" "[::]:$app" "$MESH_A" "$b:$app" --bytes 4M --timeout 30
  local wire=$ML_XFER_WIRE
  mesh__expect_log "$label" "$MESH_LOG_A" "$sa" "$(mesh__log_re "$kind" "$fe_out" '[^ ]+' "$b:$app")" \
    "A's outbound proxy did not carry it to the original destination $b:$app"
  mesh__expect_log "$label" "$MESH_LOG_B" "$sb" \
    "$(mesh__log_re "$kind" "$fe_in" "$a_re:[0-9]+" "$b:$app")" \
    "B's inbound proxy did not carry it (from A's address) to $b:$app"
  ml_snapshot m1
  ml_show_delta m0 m1
  [[ $(mesh_peer_host "$MESH_SERVER_PEER") == "$proxied_src" ]] ||
    ml_fail "$label: B's app saw client $MESH_SERVER_PEER, expected B's inbound proxy from $proxied_src"
  mesh_assert_rose m0 m1 "$label" intercepted_outbound
  mesh_assert_rose m0 m1 "$label" intercepted_inbound_local
  mesh_assert_rose m0 m1 "$label" orig_dst_answered 2
  mesh_assert_rose m0 m1 "$label" spliced_app_to_proxy
  mesh_assert_rose m0 m1 "$label" spliced_proxy_to_proxy
  mesh_assert_rose m0 m1 "$label" spliced_proxy_to_app
  mesh_assert_rose m0 m1 "$label" bytes_redirected
  # Each of the 3 local hops carries the transfer's bytes: at least 90% of them per hop must
  # have been redirected (as in ml_assert_spliced), and not more than were sent.
  local redirected
  redirected=$(ml_delta m0 m1 bytes_redirected)
  ml_log "$label: bytes_redirected +$redirected for $wire bytes on each of 3 local hops"
  [[ $((redirected * 10)) -ge $((wire * 3 * 9)) ]] ||
    ml_fail "$label: bytes_redirected rose by $redirected, less than 90% of 3 hops x $wire bytes: a hop was not spliced (redirect_failed +$(ml_delta m0 m1 redirect_failed))"
  [[ $redirected -le $((wire * 3 + wire * 3 / 100 + 3145728)) ]] ||
    ml_fail "$label: bytes_redirected rose by $redirected, more than 3 hops x $wire bytes"

  # 2. Excluded port: A -> B:9090 (excluded outbound in A, inbound in B) goes direct.
  label="v$fam-excluded-port"
  ml_log "$label: $MESH_A app -> $b:$MESH_EXCL_PORT, direct"
  mesh__mark "$MESH_LOG_A" "$MESH_LOG_B"
  ml_snapshot e0
  mesh_xfer "$label" "$MESH_B" "[::]:$MESH_EXCL_PORT" "$MESH_A" "$b:$MESH_EXCL_PORT" --bytes 1M \
    --timeout 30
  mesh__expect_quiet "$label" "$MESH_LOG_A" "$MESH_LOG_B"
  ml_snapshot e1
  ml_show_delta e0 e1
  [[ $(mesh_peer_host "$MESH_SERVER_PEER") == "$(mesh_peer_host "$a:0")" ]] ||
    ml_fail "$label: B's app saw client $MESH_SERVER_PEER, expected A's own address $a"
  mesh_assert_rose e0 e1 "$label" bypassed_excluded
  mesh_assert_flat e0 e1 "$label" intercepted_outbound
  mesh_assert_flat e0 e1 "$label" intercepted_inbound_tc

  # 3. Excluded CIDR: A -> X2:8080 goes direct; control: A -> X:8080 through A's sidecar.
  label="v$fam-excluded-cidr"
  ml_log "$label: $MESH_A app -> $x2:$app (excluded CIDR), direct"
  mesh__mark "$MESH_LOG_A" "$MESH_LOG_B"
  ml_snapshot e0
  mesh_xfer "$label" "$MESH_X2" "[::]:$app" "$MESH_A" "$x2:$app" --bytes 1M --timeout 30
  mesh__expect_quiet "$label" "$MESH_LOG_A" "$MESH_LOG_B"
  ml_snapshot e1
  ml_show_delta e0 e1
  mesh_assert_rose e0 e1 "$label" bypassed_excluded
  mesh_assert_flat e0 e1 "$label" intercepted_outbound
  label="v$fam-outbound-offnode"
  ml_log "$label: $MESH_A app -> $x:$app (not excluded), through A's sidecar"
  sa=$(mesh_log_lines "$MESH_LOG_A")
  ml_snapshot e0
  mesh_xfer "$label" "$MESH_X" "[::]:$app" "$MESH_A" "$x:$app" --bytes 1M --timeout 30
  mesh__expect_log "$label" "$MESH_LOG_A" "$sa" "$(mesh__log_re "$kind" "$fe_out" '[^ ]+' "$x:$app")" \
    "A's outbound proxy did not carry it to $x:$app"
  ml_snapshot e1
  ml_show_delta e0 e1
  mesh_assert_rose e0 e1 "$label" intercepted_outbound
  mesh_assert_flat e0 e1 "$label" bypassed_excluded

  # 4. From off the node: X -> B:8080 is steered by tc to B's inbound proxy.
  label="v$fam-inbound-tc"
  ml_log "$label: $MESH_X (not a workload) -> $b:$app, via tc to B's inbound proxy"
  mesh_assert_steering "$MESH_B"
  sb=$(mesh_log_lines "$MESH_LOG_B")
  ml_snapshot t0
  mesh_xfer "$label" "$MESH_B" "[::]:$app" "$MESH_X" "$b:$app" --bytes 4M --timeout 30
  mesh__expect_log "$label" "$MESH_LOG_B" "$sb" \
    "$(mesh__log_re "$kind" "$fe_in" "$x_re:[0-9]+" "$b:$app")" \
    "B's inbound proxy did not carry the connection from $x to $b:$app"
  ml_snapshot t1
  ml_show_delta t0 t1
  [[ $(mesh_peer_host "$MESH_SERVER_PEER") == "$proxied_src" ]] ||
    ml_fail "$label: B's app saw client $MESH_SERVER_PEER, expected B's inbound proxy from $proxied_src"
  mesh_assert_rose t0 t1 "$label" intercepted_inbound_tc
  mesh_assert_rose t0 t1 "$label" orig_dst_answered

  # 5. Sidecarless: C's app -> the node proxy -> B.
  label="v$fam-node-proxy"
  ml_log "$label: $c_ns app (sidecarless) -> $b:$app, via the node proxy $np:$MESH_OUT"
  snp=$(mesh_log_lines "$MESH_LOG_NP")
  sb=$(mesh_log_lines "$MESH_LOG_B")
  ml_snapshot n0
  mesh_xfer "$label" "$MESH_B" "[::]:$app" "$c_ns" "$b:$app" --bytes 4M --timeout 30
  mesh__expect_log "$label" "$MESH_LOG_NP" "$snp" \
    "$(mesh__log_re "$kind" "$fe_out" "$(mesh_re "$c"):[0-9]+" "$b:$app")" \
    "the node proxy did not carry C's connection to the original destination $b:$app"
  # The node proxy is not a workload: its connection enters B like one from off the node.
  mesh__expect_log "$label" "$MESH_LOG_B" "$sb" \
    "$(mesh__log_re "$kind" "$fe_in" "$(mesh_re "$np"):[0-9]+" "$b:$app")" \
    "B's inbound proxy did not carry the node proxy's connection to $b:$app"
  ml_snapshot n1
  ml_show_delta n0 n1
  mesh_assert_rose n0 n1 "$label" intercepted_to_node_proxy
  mesh_assert_flat n0 n1 "$label" intercepted_outbound
  # C's hop to the node proxy (in the cgroup) is spliced: its server end is this workload's
  # node proxy, which sock_ops knows from the workload (docs/datapath.md, both ends or neither).
  mesh_assert_rose n0 n1 "$label" spliced_app_to_proxy
}

# mesh__direct_after_cleanup FAMILY: A -> B:8080 with the datapath gone: the server sees A's own
# address and no proxy log gets a line.
mesh__direct_after_cleanup() {
  local fam=$1 a b label="v$1-after-cleanup"
  a=$(mesh__addr "$fam" 10)
  b=$(mesh__addr "$fam" 11)
  mesh__mark "$MESH_LOG_A" "$MESH_LOG_B" "$MESH_LOG_NP"
  mesh_xfer "$label" "$MESH_B" "[::]:$MESH_APP_PORT" "$MESH_A" "$b:$MESH_APP_PORT" --bytes 1M \
    --timeout 30
  [[ $(mesh_peer_host "$MESH_SERVER_PEER") == "$(mesh_peer_host "$a:0")" ]] ||
    ml_fail "$label: B's app saw client $MESH_SERVER_PEER, expected A's own address $a (direct)"
  local c=$MESH_C4 cn=12
  [[ $fam == 6 ]] && c=$MESH_C6 && cn=13
  mesh_xfer "$label-c" "$MESH_B" "[::]:$MESH_APP_PORT" "$c" "$b:$MESH_APP_PORT" --bytes 1M \
    --timeout 30
  [[ $(mesh_peer_host "$MESH_SERVER_PEER") == "$(mesh_peer_host "$(mesh__addr "$fam" "$cn"):0")" ]] ||
    ml_fail "$label: B's app saw client $MESH_SERVER_PEER, expected C's own address (direct)"
  mesh__expect_quiet "$label" "$MESH_LOG_A" "$MESH_LOG_B" "$MESH_LOG_NP"
}

mesh_run_suite() {
  : "${MESH_KIND:?}" "${MESH_UID:?}" "${MESH_OUT:?}" "${MESH_IN:?}" "${MESH_EXCL_IN:?}"
  : "${MESH_SRC4?}" "${MESH_SRC6?}"
  mesh_setup
  ml_require_meshlane
  # shellcheck disable=SC2119  # no suffix
  ml_make_cgroup
  mesh__build_topology
  mesh_assert_no_iptables "${MESH_ALL[@]}"

  mesh__workloads
  ml_daemon_start "${MESH_WL_LINES[@]}"
  local ns
  for ns in "${MESH_PODS[@]}"; do mesh_assert_steering "$ns"; done
  ml_log "tc filters in $MESH_B: $(mesh_tc_filters "$MESH_B" | tr '\n' ' ')"
  for ns in "$MESH_NP" "$MESH_X" "$MESH_X2"; do mesh_assert_no_steering "$ns"; done

  # IPv4: HAProxy (it asks SOL_IP SO_ORIGINAL_DST) as sidecars and as the node proxy.
  local pa pb pnp src_arg=()
  ml_log "IPv4 phase: HAProxy sidecars (uid $MESH_UID) and node proxy"
  mesh_start_haproxy pa "$MESH_A" hap-a "$MESH_UID" "$MESH_OUT" "$MESH_IN" "$MESH_SRC4"
  mesh_start_haproxy pb "$MESH_B" hap-b "$MESH_UID" "$MESH_OUT" "$MESH_IN" "$MESH_SRC4"
  mesh_start_haproxy pnp "$MESH_NP" hap-np "$MESH_UID" "$MESH_OUT" ""
  MESH_LOG_A="$MESH_DIR/hap-a.log" MESH_LOG_B="$MESH_DIR/hap-b.log"
  MESH_LOG_NP="$MESH_DIR/hap-np.log"
  mesh__phase 4 haproxy
  host_kill_pid "$pa"
  host_kill_pid "$pb"
  host_kill_pid "$pnp"

  # IPv6: ml_proxy (it asks SOL_IPV6 IP6T_SO_ORIGINAL_DST, as Envoy does).
  ml_log "IPv6 phase: ml_proxy sidecars (uid $MESH_UID) and node proxy"
  [[ -z $MESH_SRC4 ]] || src_arg+=(--source "$MESH_IN:$MESH_SRC4")
  [[ -z $MESH_SRC6 ]] || src_arg+=(--source "$MESH_IN:$MESH_SRC6")
  mesh_start_ml_proxy pa "$MESH_A" mlp-a "$MESH_UID" --listen "$MESH_OUT" --listen "$MESH_IN" \
    "${src_arg[@]}"
  mesh_start_ml_proxy pb "$MESH_B" mlp-b "$MESH_UID" --listen "$MESH_OUT" --listen "$MESH_IN" \
    "${src_arg[@]}"
  mesh_start_ml_proxy pnp "$MESH_NP" mlp-np "$MESH_UID" --listen "$MESH_OUT"
  MESH_LOG_A="$MESH_DIR/mlp-a.log" MESH_LOG_B="$MESH_DIR/mlp-b.log"
  MESH_LOG_NP="$MESH_DIR/mlp-np.log"
  mesh__phase 6 ml_proxy
  if grep -h '^error' "$MESH_LOG_A" "$MESH_LOG_B" "$MESH_LOG_NP" >&2; then
    ml_fail "ml_proxy logged errors (above)"
  fi

  mesh_assert_no_iptables "${MESH_ALL[@]}"

  # Stop and remove meshlane: pods talk directly again.
  ml_log "SIGTERM + meshlaned --cleanup"
  ml_daemon_stop
  [[ $ML_DAEMON_RC -eq 0 ]] || ml_fail "meshlaned exited with status $ML_DAEMON_RC on SIGTERM"
  ml_daemon_cleanup
  mesh_assert_cleaned "${MESH_ALL[@]}"
  mesh__direct_after_cleanup 4
  mesh__direct_after_cleanup 6
  ml_pass
}
