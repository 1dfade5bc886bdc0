#!/usr/bin/env bash
# Map sizes from the config, read back from the kernel, and the maps at capacity:
#   1. meshlaned with acceleration.sockhash_max_entries = 4 and [maps] orig_dst 16, tc_flow 32,
#      workload 2, pod_address 3: bpftool reads exactly those max_entries from the pinned maps,
#      and `status` (map_usage) and /metrics (meshlane_map_capacity) report them.
#   2. Workloads: pod A (2 addresses) and pod B (1) fill both workload maps (2/2 and 3/3 in
#      status and /metrics); a third workload is refused with an error naming
#      maps.workload_max_entries, and nothing changes.
#   3. Sockhash: two held spliced connections fill it (4/4); a third connection's sockets do not
#      fit: sockets_add_failed rises, and the occupancy stays at the capacity.
#   4. Original destinations: pod A's "sidecar" listens with backlog 1 and never accepts; a burst
#      of 40 intercepted connects fills ml_origdst_v2 with stalled handshakes up to its headroom
#      (16 - 16/8 = 14 entries, 12..16 with races; in status and /metrics), then the next are not
#      intercepted: intercept_skipped_map_full rises, node-wide and in pod A's own series.
#   5. A restart with maps.orig_dst_max_entries = 32: the pinned 16-entry map is migrated into a
#      new 32-entry one (bpftool), and the log names the setting.
# shellcheck source=control_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/control_lib.sh"

BURST=$(dirname "${BASH_SOURCE[0]}")/conn_burst.py
ctl_setup
ml_require_cmd curl
ml_make_cgroup
ctl_make_pods POD_A POD_B
ml_make_netns POD_C pod12
host_add_veth "$CTL_NODE_NS" mlc12 "$POD_C" 198.18.0.12/24 fd00::12/64 || ml_fail "cannot wire pod C (above)"

PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT/metrics"
SIZES=('[acceleration]' 'sockhash_max_entries = 4' '[maps]' 'orig_dst_max_entries = 16'
  'tc_flow_max_entries = 32' 'workload_max_entries = 2' 'pod_address_max_entries = 3'
  '[metrics]' "listen = \"127.0.0.1:$PORT\"")
ctl_daemon_start "${SIZES[@]}"

kernel_max_entries() {
  "$BPFTOOL" -j map show pinned "$ML_BPFFS_DIR/$1" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["max_entries"])'
}

# usage_is MAP ENTRIES CAPACITY [MOST]: status' map_usage and /metrics both say MAP holds ENTRIES
# (or, with MOST, ENTRIES..MOST) of CAPACITY (the periodic count may lag: callers wait for it
# with host_wait_for).
usage_is() {
  ctl_ok -o json status
  curl -sS --max-time 10 -o "$ML_WORKDIR/page" "$URL" || ml_fail "curl $URL failed"
  "$PYTHON" - "$CTL_OUT" "$ML_WORKDIR/page" "$1" "$2" "$3" "${4:-$2}" <<'EOF_PY'
import json, re, sys
usage = json.loads(sys.argv[1])["map_usage"]["maps"][sys.argv[3]]
samples = {}
for line in open(sys.argv[2]).read().splitlines():
    m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)', line)
    if m:
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
label = '{map="%s"}' % sys.argv[3]
got = (usage["entries"], usage["capacity"], samples.get("meshlane_map_entries" + label),
       samples.get("meshlane_map_capacity" + label))
least, capacity, most = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
print("%s: status %s/%s, metrics %s/%s" % ((sys.argv[3],) + got), file=sys.stderr)
sys.exit(0 if least <= got[0] <= most and got[2] == got[0] and got[1] == got[3] == capacity else 1)
EOF_PY
}

counter() { ctl_counter "$1"; }

# ---------------------------------------------------------------------------------------------
ml_log "1. configured sizes, read back from the kernel"
for pair in ml_sockhash_v1:4 ml_origdst_v2:16 ml_tcflows_v3:32 ml_workloads_v1:2 ml_wlcounters_v1:2 ml_pod_ips_v1:3; do
  got=$(kernel_max_entries "${pair%%:*}")
  [[ $got == "${pair#*:}" ]] || ml_fail "${pair%%:*}: bpftool reads max_entries $got, the config says ${pair#*:}"
done
ml_log "bpftool: sockhash 4, origdst 16, tcflows 32, workloads 2, wlcounters 2, pod_ips 3"
usage_is tc_flows 0 32 || ml_fail "tc_flows usage (above)"
usage_is orig_dst 0 16 || ml_fail "orig_dst usage (above)"

# ---------------------------------------------------------------------------------------------
ml_log "2. workloads up to maps.workload_max_entries and maps.pod_address_max_entries"
ctl_ok workload add pod-a --netns "$POD_A" --ip 198.18.0.10 --ip fd00::10
ctl_ok workload add pod-b --netns "$POD_B" --ip 198.18.0.11
host_wait_for "$ML_WAIT_S" usage_is workloads 2 2 || ml_fail "workloads are not 2/2 (above)"
host_wait_for "$ML_WAIT_S" usage_is pod_addresses 3 3 || ml_fail "pod addresses are not 3/3 (above)"
ctl workload add pod-c --netns "$POD_C" --ip 198.18.0.12
[[ $CTL_RC -ne 0 ]] || ml_fail "a third workload was accepted with maps.workload_max_entries = 2"
[[ $CTL_ERR == *maps.workload_max_entries* ]] ||
  ml_fail "the refusal of a third workload does not name maps.workload_max_entries: $CTL_ERR"
ml_log "third workload refused: $CTL_ERR"
ctl_ok -o json workload list
ctl_assert_json "$CTL_OUT" 'sorted(w["name"] for w in j["workloads"]) == ["pod-a", "pod-b"]' "workloads after the refusal"

# ---------------------------------------------------------------------------------------------
ml_log "3. the sockhash at its capacity of 4"
host_wait_for "$ML_WAIT_S" usage_is sockhash 0 4 || ml_fail "the sockhash is not empty (above)"
ctl_hold_start HOLD1 "$POD_A" 5411
ctl_hold_start HOLD2 "$POD_A" 5412
failed_before=$(counter sockets_add_failed)
[[ $failed_before -eq 0 ]] || ml_fail "sockets_add_failed is $failed_before with 4 sockets in a 4-entry sockhash"
ctl_hold_start HOLD3 "$POD_A" 5413
failed=$(counter sockets_add_failed)
((failed > failed_before)) || ml_fail "a third connection into a full sockhash did not raise sockets_add_failed"
host_wait_for "$ML_WAIT_S" usage_is sockhash 4 4 || ml_fail "the full sockhash is not 4/4 (above)"
ml_log "sockhash 4/4, sockets_add_failed $failed"
ctl_hold_finish "$HOLD1" 5411
ctl_hold_finish "$HOLD2" 5412
ctl_hold_finish "$HOLD3" 5413

# ---------------------------------------------------------------------------------------------
ml_log "4. ml_origdst_v2 at its capacity: stalled handshakes to a sidecar that never accepts"
cat >"$ML_WORKDIR/stuck.py" <<'EOF_PY'
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 15001))
s.listen(1)  # never accepted: the queue fills and later handshakes stall
open(sys.argv[1], "w").close()
time.sleep(3600)
EOF_PY
ml_bg STUCK "$ML_WORKDIR/stuck.out" "$ML_WORKDIR/stuck.err" "$ML_CG" "$POD_A" \
  "$PYTHON" "$ML_WORKDIR/stuck.py" "$ML_WORKDIR/stuck.ready"
ml_wait_file "$ML_WORKDIR/stuck.ready" "$STUCK" || ml_fail "the stuck sidecar did not listen: $(cat "$ML_WORKDIR/stuck.err")"
intercepted0=$(counter intercepted_outbound)
skipped0=$(counter intercept_skipped_map_full)
ml_bg BURSTPID "$ML_WORKDIR/burst.out" "$ML_WORKDIR/burst.err" "$ML_CG" "$POD_A" \
  "$PYTHON" "$BURST" --connect 198.18.0.11:8080 --count 40 --timeout 0
burst_passed() {
  (($(counter intercepted_outbound) - intercepted0 + $(counter intercept_skipped_map_full) - skipped0 >= 40))
}
host_wait_for "$ML_WAIT_S" burst_passed || ml_fail "the 40 connects of the burst did not all pass the connect hook"
skipped=$(($(counter intercept_skipped_map_full) - skipped0))
((skipped > 0)) || ml_fail "no connect was skipped for a full ml_origdst_v2 (40 connects, 16 entries)"
# The connect hooks stop filing at 16 - 16/8 = 14 entries; the headroom is for connects on
# other CPUs between their check and their insert, so up to 16 may be filed. Handshakes the
# listener's queue took complete and leave the map, so as few as 12 may stay.
host_wait_for "$ML_WAIT_S" usage_is orig_dst 12 16 16 || ml_fail "ml_origdst_v2 is not at its usable capacity (above)"
curl -sS --max-time 10 -o "$ML_WORKDIR/page" "$URL" || ml_fail "curl $URL failed"
grep -qE '^meshlane_intercept_skipped_map_full_total [1-9]' "$ML_WORKDIR/page" ||
  ml_fail "/metrics: $(grep intercept_skipped_map_full "$ML_WORKDIR/page")"
grep -qE '^meshlane_workload_intercept_skipped_map_full_total\{workload="pod-a"\} [1-9]' "$ML_WORKDIR/page" ||
  ml_fail "/metrics, pod A's own: $(grep intercept_skipped_map_full "$ML_WORKDIR/page")"
ml_log "orig_dst at its usable capacity, $skipped connect(s) not intercepted (map full)"
host_kill_pid "$BURSTPID"
host_kill_pid "$STUCK"

# ---------------------------------------------------------------------------------------------
ml_log "5. a restart with maps.orig_dst_max_entries = 32 migrates the pinned map"
ml_daemon_stop
[[ $ML_DAEMON_RC -eq 0 ]] || ml_fail "meshlaned exited with status $ML_DAEMON_RC"
SIZES[3]='orig_dst_max_entries = 32'
ctl_daemon_start "${SIZES[@]}"
[[ $(kernel_max_entries ml_origdst_v2) == 32 ]] ||
  ml_fail "after the restart ml_origdst_v2 has max_entries $(kernel_max_entries ml_origdst_v2), expected 32"
grep -q 'map ml_origdst_v2: max_entries 16 (this build: 32) (max_entries is maps.orig_dst_max_entries); its entries are migrated to a new map' "$ML_DAEMON_LOG" ||
  ml_fail "the log does not say why ml_origdst_v2 was migrated: $(grep ml_origdst_v2 "$ML_DAEMON_LOG")"
host_wait_for "$ML_WAIT_S" usage_is tc_flows 0 32 || ml_fail "tc_flows after the restart (above)"
ml_daemon_stop
ml_pass
