#!/usr/bin/env bash
# Workloads changed on SIGHUP while traffic flows (istio preset, no iptables rule anywhere).
# Pods A (198.18.0.10, fd00::10) and B (.11, ::11) on a node bridge, each with a sidecar
# (uid/gid 1337, outbound 15001, inbound 15006, passthrough source 127.0.0.6 / ::6); B excludes
# inbound port 9090. Host X (.100, ::100) on the same bridge is never a workload (it stands in
# for another node). The daemon starts with B as the only workload. Two rounds, the same steps
# each: IPv4 with HAProxy sidecars, then IPv6 with ml_proxy sidecars (HAProxy only asks SOL_IP):
#   0. A is not a workload: no tc filter on A's eth0, B has its filters. A -> B:9090 goes
#      direct (B's app sees A's address, no proxy log line); A -> B:8080 does not pass A's
#      sidecar (no log line, intercepted_outbound flat) and is steered by B's tc to B's
#      inbound sidecar (intercepted_inbound_tc). Long-lived connection LL-tc opens: A's app ->
#      B:8081 (steered by B's tc), a paced transfer in both directions.
#   1. A is added to the config file, SIGHUP: the daemon logs "reload: 2 workload(s) applied";
#      A's eth0 has meshlane's tc ingress and egress filters; A -> B:8080 passes A's sidecar
#      (its log shows orig B:8080, then B's inbound sidecar from A's address; the app sees the
#      passthrough source; intercepted_outbound, intercepted_inbound_local and
#      orig_dst_answered rise, intercepted_inbound_tc does not); A -> B:9090 passes A's
#      sidecar too (orig B:9090), which reaches B's app directly (B's app sees A's address,
#      intercepted_inbound_local flat). Long-lived connection LL-sidecar opens: A's app -> A's
#      sidecar -> B's sidecar -> B:8082. Long-lived connection LL-in opens: X's app -> A:8083
#      (A's app listens there), steered by A's tc to A's inbound sidecar: A's app sees the
#      passthrough source, intercepted_inbound_tc rises, intercepted_outbound and
#      intercepted_inbound_local do not (ml_proxy logs the accept from X's address at once,
#      HAProxy at the connection's end: checked in step 4).
#   2. Broken configs, each with A left out (so a partial apply would show as A removed),
#      SIGHUP after each: an unknown key, then a workload whose netns does not exist. Each
#      time the daemon logs "reload rejected, nothing changed" naming the problem, logs no
#      "reload: N workload(s) applied", keeps running; A's tc filters remain and A -> B:8080
#      still passes A's sidecar (orig B:8080, intercepted_outbound rises).
#   3. A is removed from the config file, SIGHUP: "reload: 1 workload(s) applied" and
#      "workload pod-a removed; its tc filters stay until its steered connections end", and
#      no "tc filters removed" yet: LL-in is still open, so A's tc filters stay (B's remain).
#      A -> B:9090 goes direct again (A's address, no proxy log line) and A -> B:8080 no
#      longer passes A's sidecar (no log line, intercepted_outbound flat) but is still steered
#      by B's tc to B's inbound sidecar (B is still a workload). A NEW connection X -> A:8083
#      is no longer steered: A's app sees X's own address, no proxy logs a line,
#      intercepted_inbound_tc flat. A's tc filters are still there while LL-in is open.
#   4. The long-lived connections, which must have moved bytes in both directions between
#      every two steps (LL-tc across steps 1-3, LL-sidecar and LL-in across steps 2-3, i.e.
#      across A's removal), finish: every byte verified both ways, exact counts (what each side
#      received is what the other sent), a single connection each, the server's app saw the
#      passthrough source (LL-tc and LL-sidecar went through B's inbound sidecar, LL-in through
#      A's, whose log has a line for it from X's address). LL-in first: until it has ended, no
#      "tc filters removed" for pod-a; then the daemon logs "workload pod-a: tc filters removed
#      (no steered connection left)" (a drain check runs every 2 s; ML_WAIT_S at most), A's tc
#      filters are gone and B's remain.
# Round 2 re-adds A after its removal in round 1. Then SIGTERM (exit 0) + meshlaned --cleanup:
# no tc filter anywhere, no pin, nothing attached to the test cgroup.
# The long-lived connections are a small paced Python sender/checker (long_stream.py, started
# and checked by long_conns.sh), non-blocking sockets as a mesh app would use. They send until
# the test tells them to finish, however long its steps take. The daemon gets its own control
# socket and state directory in the work directory.
# shellcheck source-path=SCRIPTDIR source=mesh_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/mesh_lib.sh"
# shellcheck source-path=SCRIPTDIR source=long_conns.sh
source "$(dirname "${BASH_SOURCE[0]}")/long_conns.sh"
# With tc steering whatever daemon.inbound_steering defaults to: tc's filters draining after a workload's removal are part of what this tests (socket-lookup steering drains nothing: test_sk_lookup_steering.sh).
export ML_INBOUND_STEERING=tc

UID_ISTIO=1337
OUT=15001
IN=15006
EXCL_IN="15008, 15020, 15021, 15090"
APP=8080
EXCL=9090
LL_TC_PORT=8081
LL_SC_PORT=8082
LL_IN_PORT=8083

# ---------------------------------------------------------------------------------------------
# Config and daemon

# write_cfg WITH_A [EXTRA_LINE...]: writes $ML_CONFIG atomically: B always, A when WITH_A is 1,
# then EXTRA_LINEs (inside [acceleration] unless they open a table). The control socket and
# the state directory are this test's own.
write_cfg() {
  local with_a=$1 tmp="$ML_CONFIG.tmp"
  shift
  MESH_WL_LINES=()
  if [[ $with_a == 1 ]]; then
    mesh_workload pod-a "$NS_A" "\"$(mesh_v4 10)\", \"$(mesh_v6 10)\"" istio
  fi
  mesh_workload pod-b "$NS_B" "\"$(mesh_v4 11)\", \"$(mesh_v6 11)\"" istio \
    "exclude_inbound_ports = [$EXCL_IN, $EXCL]"
  local extra=("$@")
  # Anything after a "[[workload]]" must come after the workloads: put EXTRA_LINEs first.
  ml_write_config "$tmp" "${extra[@]}" "${MESH_WL_LINES[@]}"
  grep -q '^socket = ' "$tmp" || sed -i "/^\[daemon\]\$/a socket = \"$ML_WORKDIR/meshlaned.sock\"" "$tmp"
  grep -q '^state_dir = ' "$tmp" || sed -i "/^\[daemon\]\$/a state_dir = \"$ML_WORKDIR/state\"" "$tmp"
  mv -f "$tmp" "$ML_CONFIG"
}

# daemon_start: as ml_daemon_start, with write_cfg's config (B only). --cleanup at exit uses a
# copy that names both pods, so that it removes every tc filter whatever config was last
# written (a broken one would not parse).
daemon_start() {
  ml_require_meshlane
  ML_DAEMON_SEQ=$((ML_DAEMON_SEQ + 1))
  ML_CONFIG="$ML_WORKDIR/meshlane-$ML_DAEMON_SEQ.toml"
  write_cfg 1
  cp "$ML_CONFIG" "$ML_WORKDIR/cleanup.toml"
  write_cfg 0
  ml_daemon_start_with_config "$ML_CONFIG" "$ML_WORKDIR/cleanup.toml"
}

# expect_applied LABEL N: the reload was applied with N workloads.
expect_applied() {
  grep -qE "reload: $2 workload\(s\) applied \($2 from the config file, 0 live\)" <<<"$RELOAD_LINES" || {
    ml_dump_daemon_log
    ml_fail "$1: no 'reload: $2 workload(s) applied ($2 from the config file, 0 live)' after SIGHUP"
  }
  ! grep -q 'reload rejected' <<<"$RELOAD_LINES" || ml_fail "$1: the reload was rejected"
}

# expect_rejected LABEL WHAT_RE: the reload was rejected with a message matching WHAT_RE.
expect_rejected() {
  grep -qE "reload rejected, nothing changed: .*$2" <<<"$RELOAD_LINES" || {
    ml_dump_daemon_log
    ml_fail "$1: no 'reload rejected, nothing changed: ...$2...' after SIGHUP"
  }
  ! grep -qE 'reload: [0-9]+ workload\(s\) applied' <<<"$RELOAD_LINES" ||
    ml_fail "$1: a rejected reload logged 'workload(s) applied'"
  ! grep -v 'reload rejected' <<<"$RELOAD_LINES" | grep -qE 'workload [^ ]+ removed|workload [^ ]+: netns' ||
    ml_fail "$1: a rejected reload changed workloads"
}

# ---------------------------------------------------------------------------------------------
# tc filters

# tc_has NS: meshlane's ingress and egress programs are on NS's eth0.
tc_has() {
  ip netns exec "$1" tc filter show dev eth0 ingress 2>/dev/null | grep -q 'ml_tc_ingress' &&
    ip netns exec "$1" tc filter show dev eth0 egress 2>/dev/null | grep -q 'ml_tc_egress'
}

expect_tc() {
  tc_has "$2" || {
    mesh_tc_filters "$2" >&2
    ml_fail "$1: meshlane's tc ingress/egress filters are not on eth0 in $2"
  }
}

expect_no_tc() {
  [[ -z $(mesh_tc_filters "$2") ]] || {
    mesh_tc_filters "$2" >&2
    ml_fail "$1: tc filters on eth0 in $2, which is not a workload"
  }
}

# ---------------------------------------------------------------------------------------------
# The checks of one connection from A

# counted_xfer LABEL SERVER_NS PORT CLIENT_NS DEST: a verified 1 MiB transfer each way from
# CLIENT_NS to DEST, the server app on [::]:PORT in SERVER_NS (mesh_xfer), between the counter
# snapshots s0 and s1 (their deltas shown).
counted_xfer() {
  ml_snapshot s0
  mesh_xfer "$1" "$2" "[::]:$3" "$4" "$5" --bytes 1M --timeout 30
  ml_snapshot s1
  ml_show_delta s0 s1
}

# a_via_sidecar LABEL FAM KIND PORT: A -> B:PORT passes A's sidecar (its log shows orig B:PORT)
# and intercepted_outbound rises.
a_via_sidecar() {
  local label=$1 fam=$2 kind=$3 port=$4 a b sa
  a=$(mesh__addr "$fam" 10)
  b=$(mesh__addr "$fam" 11)
  sa=$(mesh_log_lines "$LOG_A")
  counted_xfer "$label" "$NS_B" "$port" "$NS_A" "$b:$port"
  mesh__expect_log "$label" "$LOG_A" "$sa" "$(mesh__log_re "$kind" outbound '[^ ]+' "$b:$port")" \
    "A's outbound sidecar did not carry it to the original destination $b:$port"
  mesh_assert_rose s0 s1 "$label" intercepted_outbound
  mesh_assert_rose s0 s1 "$label" orig_dst_answered
  mesh_assert_flat s0 s1 "$label" intercepted_inbound_tc
}

# a_mesh LABEL FAM KIND: A -> B:8080 passes A's sidecar, then B's inbound sidecar (from A's
# address) via intercepted_inbound_local; B's app sees the passthrough source.
a_mesh() {
  local label=$1 fam=$2 kind=$3 a b sb
  a=$(mesh__addr "$fam" 10)
  b=$(mesh__addr "$fam" 11)
  sb=$(mesh_log_lines "$LOG_B")
  a_via_sidecar "$label" "$fam" "$kind" "$APP"
  mesh__expect_log "$label" "$LOG_B" "$sb" \
    "$(mesh__log_re "$kind" inbound "$(mesh_re "$a"):[0-9]+" "$b:$APP")" \
    "B's inbound sidecar did not carry it (from A's address) to $b:$APP"
  mesh_assert_rose s0 s1 "$label" intercepted_inbound_local
  mesh_assert_rose s0 s1 "$label" orig_dst_answered 2
  [[ $(mesh_peer_host "$MESH_SERVER_PEER") == "$SRC" ]] ||
    ml_fail "$label: B's app saw client $MESH_SERVER_PEER, expected B's inbound sidecar from $SRC"
}

# direct_conn LABEL FAM CLIENT SERVER PORT: a connection CLIENT -> SERVER:PORT (each A, B or X)
# that nothing intercepts goes direct: SERVER's app sees CLIENT's own address, no proxy logs a
# line, no interception counter moves (A -> B:9090, excluded inbound in B, while A is not a
# workload; X -> A:8083 once A is no longer a workload).
direct_conn() {
  local label=$1 fam=$2 c=$3 s=$4 port=$5 c_addr s_addr
  c_addr=$(mesh__addr "$fam" "${NUM_OF[$c]}")
  s_addr=$(mesh__addr "$fam" "${NUM_OF[$s]}")
  mesh__mark "$LOG_A" "$LOG_B"
  counted_xfer "$label" "${NS_OF[$s]}" "$port" "${NS_OF[$c]}" "$s_addr:$port"
  mesh__expect_quiet "$label" "$LOG_A" "$LOG_B"
  [[ $(mesh_peer_host "$MESH_SERVER_PEER") == "$(mesh_peer_host "$c_addr:0")" ]] ||
    ml_fail "$label: $s's app saw client $MESH_SERVER_PEER, expected $c's own address $c_addr (direct)"
  mesh_assert_flat s0 s1 "$label" intercepted_outbound
  mesh_assert_flat s0 s1 "$label" intercepted_inbound_tc
  mesh_assert_flat s0 s1 "$label" intercepted_inbound_local
}

# a_not_workload LABEL FAM KIND: A -> B:8080 does not pass A's sidecar (no line in its log,
# intercepted_outbound flat) and is steered by B's tc to B's inbound sidecar, which logs A's
# address; B's app sees the passthrough source.
a_not_workload() {
  local label=$1 fam=$2 kind=$3 a b sb
  a=$(mesh__addr "$fam" 10)
  b=$(mesh__addr "$fam" 11)
  mesh__mark "$LOG_A"
  sb=$(mesh_log_lines "$LOG_B")
  counted_xfer "$label" "$NS_B" "$APP" "$NS_A" "$b:$APP"
  mesh__expect_log "$label" "$LOG_B" "$sb" \
    "$(mesh__log_re "$kind" inbound "$(mesh_re "$a"):[0-9]+" "$b:$APP")" \
    "B's tc did not steer A's connection to B's inbound sidecar"
  mesh__expect_quiet "$label" "$LOG_A"
  [[ $(mesh_peer_host "$MESH_SERVER_PEER") == "$SRC" ]] ||
    ml_fail "$label: B's app saw client $MESH_SERVER_PEER, expected B's inbound sidecar from $SRC"
  mesh_assert_flat s0 s1 "$label" intercepted_outbound
  mesh_assert_flat s0 s1 "$label" intercepted_inbound_local
  mesh_assert_rose s0 s1 "$label" intercepted_inbound_tc
}

# drain_lines FROM: the daemon log lines after line FROM that report pod-a's tc filters removed.
drain_lines() {
  tail -n "+$(($1 + 1))" "$ML_DAEMON_LOG" | grep -F 'workload pod-a: tc filters removed' || true
}

# ---------------------------------------------------------------------------------------------
# One round: steps 0-4 in one address family

round() {
  local fam=$1 kind=$2 p=v$1 a b x a_re x_re
  a=$(mesh__addr "$fam" 10)
  b=$(mesh__addr "$fam" 11)
  x=$(mesh__addr "$fam" 100)
  a_re=$(mesh_re "$a")
  x_re=$(mesh_re "$x")

  # 0. A is not a workload.
  ml_log "$p round: A is not a workload"
  expect_no_tc "$p-start" "$NS_A"
  expect_tc "$p-start" "$NS_B"
  expect_no_tc "$p-start" "$NS_X"
  direct_conn "$p-0-excl-direct" "$fam" A B "$EXCL"
  a_not_workload "$p-0-not-workload" "$fam" "$kind"
  ml_snapshot l0
  ll_start "$p-ll-tc" nb "$NS_B" "[::]:$LL_TC_PORT" "$NS_A" "$b:$LL_TC_PORT"
  ml_snapshot l1
  mesh_assert_rose l0 l1 "$p-ll-tc" intercepted_inbound_tc
  mesh_assert_flat l0 l1 "$p-ll-tc" intercepted_outbound
  ll_checkpoint "$p-ll-tc" "its start"

  # 1. A becomes a workload.
  ml_log "$p round: A added to the config, SIGHUP"
  write_cfg 1
  ml_sighup "$p-1-add"
  expect_applied "$p-1-add" 2
  expect_tc "$p-1-add" "$NS_A"
  expect_tc "$p-1-add" "$NS_B"
  a_mesh "$p-1-mesh" "$fam" "$kind"
  # 9090 is not excluded in A: through A's sidecar, which connects to B:9090 directly (B
  # excludes it inbound), so B's app sees A's address.
  a_via_sidecar "$p-1-excl-via-sidecar" "$fam" "$kind" "$EXCL"
  mesh_assert_flat s0 s1 "$p-1-excl-via-sidecar" intercepted_inbound_local
  [[ $(mesh_peer_host "$MESH_SERVER_PEER") == "$(mesh_peer_host "$(mesh__addr "$fam" 10):0")" ]] ||
    ml_fail "$p-1-excl-via-sidecar: B's app saw client $MESH_SERVER_PEER, expected A's address (A's sidecar, direct to B)"
  ll_checkpoint "$p-ll-tc" "adding A"
  ml_snapshot l0
  ll_start "$p-ll-sidecar" nb "$NS_B" "[::]:$LL_SC_PORT" "$NS_A" "$b:$LL_SC_PORT"
  ml_snapshot l1
  mesh_assert_rose l0 l1 "$p-ll-sidecar" intercepted_outbound
  mesh_assert_rose l0 l1 "$p-ll-sidecar" intercepted_inbound_local
  mesh_assert_flat l0 l1 "$p-ll-sidecar" intercepted_inbound_tc
  ll_checkpoint "$p-ll-sidecar" "its start"
  # LL-in: X (not a workload) -> A:8083, steered by A's tc to A's inbound sidecar.
  local sa_in
  sa_in=$(mesh_log_lines "$LOG_A")
  ml_snapshot l0
  ll_start "$p-ll-in" nb "$NS_A" "[::]:$LL_IN_PORT" "$NS_X" "$a:$LL_IN_PORT"
  ml_snapshot l1
  ml_show_delta l0 l1
  mesh_assert_rose l0 l1 "$p-ll-in" intercepted_inbound_tc
  mesh_assert_flat l0 l1 "$p-ll-in" intercepted_outbound
  mesh_assert_flat l0 l1 "$p-ll-in" intercepted_inbound_local
  [[ $(ll_server_peer "$p-ll-in") == "$SRC" ]] ||
    ml_fail "$p-ll-in: A's app saw client $(ll_server_peer "$p-ll-in"), expected A's inbound sidecar from $SRC"
  if [[ $kind == ml_proxy ]]; then # HAProxy logs at the connection's end (checked in step 4)
    mesh__expect_log "$p-ll-in" "$LOG_A" "$sa_in" \
      "$(mesh__log_re "$kind" inbound "$x_re:[0-9]+" "$a:$LL_IN_PORT")" \
      "A's inbound sidecar did not carry X's connection to $a:$LL_IN_PORT"
  fi
  ll_checkpoint "$p-ll-in" "its start"

  # 2. Broken configs (without A) are rejected as a whole.
  ml_log "$p round: broken configs, SIGHUP"
  write_cfg 0 "no_such_key_$fam = true"
  ml_sighup "$p-2-unknown-key"
  expect_rejected "$p-2-unknown-key" "no_such_key_$fam"
  write_cfg 0 "" "[[workload]]" "name = \"ghost\"" \
    "netns = \"/var/run/netns/ml-$ML_TAG-ghost\"" "ips = [\"$(mesh_v4 99)\"]" "mesh = \"istio\""
  [[ ! -e /var/run/netns/ml-$ML_TAG-ghost ]] || ml_fail "ml-$ML_TAG-ghost exists"
  ml_sighup "$p-2-missing-netns"
  expect_rejected "$p-2-missing-netns" "ghost"
  # The daemon reads the file only on SIGHUP; the good one goes back for --stats, which parses it.
  write_cfg 1
  expect_tc "$p-2-rejected" "$NS_A"
  expect_tc "$p-2-rejected" "$NS_B"
  a_mesh "$p-2-still-mesh" "$fam" "$kind"
  ll_checkpoint "$p-ll-tc" "the rejected reloads"
  ll_checkpoint "$p-ll-sidecar" "the rejected reloads"
  ll_checkpoint "$p-ll-in" "the rejected reloads"

  # 3. A is removed.
  ml_log "$p round: A removed from the config, SIGHUP"
  local removed_at
  removed_at=$(wc -l <"$ML_DAEMON_LOG")
  write_cfg 0
  ml_sighup "$p-3-remove"
  expect_applied "$p-3-remove" 1
  grep -q 'workload pod-a removed' <<<"$RELOAD_LINES" ||
    ml_fail "$p-3-remove: no 'workload pod-a removed' in the daemon log"
  grep -qF 'workload pod-a removed; its tc filters stay until its steered connections end' \
    <<<"$RELOAD_LINES" ||
    ml_fail "$p-3-remove: no 'workload pod-a removed; its tc filters stay until its steered connections end' in the daemon log"
  [[ -z $(drain_lines "$removed_at") ]] || {
    drain_lines "$removed_at" >&2
    ml_fail "$p-3-remove: pod-a's tc filters were removed while LL-in, steered by them, is open"
  }
  # LL-in still needs A's filters: they stay (B's too).
  expect_tc "$p-3-remove" "$NS_A"
  expect_tc "$p-3-remove" "$NS_B"
  ll_checkpoint "$p-ll-in" "removing A"
  direct_conn "$p-3-excl-direct" "$fam" A B "$EXCL"
  a_not_workload "$p-3-not-workload" "$fam" "$kind"
  direct_conn "$p-3-x-direct" "$fam" X A "$LL_IN_PORT"
  ll_checkpoint "$p-ll-tc" "removing A"
  ll_checkpoint "$p-ll-sidecar" "removing A"
  ll_checkpoint "$p-ll-in" "removing A and a direct connection to A:$LL_IN_PORT"
  expect_tc "$p-3-draining" "$NS_A"
  [[ -z $(drain_lines "$removed_at") ]] || {
    drain_lines "$removed_at" >&2
    ml_fail "$p-3-draining: pod-a's tc filters were removed while LL-in, steered by them, is open"
  }

  # 4. The long-lived connections complete: LL-in first (ll_finish returns once both of its
  # ends have exited), then A's filters go.
  ll_finish "$p-ll-in" "$SRC"
  local t0 ms drained
  t0=$(date +%s%N)
  while :; do
    drained=$(drain_lines "$removed_at")
    ms=$((($(date +%s%N) - t0) / 1000000))
    if [[ -n $drained ]] || ((ms > ML_WAIT_S * 1000)); then
      break
    fi
    sleep 0.1
  done
  [[ -n $drained ]] || {
    ml_dump_daemon_log
    mesh_tc_filters "$NS_A" >&2
    ml_fail "$p-4-drained: no 'workload pod-a: tc filters removed' in the daemon log within $ML_WAIT_S s of LL-in's end"
  }
  ml_log "$p-4-drained: after ${ms} ms: $drained"
  grep -qF 'workload pod-a: tc filters removed (no steered connection left)' <<<"$drained" || {
    ml_dump_daemon_log
    ml_fail "$p-4-drained: pod-a's tc filters were removed for another reason than 'no steered connection left'"
  }
  expect_no_tc "$p-4-drained" "$NS_A"
  expect_tc "$p-4-drained" "$NS_B"
  mesh__expect_log "$p-ll-in" "$LOG_A" "$sa_in" \
    "$(mesh__log_re "$kind" inbound "$x_re:[0-9]+" "$a:$LL_IN_PORT")" \
    "A's inbound sidecar has no line for the long-lived connection from $x to $a:$LL_IN_PORT"
  ll_finish "$p-ll-tc" "$SRC"
  ll_finish "$p-ll-sidecar" "$SRC"
  # Each went through B's inbound sidecar, LL-sidecar through A's as well.
  mesh__expect_log "$p-ll-tc" "$LOG_B" 0 "$(mesh__log_re "$kind" inbound "$a_re:[0-9]+" "$b:$LL_TC_PORT")" \
    "B's inbound sidecar has no line for the long-lived connection to $b:$LL_TC_PORT"
  mesh__expect_log "$p-ll-sidecar" "$LOG_A" 0 "$(mesh__log_re "$kind" outbound '[^ ]+' "$b:$LL_SC_PORT")" \
    "A's outbound sidecar has no line for the long-lived connection to $b:$LL_SC_PORT"
  ! grep -qE -- "$(mesh__log_re "$kind" outbound '[^ ]+' "$b:$LL_TC_PORT")" "$LOG_A" ||
    ml_fail "$p-ll-tc: A's sidecar carried the long-lived connection opened before A was a workload"
}

# ---------------------------------------------------------------------------------------------

mesh_setup
ml_require_meshlane
ml_require_cmd python3
# shellcheck disable=SC2119  # no suffix
ml_make_cgroup
mesh_make_node
mesh_add_pod NS_A a 10
mesh_add_pod NS_B b 11
mesh_add_host NS_X x 100
declare -A NS_OF=([A]=$NS_A [B]=$NS_B [X]=$NS_X) NUM_OF=([A]=10 [B]=11 [X]=100)
mesh_assert_no_iptables "$NS_A" "$NS_B" "$NS_X"

daemon_start
grep -qE '1 workload\(s\) applied \(1 from the config file, 0 live' "$ML_DAEMON_LOG" ||
  ml_fail "the daemon did not start with exactly one workload (B)"

# IPv4: HAProxy sidecars.
ml_log "IPv4 round: HAProxy sidecars"
mesh_start_haproxy pa "$NS_A" hap-a "$UID_ISTIO" "$OUT" "$IN" 127.0.0.6
mesh_start_haproxy pb "$NS_B" hap-b "$UID_ISTIO" "$OUT" "$IN" 127.0.0.6
LOG_A="$MESH_DIR/hap-a.log" LOG_B="$MESH_DIR/hap-b.log" SRC=127.0.0.6
round 4 haproxy
host_kill_pid "$pa"
host_kill_pid "$pb"

# IPv6: ml_proxy sidecars; A is added again after its removal.
ml_log "IPv6 round: ml_proxy sidecars"
mesh_start_ml_proxy pa "$NS_A" mlp-a "$UID_ISTIO" --listen "$OUT" --listen "$IN" \
  --source "$IN:127.0.0.6" --source "$IN:::6"
mesh_start_ml_proxy pb "$NS_B" mlp-b "$UID_ISTIO" --listen "$OUT" --listen "$IN" \
  --source "$IN:127.0.0.6" --source "$IN:::6"
LOG_A="$MESH_DIR/mlp-a.log" LOG_B="$MESH_DIR/mlp-b.log" SRC=::6
round 6 ml_proxy
if grep -h '^error' "$LOG_A" "$LOG_B" >&2; then
  ml_fail "ml_proxy logged errors (above)"
fi

[[ $(grep -c 'reload rejected, nothing changed' "$ML_DAEMON_LOG") -eq 4 ]] ||
  ml_fail "expected exactly 4 rejected reloads in the daemon log"
mesh_assert_no_iptables "$NS_A" "$NS_B" "$NS_X"

ml_log "SIGTERM + meshlaned --cleanup"
ml_daemon_stop
[[ $ML_DAEMON_RC -eq 0 ]] || ml_fail "meshlaned exited with status $ML_DAEMON_RC on SIGTERM"
ml_daemon_cleanup
mesh_assert_cleaned "$NS_A" "$NS_B" "$NS_X"
ml_pass
