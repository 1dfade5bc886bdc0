#!/usr/bin/env bash
# Faults, in an istio-style mesh (pods A and B with HAProxy sidecars; rel_lib.sh):
#   1. Missing kernel feature, simulated with MESHLANE_TEST_MISSING_FEATURES=sk_msg (a knob for
#      tests only: it makes the probe report "program type sk_msg" absent).
#      daemon.on_missing_feature = "refuse" (the default): meshlaned exits non-zero naming the
#      feature, and attaches nothing. "degrade": it runs, `meshlanectl status` reports
#      splicing false and interception true, no sk_msg link is pinned, and a mesh
#      connection is intercepted (A's sidecar logs the original destination) but not spliced
#      (bytes_redirected flat).
#      The same for interception: MESHLANE_TEST_MISSING_FEATURES=cgroup_sock_addr with "degrade"
#      (and `policy apply` is refused, "policy not applied: interception is off"; status
#      policies_enforced false):
#      `meshlanectl status` reports interception false and splicing true, no connect4,
#      connect6 or getsockopt link is pinned and attached to the cgroup, no tc filter is on
#      the pods, and a connection A -> B:8080 reaches B's app directly (not through the
#      sidecars: intercepted_* flat, the server sees A's address), every byte verified.
#      An optional feature (MESHLANE_TEST_MISSING_FEATURES=bpf_map_sum_elem_count, the
#      map-full pre-check's kfunc) off under "refuse": the daemon starts, status is not
#      degraded and shows the feature off with what it costs, and a mesh connection is
#      intercepted and spliced.
#   2. Config errors never leave a half-applied state: with the datapath running, SIGHUP with
#      (a) a TOML syntax error, (b) an unknown key, (c) a workload whose netns does not exist,
#      each without pod A: "reload rejected, nothing changed", and the workload maps, tc
#      filters and attached programs are exactly as before; A is still intercepted. A reload
#      that changes acceleration.enabled, sockhash_max_entries and log_level applies the log
#      level, names exactly the other two as waiting for the next start, and status still shows
#      the running values; maps, filters and programs are unchanged.
#   3. A full sockhash (sockhash_max_entries = 4) under a connection storm through the mesh
#      (ml_connrate, stopped once it has made 1000 connections): no connection fails,
#      sockets_add_failed counts the sockets that did not fit (and sockets_skipped_peer their
#      server ends), every socket is accounted for (sockets_skipped_short included: the
#      storm's one-request connections soon stop being spliced), every connection is still
#      intercepted.
# shellcheck source-path=SCRIPTDIR source=rel_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/rel_lib.sh"
# shellcheck source-path=SCRIPTDIR source=long_conns.sh
source "$(dirname "${BASH_SOURCE[0]}")/long_conns.sh"

rel_setup
ml_require_test_hooks
rel_sidecars
B4=$(mesh_v4 11)

# ---------------------------------------------------------------------------------------------
ml_log "1a. sk_msg pretended missing, on_missing_feature = refuse"
CONFIG="$ML_WORKDIR/refuse.toml"
rel_write_config "$CONFIG"
MESHLANE_TEST_MISSING_FEATURES=sk_msg rel_exec_daemon "$CONFIG"
rc=0
wait "$ML_DAEMON_PID" || rc=$?
ML_DAEMON_PID=""
[[ $rc -ne 0 ]] || ml_fail "meshlaned started although sk_msg was reported missing"
grep -q 'lacks program type sk_msg (for local TCP splicing; pretended absent by MESHLANE_TEST_MISSING_FEATURES)' "$ML_DAEMON_LOG" || {
  cat "$ML_DAEMON_LOG" >&2
  ml_fail "the refusal does not name the missing feature"
}
grep -q 'on_missing_feature = "degrade"' "$ML_DAEMON_LOG" || ml_fail "the refusal does not mention the degrade option"
[[ -z $(ml_cgroup_progs "$ML_CG") ]] || ml_fail "programs attached although meshlaned refused to start"

ml_log "1b. sk_msg pretended missing, on_missing_feature = degrade"
# ml_write_config appends its extra lines to [acceleration]: start a [daemon] table again?
# TOML forbids defining [daemon] twice, so the key goes in with its dotted name at the top.
CONFIG="$ML_WORKDIR/degrade.toml"
rel_write_config "$CONFIG"
sed -i '0,/^\[daemon\]$/s//[daemon]\non_missing_feature = "degrade"/' "$CONFIG"
MESHLANE_TEST_MISSING_FEATURES=sk_msg rel_start_timed "$CONFIG"
status=$(rel_status_json | tr -d '\n')
[[ $(ml_json_field "$status" splicing) == false && $(ml_json_field "$status" interception) == true ]] ||
  ml_fail "degraded status should report splicing false, interception true: $status"
grep -q 'degraded (daemon.on_missing_feature = "degrade"): splicing is off' "$ML_DAEMON_LOG" ||
  ml_fail "the daemon does not log that it runs degraded"
[[ ! -e $ML_BPFFS_DIR/links/ml_sk_msg_sockhash ]] ||
  ml_fail "sk_msg link pinned in degraded mode: $(ls "$ML_BPFFS_DIR/links")"
sa=$(mesh_log_lines "$REL_LOG_A")
ml_snapshot d0
mesh_xfer degraded "$REL_B" "[::]:$REL_APP" "$REL_A" "$B4:$REL_APP" --bytes 2M --timeout 30
ml_snapshot d1
ml_show_delta d0 d1
mesh_assert_rose d0 d1 degraded intercepted_outbound
mesh_assert_rose d0 d1 degraded orig_dst_answered 2
mesh_assert_flat d0 d1 degraded bytes_redirected
mesh_assert_flat d0 d1 degraded sockets_added
mesh__expect_log degraded "$REL_LOG_A" "$sa" "^outbound [^ ]+ [^ ]+ $(mesh_re "$B4"):$REL_APP\$" \
  "A's sidecar did not carry the connection to $B4:$REL_APP"
ml_daemon_stop
ml_daemon_cleanup

ml_log "1c. cgroup_sock_addr pretended missing, on_missing_feature = degrade"
MESHLANE_TEST_MISSING_FEATURES=cgroup_sock_addr rel_start_timed "$CONFIG"
status=$(rel_status_json | tr -d '\n')
[[ $(ml_json_field "$status" splicing) == true && $(ml_json_field "$status" interception) == false ]] ||
  ml_fail "degraded status should report splicing true, interception false: $status"
grep -q 'degraded (daemon.on_missing_feature = "degrade"): interception is off' "$ML_DAEMON_LOG" ||
  ml_fail "the daemon does not log that it runs without interception"
# A policy nothing would enforce is refused, not reported in force.
echo '{"policies": [{"name": "deny-a", "workload": "pod-b", "ingress": [{"action": "deny"}]}]}' \
  >"$ML_WORKDIR/deny.json"
rc=0
out=$("$MESHLANE_BIN/meshlanectl" --socket "$ML_WORKDIR/meshlane.sock" policy apply -f "$ML_WORKDIR/deny.json" 2>&1) || rc=$?
[[ $rc -eq 2 && $out == *"policy not applied: interception is off"* ]] ||
  ml_fail "policy apply without interception: expected exit 2 and 'policy not applied: interception is off', got $rc: $out"
policies=$("$MESHLANE_BIN/meshlanectl" --socket "$ML_WORKDIR/meshlane.sock" -o json policy get)
python3 -c 'import json,sys; sys.exit(json.loads(sys.argv[1])["policies"] != [])' "$policies" ||
  ml_fail "the refused policy is listed: $policies"
[[ $(ml_json_field "$status" policies_enforced) == false ]] ||
  ml_fail "status should say policies_enforced false without interception: $status"
for link in ml_connect4_cgroup ml_connect6_cgroup ml_getsockopt_cgroup ml_sendmsg4_cgroup \
  ml_sendmsg6_cgroup ml_recvmsg4_cgroup ml_recvmsg6_cgroup; do
  [[ ! -e $ML_BPFFS_DIR/links/$link ]] || ml_fail "$link pinned without interception: $(ls "$ML_BPFFS_DIR/links")"
done
progs=$(ml_cgroup_progs "$ML_CG")
grep -qE 'connect4|connect6|getsockopt|sendmsg|recvmsg' <<<"$progs" && ml_fail "interception programs attached to $ML_CG: $progs"
grep -q 'sock_ops' <<<"$progs" || ml_fail "sock_ops not attached to $ML_CG: $progs"
for ns in "$REL_A" "$REL_B"; do
  if mesh_tc_filters "$ns" | grep -qi bpf; then
    ml_fail "tc filters in $ns without interception: $(mesh_tc_filters "$ns")"
  fi
done
sa=$(mesh_log_lines "$REL_LOG_A")
ml_snapshot n0
mesh_xfer no-interception "$REL_B" "[::]:$REL_APP" "$REL_A" "$B4:$REL_APP" --bytes 2M --timeout 30
ml_snapshot n1
ml_show_delta n0 n1
for c in intercepted_outbound intercepted_inbound_local intercepted_inbound_tc orig_dst_answered; do
  mesh_assert_flat n0 n1 no-interception "$c"
done
[[ $MESH_SERVER_PEER == "$(mesh_v4 10):"* ]] ||
  ml_fail "B's app saw $MESH_SERVER_PEER, not pod A directly"
[[ $(mesh_log_lines "$REL_LOG_A") -eq $sa ]] || ml_fail "A's sidecar carried a connection without interception"
ml_daemon_stop
ml_daemon_cleanup

ml_log "1d. an optional feature pretended off, on_missing_feature = refuse"
# An optional kernel feature (here the map-full pre-check's kfunc, kernel >= 6.6) that is off is
# no missing feature: the daemon starts under "refuse", is not degraded, and says what is off.
MESHLANE_TEST_MISSING_FEATURES=bpf_map_sum_elem_count rel_start_timed "$ML_WORKDIR/refuse.toml"
status=$(rel_status_json | tr -d '\n')
python3 - "$status" <<'PY' || ml_fail "status with an optional feature off: $status"
import json, sys
j = json.loads(sys.argv[1])
assert j["splicing"] and j["interception"] and not j["degraded"], "degraded"
assert all(f["present"] for f in j["kernel_features"]), "a required feature reads missing"
off = [f for f in j["optional_kernel_features"] if not f["present"]]
assert [f["needed_for"] for f in off] == ["the map-full pre-check before interception"], off
assert "orig_dst_file_failed" in off[0]["when_absent"], off
PY
grep -q 'optional kernel feature off: kfunc bpf_map_sum_elem_count (kernel >= 6.6) (for the map-full pre-check before interception)' \
  "$ML_DAEMON_LOG" || ml_fail "the daemon does not log the optional feature that is off"
grep -q 'degraded (daemon.on_missing_feature' "$ML_DAEMON_LOG" && ml_fail "the daemon logs degraded for an optional feature"
table=$("$MESHLANECTL" --socket "$(rel_socket)" status)
grep -qE '^datapath +splicing on, interception on \(inbound steering by (sk_lookup|tc)\)$' <<<"$table" ||
  ml_fail "status table: $table"
grep -qE '^kfunc bpf_map_sum_elem_count \(kernel >= 6\.6\) +no +the map-full pre-check before interception +connects are intercepted even when ml_origdst_v2 is full' <<<"$table" ||
  ml_fail "status table does not show the optional feature off and what it costs: $table"
ml_snapshot o0
mesh_xfer optional-off "$REL_B" "[::]:$REL_APP" "$REL_A" "$B4:$REL_APP" --bytes 2M --timeout 30
ml_snapshot o1
mesh_assert_rose o0 o1 optional-off intercepted_outbound
mesh_assert_rose o0 o1 optional-off bytes_redirected
ml_daemon_stop
ml_daemon_cleanup

# ---------------------------------------------------------------------------------------------
ml_log "2. SIGHUP with broken configs changes nothing"
CONFIG="$ML_WORKDIR/meshlane.toml"
rel_write_config "$CONFIG"
rel_start_timed "$CONFIG"
cp "$CONFIG" "$ML_WORKDIR/good.toml"
state() {
  local m
  for m in ml_workloads_v1 ml_pod_ips_v1 ml_portrules_v1 ml_cidrrules_v1; do
    echo "## $m"
    "$BPFTOOL" map dump pinned "$ML_BPFFS_DIR/$m"
  done
  mesh_tc_filters "$REL_A"
  mesh_tc_filters "$REL_B"
  rel_link_progs
}
state >"$ML_WORKDIR/state.before"
# rejected_reloads N: the daemon logged at least N rejected reloads.
rejected_reloads() { (($(grep -c 'reload rejected, nothing changed' "$ML_DAEMON_LOG") >= $1)); }
broken=0
for kind in syntax unknown-key missing-netns; do
  # Pod B only: a partial apply would show as A removed.
  rel_write_config_b_only "$CONFIG"
  case $kind in
    syntax) echo 'this is = = not toml' >>"$CONFIG" ;;
    unknown-key) sed -i 's/^enabled = true$/enabled = true\nno_such_key = 1/' "$CONFIG" ;;
    missing-netns) printf '%s\n' '[[workload]]' 'name = "ghost"' \
      "netns = \"/var/run/netns/ml-$ML_TAG-ghost\"" "ips = [\"$(mesh_v4 99)\"]" 'mesh = "istio"' >>"$CONFIG" ;;
  esac
  kill -HUP "$ML_DAEMON_PID"
  broken=$((broken + 1))
  host_wait_for "$ML_WAIT_S" rejected_reloads "$broken" ||
    { ml_dump_daemon_log; ml_fail "$kind: no 'reload rejected, nothing changed'"; }
  ml_log "$kind: $(grep 'reload rejected' "$ML_DAEMON_LOG" | tail -n 1 | cut -c 1-200)"
  grep -q 'workload(s) applied' <(grep -A 100 'SIGHUP' "$ML_DAEMON_LOG") &&
    ml_fail "$kind: a reload was applied"
  kill -0 "$ML_DAEMON_PID" || ml_fail "$kind: meshlaned exited"
  state >"$ML_WORKDIR/state.after"
  diff -u "$ML_WORKDIR/state.before" "$ML_WORKDIR/state.after" >&2 ||
    ml_fail "$kind: the rejected reload changed maps, tc filters or programs"
done
# Keys a reload does not apply are named, not silently ignored; the log level is applied.
sed -e 's/^log_level = "debug"$/log_level = "info"/' \
  -e 's/^enabled = true$/enabled = false\nsockhash_max_entries = 1024/' "$ML_WORKDIR/good.toml" >"$CONFIG"
grep -q '^sockhash_max_entries = 1024$' "$CONFIG" || ml_fail "the test could not edit $CONFIG"
kill -HUP "$ML_DAEMON_PID"
restart_only_reported() { grep -q 'reload: not applied, they take effect at the next start' "$ML_DAEMON_LOG"; }
host_wait_for "$ML_WAIT_S" restart_only_reported ||
  { ml_dump_daemon_log; ml_fail "a reload changing [acceleration] did not say it is not applied"; }
line=$(grep 'reload: not applied' "$ML_DAEMON_LOG" | tail -n 1)
[[ $line == *"acceleration.enabled, acceleration.sockhash_max_entries" ]] ||
  ml_fail "the reload named other keys than the two changed ones: $line"
grep -q 'reload: daemon.log_level is now info' "$ML_DAEMON_LOG" || ml_fail "the log level was not applied"
status=$("$MESHLANE_BIN/meshlanectl" --socket "$ML_WORKDIR/meshlane.sock" -o json status)
python3 -c 'import json,sys; a=json.loads(sys.argv[1])["acceleration"]; sys.exit(not (a["enabled"] is True and a["sockhash_max_entries"] != 1024))' \
  "$status" || ml_fail "status shows settings the reload did not apply: $status"
state >"$ML_WORKDIR/state.after"
diff -u "$ML_WORKDIR/state.before" "$ML_WORKDIR/state.after" >&2 ||
  ml_fail "the reload of restart-only keys changed maps, tc filters or programs"
cp "$ML_WORKDIR/good.toml" "$CONFIG"
sa=$(mesh_log_lines "$REL_LOG_A")
mesh_xfer after-rejects "$REL_B" "[::]:$REL_APP" "$REL_A" "$B4:$REL_APP" --bytes 1M --timeout 30
mesh__expect_log after-rejects "$REL_LOG_A" "$sa" "^outbound [^ ]+ [^ ]+ $(mesh_re "$B4"):$REL_APP\$" \
  "A is no longer intercepted after the rejected reloads"
ml_daemon_stop
ml_daemon_cleanup

# ---------------------------------------------------------------------------------------------
ml_log "3. sockhash full (4 entries) under a connection storm through the mesh"
rel_write_config "$CONFIG" "sockhash_max_entries = 4"
rel_start_timed "$CONFIG"
ll_connrate_server "$REL_B" 8090 1 300 3000
ml_snapshot f0
ll_connrate_client STORM storm "$REL_A" "$B4:8090" 8 1 300 3000
# storm_made N: the storm completed N connections, without error.
storm_made() {
  ll_connrate_progress storm "$STORM" "the storm with a full sockhash" && ((ML_CR_CONNECTIONS >= $1))
}
host_wait_for "$ML_WAIT_S" storm_made 1000 || ml_fail "the storm did not make 1000 connections in $ML_WAIT_S s"
ml_connrate_stop "$STORM" "$ML_WORKDIR/storm.out" "storm with a full sockhash" 100
conns=$(ml_json_int "$ML_CONNRATE_RESULT" connections)
((conns > 100)) || ml_fail "the storm made only $conns connections"
# Every counter below is counted when a socket connects or is established: all of them were
# counted before the connections completed.
ml_snapshot f1
ml_show_delta f0 f1
failed=$(ml_delta f0 f1 sockets_add_failed)
((failed > 0)) || ml_fail "sockets_add_failed did not rise with a 4-entry sockhash"
# Every socket of every connection (6: three hops) is accounted for: spliced, did not fit
# (a client end), not spliced because the other end is not (the server end of a client that
# did not fit, or of a client skipped as short), skipped as blocking, or a client end skipped
# because its port's connections are short (adaptive splicing: these carry one request each).
accounted=$(($(ml_delta f0 f1 sockets_added) + failed + $(ml_delta f0 f1 sockets_skipped_peer) +
  $(ml_delta f0 f1 sockets_skipped_blocking) + $(ml_delta f0 f1 sockets_skipped_short)))
((accounted >= 6 * conns)) ||
  ml_fail "only $accounted sockets accounted for in $conns connections (6 sockets each)"
out=$(ml_delta f0 f1 intercepted_outbound)
((out >= conns)) || ml_fail "intercepted_outbound rose by $out for $conns connections"
ml_log "full sockhash: $conns connections, none failed, sockets_add_failed +$failed"
ml_daemon_stop
ml_daemon_cleanup
ml_pass
