#!/usr/bin/env bash
# DNS capture without iptables (docs/interception.md, "DNS capture"), against istio-init's DNS
# rules as the baseline. On a node with a DNS server standing in for the cluster DNS (dnsmasq
# on 198.18.0.53/.54/.55 and fd00::53, knows web.cluster.test), three pods:
#   - cap (198.18.0.10): meshlane workload, mesh istio, dns_capture = true, 198.18.0.55 excluded;
#   - ipt (198.18.0.12): not a workload, istio-init's DNS rules (istio-dns-iptables.rules);
#   - plain (198.18.0.11): meshlane workload without dns_capture.
# cap and ipt run the agent's DNS proxy as uid/gid 1337 on 127.0.0.1 and ::1 port 15053 (dnsmasq
# with a query log: it answers proxy-only.mesh.test itself and forwards the rest to the DNS
# server). The same clients run in cap and in ipt and must see the same: dig over UDP and TCP,
# getent ahosts and Python's getaddrinfo (glibc, through the pod's resolv.conf), and an
# unconnected UDP socket with sendto/recvfrom, over IPv4 and IPv6. Each resolves the name only
# the proxy knows, the proxy's log shows the query, the client sees the reply from the address it
# asked (dig would print "reply from unexpected source"; dns_query.py prints the sender), and
# the proxy's forwarded queries reach the server from the pod's address (not captured again).
# A TCP DNS proxy that asks SO_ORIGINAL_DST (ml_proxy, Envoy-like, on dns_proxy_port 15054 in a
# fourth workload) gets the server the app connected to and relays to it.
# meshlane alone: its counters, a loopback resolver and an excluded CIDR left alone, the plain
# workload untouched, and what one socket asking two servers at once sees (the documented limit).
source "$(dirname "${BASH_SOURCE[0]}")/mesh_lib.sh"

for ML__C in dns_captured_udp dns_captured_tcp dns_replies_rewritten dns_server_switched; do
  ML_COUNTERS+=" $ML__C"
done
DNSMASQ=${DNSMASQ:-dnsmasq}
DIG=${DIG:-dig}
QUERY="$(dirname "${BASH_SOURCE[0]}")/dns_query.py"
RULES="$(dirname "${BASH_SOURCE[0]}")/istio-dns-iptables.rules"
PROXY_UID=1337

mesh_setup
ml_require_meshlane
ml_require_cmd "$DNSMASQ" "$DIG" getent python3 iptables-restore ip6tables-restore
# shellcheck disable=SC2119  # no suffix
ml_make_cgroup
mesh_make_node
mesh_add_host DNS dns 53
mesh_add_pod CAP cap 10
mesh_add_pod PLAIN plain 11
mesh_add_pod IPT ipt 12
mesh_add_pod TCPP tcp 13
ip -n "$DNS" addr add 198.18.0.54/24 dev eth0 || ml_fail "cannot add 198.18.0.54"
ip -n "$DNS" addr add 198.18.0.55/24 dev eth0 || ml_fail "cannot add 198.18.0.55"
SERVER4=198.18.0.53 SERVER4B=198.18.0.54 SERVER4X=198.18.0.55 SERVER6=fd00::53

# The pods' resolv.conf: `ip netns exec NS` mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf.
for ns in "$CAP" "$PLAIN" "$IPT"; do
  mkdir -p "/etc/netns/$ns"
  host_defer rm -rf "/etc/netns/$ns"
  echo "nameserver $SERVER4" >"/etc/netns/$ns/resolv.conf"
done
# How long a resolver waits for an answer, in seconds: every query here is answered (REFUSED
# at worst), so the wait is for a slow machine, never for a lost datagram.
DNS_WAIT=20
# set_resolver NS ADDR: rewritten in place (the mount holds the file, not its name).
set_resolver() {
  printf 'nameserver %s\noptions timeout:%s attempts:1\n' "$2" "$DNS_WAIT" >"/etc/netns/$1/resolv.conf"
}

# dnsmasq with its query log (LOG), in the foreground, by PID; waits until it listens on TCP PORT.
start_dnsmasq() {
  local var=$1 cg=$2 ns=$3 label=$4 port=$5 pid
  shift 5
  local log="$MESH_DIR/$label.log"
  : >"$log"
  chmod 666 "$log"
  ml_bg pid "$MESH_DIR/$label.out" "$MESH_DIR/$label.err" "$cg" "$ns" "$@" --keep-in-foreground \
    --conf-file=/dev/null --no-resolv --no-hosts --no-poll --pid-file= --bind-interfaces \
    --port="$port" --log-queries --log-facility="$log"
  mesh__wait_proxy "$pid" "$ns" "$label" "$port"
  printf -v "$var" '%s' "$pid"
}

# The cluster DNS: outside the cgroup, root (kept root: its log is ours).
start_dnsmasq _ - "$DNS" upstream 53 "$DNSMASQ" --user=root --group=root \
  --listen-address=$SERVER4 --listen-address=$SERVER4B --listen-address=$SERVER4X \
  --listen-address=$SERVER6 --host-record=web.cluster.test,198.18.1.10,fd00::1:10
UP_LOG="$MESH_DIR/upstream.log"

MESH_WL_LINES=()
mesh_workload cap "$CAP" '"198.18.0.10", "fd00::10"' istio "dns_capture = true" \
  "exclude_outbound_cidrs = [\"$SERVER4X/32\"]"
mesh_workload plain "$PLAIN" '"198.18.0.11", "fd00::11"' istio
mesh_workload tcp "$TCPP" '"198.18.0.13", "fd00::13"' istio "dns_capture = true" \
  "dns_proxy_port = 15054"
ml_daemon_start "${MESH_WL_LINES[@]}"

ip netns exec "$IPT" iptables-restore <"$RULES" || ml_fail "iptables-restore of $RULES failed"
sed 's#127\.0\.0\.1/32#::1/128#' "$RULES" | ip netns exec "$IPT" ip6tables-restore ||
  ml_fail "ip6tables-restore of $RULES failed"

# The agents' DNS proxies, uid/gid 1337, in the test cgroup: answer proxy-only.mesh.test, forward
# the rest to the cluster DNS (both families).
for pod in cap ipt; do
  ns=$CAP
  [[ $pod == ipt ]] && ns=$IPT
  start_dnsmasq _ "$ML_CG" "$ns" "proxy-$pod" 15053 \
    setpriv --reuid=$PROXY_UID --regid=$PROXY_UID --clear-groups "$DNSMASQ" \
    --listen-address=127.0.0.1 --listen-address=::1 --server=$SERVER4 --cache-size=0 \
    --host-record=proxy-only.mesh.test,198.18.2.2,fd00::2:2
done

# in_pod NS CMD...: CMD in the pod NS and the test cgroup, as the app (root, not the proxy).
in_pod() { host_in "$ML_CG" "$@"; }
lines() { wc -l <"$1"; }
since() { tail -n "+$(($2 + 1))" "$1"; }

# expect_logged LABEL LOG START REGEX WHAT: a line after START of LOG matches REGEX (dnsmasq
# writes its log as it answers, but give it the usual bound).
expect_logged() {
  local label=$1 log=$2 start=$3 re=$4
  if ! host_wait_for "$ML_WAIT_S" mesh__log_matches "$log" "$start" "$re"; then
    since "$log" "$start" >&2
    ml_fail "$label: $5 (no line matching /$re/ in $log)"
  fi
}
expect_not_logged() {
  local label=$1 log=$2 start=$3 re=$4
  if since "$log" "$start" | grep -qE "$re"; then
    since "$log" "$start" >&2
    ml_fail "$label: $5"
  fi
}

# check_dig LABEL POD PROXY_LOG PROTO SERVER NAME TYPE WANT: dig in POD; WANT in the answer
# section, the reply from SERVER, the proxy's log has the query. (The proxy sees the query from
# 127.0.0.1 / ::1 with meshlane, from the pod's address with iptables' REDIRECT, which rewrites
# only the destination.)
check_dig() {
  local label=$1 ns=$2 plog=$3 proto=$4 server=$5 name=$6 type=$7 want=$8 out p0 u0
  local flags=(+time=$DNS_WAIT +tries=1)
  [[ $proto == TCP ]] && flags+=(+tcp)
  p0=$(lines "$plog") u0=$(lines "$UP_LOG")
  out=$(in_pod "$ns" "$DIG" "${flags[@]}" "@$server" "$name" "$type" 2>&1) ||
    ml_fail "$label: dig failed: $out"
  grep -qE "^$(mesh_re "$name")\.[[:space:]].*IN[[:space:]]+$type[[:space:]]+$(mesh_re "$want")\$" \
    <<<"$out" || ml_fail "$label: dig @$server $name $type ($proto) did not answer $want: $out"
  grep -q "^;; SERVER: $(mesh_re "$server")#53" <<<"$out" ||
    ml_fail "$label: dig does not report the reply from $server#53: $out"
  grep -q "unexpected source" <<<"$out" && ml_fail "$label: dig saw a reply from an unexpected source: $out"
  grep -q "($proto)" <<<"$out" || ml_fail "$label: dig did not use $proto: $out"
  expect_logged "$label" "$plog" "$p0" "query\[$type\] $(mesh_re "$name") from [0-9a-f.:]+\$" \
    "the DNS proxy did not get the query"
  if [[ $name == web.cluster.test ]]; then
    expect_logged "$label" "$UP_LOG" "$u0" "query\[$type\] $name from (198\.18\.0\.1[0-2]|fd00::1[0-2])\$" \
      "the proxy's forwarded query did not reach the DNS server from the pod's address"
  else
    expect_not_logged "$label" "$UP_LOG" "$u0" "$(mesh_re "$name")" "the DNS server got $name"
  fi
  ml_log "$label: dig $proto @$server $name $type -> $want, SERVER $server#53, proxy logged it"
}

# check_getent LABEL POD PROXY_LOG SERVER: glibc through resolv.conf (nameserver SERVER).
check_getent() {
  local label=$1 ns=$2 plog=$3 server=$4 out p0
  set_resolver "$ns" "$server"
  p0=$(lines "$plog")
  out=$(in_pod "$ns" getent ahosts proxy-only.mesh.test 2>&1) ||
    ml_fail "$label: getent ahosts proxy-only.mesh.test failed (status $?): $out"
  grep -q '^198\.18\.2\.2 ' <<<"$out" && grep -q '^fd00::2:2 ' <<<"$out" ||
    ml_fail "$label: getent ahosts did not give both addresses: $out"
  expect_logged "$label" "$plog" "$p0" "query\[AAAA\] proxy-only\.mesh\.test from " \
    "the DNS proxy did not get getent's query"
  ml_log "$label: getent ahosts (nameserver $server) -> $(awk '{print $1}' <<<"$out" | sort -u | tr '\n' ' ')"
  out=$(in_pod "$ns" python3 -c '
import socket
print(" ".join(sorted({a[4][0] for a in socket.getaddrinfo("proxy-only.mesh.test", 80)})))' 2>&1) ||
    ml_fail "$label: Python getaddrinfo failed: $out"
  [[ $out == "198.18.2.2 fd00::2:2" ]] || ml_fail "$label: Python getaddrinfo gave [$out]"
  ml_log "$label: Python getaddrinfo (nameserver $server) -> $out"
  set_resolver "$ns" "$SERVER4"
}

# check_sendto LABEL POD PROXY_LOG SERVER TYPE WANT: an unconnected socket's reply comes from
# SERVER port 53 (what recvfrom() reports).
check_sendto() {
  local label=$1 ns=$2 plog=$3 server=$4 type=$5 want=$6 out p0
  p0=$(lines "$plog")
  out=$(in_pod "$ns" python3 "$QUERY" proxy-only.mesh.test "$type" "$server" 2>&1) ||
    ml_fail "$label: dns_query.py failed: $out"
  [[ $out == "reply from $server 53 id "*" rcode 0 answers $want" ]] ||
    ml_fail "$label: unconnected sendto to $server: [$out], expected the reply from $server 53 with $want"
  expect_logged "$label" "$plog" "$p0" "query\[$type\] proxy-only\.mesh\.test from " \
    "the DNS proxy did not get the query"
  ml_log "$label: sendto/recvfrom $server $type -> $out"
}

# check_proxy_uid_untouched LABEL POD: a query as the proxy's uid goes to the server itself, which
# does not know proxy-only.mesh.test (REFUSED), and logs it from the pod's address.
check_proxy_uid_untouched() {
  local label=$1 ns=$2 out u0
  u0=$(lines "$UP_LOG")
  out=$(in_pod "$ns" setpriv --reuid=$PROXY_UID --regid=$PROXY_UID --clear-groups \
    "$DIG" +time=$DNS_WAIT +tries=1 "@$SERVER4" proxy-only.mesh.test A 2>&1) || true
  grep -q 'status: REFUSED' <<<"$out" || ml_fail "$label: the proxy uid's query was not answered by the server: $out"
  expect_logged "$label" "$UP_LOG" "$u0" "query\[A\] proxy-only\.mesh\.test from 198\.18\.0\.1[0-2]\$" \
    "the proxy uid's query did not reach the server"
  ml_log "$label: uid $PROXY_UID's query went to $SERVER4 itself (REFUSED from the server)"
}

# suite LABEL POD PROXY_LOG: what both meshlane and istio-init must do alike.
suite() {
  local label=$1 ns=$2 plog=$3
  check_dig "$label udp4" "$ns" "$plog" UDP $SERVER4 proxy-only.mesh.test A 198.18.2.2
  check_dig "$label udp4 fwd" "$ns" "$plog" UDP $SERVER4 web.cluster.test A 198.18.1.10
  check_dig "$label tcp4" "$ns" "$plog" TCP $SERVER4 proxy-only.mesh.test A 198.18.2.2
  check_dig "$label tcp4 fwd" "$ns" "$plog" TCP $SERVER4 web.cluster.test AAAA fd00::1:10
  check_dig "$label udp6" "$ns" "$plog" UDP $SERVER6 proxy-only.mesh.test AAAA fd00::2:2
  check_dig "$label udp6 fwd" "$ns" "$plog" UDP $SERVER6 web.cluster.test AAAA fd00::1:10
  check_dig "$label tcp6" "$ns" "$plog" TCP $SERVER6 proxy-only.mesh.test A 198.18.2.2
  check_getent "$label v4" "$ns" "$plog" $SERVER4
  check_getent "$label v6" "$ns" "$plog" $SERVER6
  check_sendto "$label sendto4" "$ns" "$plog" $SERVER4 A 198.18.2.2
  check_sendto "$label sendto6" "$ns" "$plog" $SERVER6 AAAA fd00::2:2
  check_proxy_uid_untouched "$label" "$ns"
}

# ---- the baseline: istio-init's rules -------------------------------------------------------
suite iptables "$IPT" "$MESH_DIR/proxy-ipt.log"

# ---- meshlane ---------------------------------------------------------------------------------
ml_snapshot c0
suite meshlane "$CAP" "$MESH_DIR/proxy-cap.log"
ml_snapshot c1
ml_show_delta c0 c1
# Captured UDP: 4 dig UDP, 2 sendto, and one connect per glibc lookup (2 getent, 2 getaddrinfo:
# glibc connects its socket once and sends A and AAAA on it) -> 10; replies shown from their
# server: 4 + 2 + 2 per glibc lookup -> 14; 3 dig TCP connects. At least: nothing else in the pod
# queries, but a client may retry.
(($(ml_delta c0 c1 dns_captured_udp) >= 10)) || ml_fail "dns_captured_udp rose by $(ml_delta c0 c1 dns_captured_udp)"
(($(ml_delta c0 c1 dns_replies_rewritten) >= 14)) ||
  ml_fail "dns_replies_rewritten rose by $(ml_delta c0 c1 dns_replies_rewritten)"
(($(ml_delta c0 c1 dns_captured_tcp) == 3)) || ml_fail "dns_captured_tcp rose by $(ml_delta c0 c1 dns_captured_tcp), expected 3"

# One datagram, counted exactly: one capture, one reply rewritten; and `meshlanectl monitor`
# shows the capture: "intercepted" with reason "dns", to the pod's DNS proxy, the server the app
# addressed as orig_dst.
ml_bg MON_PID "$ML_WORKDIR/monitor.out" "$ML_WORKDIR/monitor.err" - - \
  "$MESHLANE_BIN/meshlanectl" --socket "$ML_WORKDIR/meshlane.sock" -o json monitor --type intercepted
host_wait_for "$ML_WAIT_S" grep -q 'monitor: datapath now emits' "$ML_DAEMON_LOG" ||
  ml_fail "the monitor did not subscribe: $(cat "$ML_WORKDIR/monitor.err")"
ml_snapshot s0
check_sendto "meshlane count" "$CAP" "$MESH_DIR/proxy-cap.log" $SERVER4 A 198.18.2.2
ml_snapshot s1
[[ $(ml_delta s0 s1 dns_captured_udp) == 1 && $(ml_delta s0 s1 dns_replies_rewritten) == 1 ]] ||
  ml_fail "one sendto: dns_captured_udp +$(ml_delta s0 s1 dns_captured_udp), dns_replies_rewritten +$(ml_delta s0 s1 dns_replies_rewritten)"
dns_event() {
  grep '"reason":"dns"' "$ML_WORKDIR/monitor.out" | grep '"orig_dst":"198.18.0.53:53"' |
    grep '"dst":"127.0.0.1:15053"' | grep -q '"workload":"cap"'
}
host_wait_for "$ML_WAIT_S" dns_event ||
  ml_fail "monitor: no intercepted/dns event cap -> 127.0.0.1:15053 (orig 198.18.0.53:53): $(cat "$ML_WORKDIR/monitor.out")"
ml_log "monitor: $(grep '"reason":"dns"' "$ML_WORKDIR/monitor.out" | tail -n 1)"
kill -INT "$MON_PID"
host_wait_exit "$MON_PID" || ml_fail "meshlanectl monitor still runs after SIGINT"

# An excluded CIDR is not captured: the server itself answers (REFUSED for the proxy's name).
u0=$(lines "$UP_LOG") p0=$(lines "$MESH_DIR/proxy-cap.log")
out=$(in_pod "$CAP" "$DIG" +time=$DNS_WAIT +tries=1 "@$SERVER4X" proxy-only.mesh.test A 2>&1) || true
grep -q 'status: REFUSED' <<<"$out" || ml_fail "excluded $SERVER4X: not answered by the server: $out"
expect_logged excluded "$UP_LOG" "$u0" "query\[A\] proxy-only\.mesh\.test from 198\.18\.0\.10\$" \
  "the query to the excluded server did not reach it"
expect_not_logged excluded "$MESH_DIR/proxy-cap.log" "$p0" "proxy-only" "the proxy got a query to an excluded CIDR"
ml_log "excluded CIDR $SERVER4X: answered by the server itself (REFUSED)"

# A resolver on the pod's loopback (127.0.0.53) is not captured.
start_dnsmasq _ "$ML_CG" "$CAP" loopback 53 "$DNSMASQ" --user=root --group=root \
  --listen-address=127.0.0.53 --host-record=loopback-only.test,198.18.3.3
out=$(in_pod "$CAP" "$DIG" +time=$DNS_WAIT +tries=1 @127.0.0.53 loopback-only.test A 2>&1) ||
  ml_fail "dig @127.0.0.53 failed: $out"
grep -qE 'IN[[:space:]]+A[[:space:]]+198\.18\.3\.3$' <<<"$out" ||
  ml_fail "the loopback resolver did not answer: $out"
ml_log "loopback resolver 127.0.0.53: answered itself"

# A workload without dns_capture: its queries go to the server, no counter moves.
ml_snapshot n0
u0=$(lines "$UP_LOG")
for server in $SERVER4 $SERVER6; do
  out=$(in_pod "$PLAIN" "$DIG" +time=$DNS_WAIT +tries=1 "@$server" proxy-only.mesh.test A 2>&1) || true
  grep -q 'status: REFUSED' <<<"$out" || ml_fail "plain pod: @$server not answered by the server: $out"
  out=$(in_pod "$PLAIN" python3 "$QUERY" web.cluster.test A "$server" 2>&1) || ml_fail "plain pod: $out"
  [[ $out == "reply from $server 53 "*"answers 198.18.1.10" ]] || ml_fail "plain pod sendto: $out"
done
expect_logged plain "$UP_LOG" "$u0" "query\[A\] web\.cluster\.test from fd00::11\$" "plain pod's query missing"
ml_snapshot n1
for c in dns_captured_udp dns_captured_tcp dns_replies_rewritten; do
  [[ $(ml_delta n0 n1 $c) == 0 ]] || ml_fail "plain pod moved $c by $(ml_delta n0 n1 $c)"
done
ml_log "workload without dns_capture: untouched, counters flat"

# TCP to port 53 with SO_ORIGINAL_DST answered: ml_proxy (uid 1337) learns the server dig
# connected to, connects there itself (not captured again), and dig gets the server's answer.
mesh_start_ml_proxy _ "$TCPP" tcp-dns "$PROXY_UID" --listen 15054
for server in $SERVER4 $SERVER6; do
  ml_snapshot o0
  start=$(lines "$MESH_DIR/tcp-dns.log") u0=$(lines "$UP_LOG")
  out=$(in_pod "$TCPP" "$DIG" +time=$DNS_WAIT +tries=1 +tcp "@$server" web.cluster.test A 2>&1) ||
    ml_fail "TCP via ml_proxy @$server: dig failed: $out"
  grep -qE 'IN[[:space:]]+A[[:space:]]+198\.18\.1\.10$' <<<"$out" ||
    ml_fail "TCP via ml_proxy @$server: no answer: $out"
  want=$server:53
  [[ $server == *:* ]] && want="[$server]:53"
  expect_logged "tcp orig dst" "$MESH_DIR/tcp-dns.log" "$start" "^accepted .* orig=$(mesh_re "$want")\$" \
    "ml_proxy did not get $want from SO_ORIGINAL_DST"
  expect_logged "tcp orig dst" "$UP_LOG" "$u0" "query\[A\] web\.cluster\.test from (198\.18\.0\.13|fd00::13)\$" \
    "ml_proxy's upstream connection did not reach the server"
  ml_snapshot o1
  [[ $(ml_delta o0 o1 dns_captured_tcp) == 1 ]] && (($(ml_delta o0 o1 orig_dst_answered) >= 1)) ||
    ml_fail "TCP via ml_proxy: dns_captured_tcp +$(ml_delta o0 o1 dns_captured_tcp), orig_dst_answered +$(ml_delta o0 o1 orig_dst_answered)"
  ml_log "TCP @$server via an SO_ORIGINAL_DST proxy: $(grep '^accepted' "$MESH_DIR/tcp-dns.log" | tail -n1)"
done

# The limit: one unconnected socket asking two servers before reading. The socket remembers the
# server it addressed last, so both replies appear to come from it (dns_server_switched counts
# the switch). Both replies arrive, each from a server the socket asked (enough for musl, which
# asks all its servers at once and takes the first reply from any of them).
ml_snapshot t0
out=$(in_pod "$CAP" python3 "$QUERY" proxy-only.mesh.test A $SERVER4 $SERVER4B 2>&1) ||
  ml_fail "two servers: $out"
[[ $(grep -c "^reply from $SERVER4B 53 .* answers 198.18.2.2\$" <<<"$out") == 2 ]] ||
  ml_fail "two servers at once: expected both replies shown from $SERVER4B (the last asked): $out"
ml_snapshot t1
[[ $(ml_delta t0 t1 dns_server_switched) == 1 ]] ||
  ml_fail "dns_server_switched rose by $(ml_delta t0 t1 dns_server_switched), expected 1"
ml_log "two servers at once from one socket: $(tr '\n' ';' <<<"$out")"

ml_pass
