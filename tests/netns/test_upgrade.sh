#!/usr/bin/env bash
# Upgrades and pinned map versions, in an istio-style mesh (pods A and B with HAProxy sidecars,
# host X off the node; rel_lib.sh). Throughout, established connections carry request/response
# traffic and must never fail: P-mesh (A's app -> A's sidecar -> B's sidecar -> B:8091, spliced)
# and P-tc (X -> B:8092, steered by B's tc to B's inbound sidecar), 4 persistent connections each
# (ml_connrate --requests-per-conn 0 --duration 0: they run until the test stops them at the end,
# however long the steps take).
#   1. Upgrade: SIGTERM + start ("a new build": every program is loaded anew) while a connect
#      loop (ml_connrate, a new connection per request) runs A -> B:8090, from before the
#      SIGTERM until after the new daemon answers. Every pinned link keeps
#      its id and gets a new program (bpf_link_update: never a moment without a program), no
#      connection fails and every one was intercepted (intercepted_outbound and the sessions of
#      A's outbound and B's inbound sidecar >= connections, A's sidecar logs only B:8090,
#      intercepted_inbound_tc flat).
#   2. sockhash_max_entries changed: the pinned sockhash no longer matches; it is recreated
#      (status: maps.ml_sockhash_v1 = "recreated"); new connections are spliced in the new one.
#   3. Migration: ml_tcflows_v3 with another max_entries (MESHLANE_TEST_MAP_MAX_ENTRIES, tests
#      only): status "migrated"; P-tc, whose flow state lives in that map, keeps working.
#   4. An incompatible ml_portrules_v1 (value size 16, made with bpftool) in place of the pinned
#      one: recreated (its contents come from the config), the log names the difference, the
#      mesh still intercepts.
#   5. An incompatible ml_tcflows_v3 (value size 24, made with bpftool): meshlaned refuses to
#      start, naming the map and what to do; nothing changed (the links still run the same
#      programs). The real map is pinned back and the daemon starts, reusing it.
#   6. From the previous build: the flows of P-tc are moved into an ml_tcflows_v2 of its layout
#      (16-byte values, made with bpftool), the v3 map unpinned (the running programs keep it),
#      as on a node running that build. The new start converts every flow into a fresh
#      ml_tcflows_v3 and unpins v2; P-tc, whose packets are then rewritten from the converted
#      flows only, keeps working.
#   7. The same from the build with LRU maps: an ml_tcflows_v1 (LRU, 8-byte values) and an
#      ml_origdst_v1, converted into fresh v3 and v2 maps and unpinned.
#   8. From a build without port marks (no ml_tcports_v1): its programs filed P-tc's flows without
#      marking their ports. The new start marks them (8092 as an app port, 15006 as an inbound
#      port: read back from the map) and arms the filter, after which a packet whose port is
#      unmarked skips the flow map; P-tc, whose ports only that start marked, keeps working, and
#      a new connection from X is steered.
# At the end P-mesh and P-tc are stopped and must report no error (and more than 1000 requests
# each), and SIGTERM + --cleanup remove everything.
# shellcheck source-path=SCRIPTDIR source=rel_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/rel_lib.sh"
# shellcheck source-path=SCRIPTDIR source=long_conns.sh
source "$(dirname "${BASH_SOURCE[0]}")/long_conns.sh"
# With tc steering whatever daemon.inbound_steering defaults to: the upgrades of tc's flow maps
# are much of what this tests (a socket-lookup link adopted and updated: test_sk_lookup_steering.sh).
export ML_INBOUND_STEERING=tc

rel_setup
ml_require_test_hooks
CONFIG="$ML_WORKDIR/meshlane.toml"
rel_write_config "$CONFIG"
rel_start_timed "$CONFIG"
rel_sidecars
B4=$(mesh_v4 11)

# Servers: 8090 the connect loop (close after one reply), 8091/8092 persistent.
ll_connrate_server "$REL_B" 8090 1
ll_connrate_server "$REL_B" 8091 0
ll_connrate_server "$REL_B" 8092 0

ml_snapshot p0
ll_connrate_client PMESH pmesh "$REL_A" "$B4:8091" 4 0
ll_connrate_client PTC ptc "$REL_X" "$B4:8092" 4 0
# persistent_up: the 8 persistent connections are intercepted, steered and spliced.
persistent_up() {
  ml_snapshot p1
  (($(ml_delta p0 p1 intercepted_outbound) >= 4 && $(ml_delta p0 p1 intercepted_inbound_tc) >= 4 &&
    $(ml_delta p0 p1 spliced_proxy_to_proxy) >= 4))
}
host_wait_for "$ML_WAIT_S" persistent_up || true
mesh_assert_rose p0 p1 persistent intercepted_outbound 4
mesh_assert_rose p0 p1 persistent intercepted_inbound_tc 4
mesh_assert_rose p0 p1 persistent spliced_proxy_to_proxy 4

# persistent_alive LABEL: both persistent clients still run, have seen no error, and answered
# requests since the last check (waits for that: the connections carry traffic after the step).
persistent_alive() {
  ll_connrate_checkpoint pmesh "$PMESH" "$1" P-mesh
  ll_connrate_checkpoint ptc "$PTC" "$1" P-tc
}

# restart [ENV=VALUE...]: SIGTERM (exit 0), then start with the environment given (timed).
restart() {
  ml_daemon_stop
  [[ $ML_DAEMON_RC -eq 0 ]] || ml_fail "meshlaned exited with status $ML_DAEMON_RC on SIGTERM"
  if [[ $# -gt 0 ]]; then
    export "$@"
  fi
  rel_start_timed "$CONFIG"
  unset MESHLANE_TEST_MAP_MAX_ENTRIES
  ml_log "restarted: control socket answered after ${REL_CONTROL_MS} ms"
}

map_status() { ml_json_field "$(rel_status_json | tr -d '\n')" "$1"; }

# mesh_still_intercepts LABEL: a new connection A -> B:8081 passes A's sidecar (orig B:8081)
# and is spliced.
mesh_still_intercepts() {
  local sa
  sa=$(mesh_log_lines "$REL_LOG_A")
  ml_snapshot i0
  mesh_xfer "$1" "$REL_B" "[::]:8081" "$REL_A" "$B4:8081" --bytes 2M --timeout 30
  ml_snapshot i1
  mesh_assert_rose i0 i1 "$1" intercepted_outbound
  mesh_assert_rose i0 i1 "$1" spliced_proxy_to_proxy
  mesh_assert_rose i0 i1 "$1" bytes_redirected $((2 << 20))
  mesh__expect_log "$1" "$REL_LOG_A" "$sa" "^outbound [^ ]+ [^ ]+ $(mesh_re "$B4"):8081\$" \
    "A's sidecar did not carry the connection to $B4:8081"
}

# ---------------------------------------------------------------------------------------------
ml_log "1. upgrade (SIGTERM + start) while a connect loop runs"
before=$(rel_link_progs)
rel_mark_sidecars
ml_snapshot u0
ll_connrate_client LOOP loop "$REL_A" "$B4:8090" 4 1
# loop_made N: the connect loop completed N connections since LOOP_BASE, without error.
loop_made() {
  ll_connrate_progress loop "$LOOP" "the connect loop across the upgrade" &&
    ((ML_CR_CONNECTIONS - LOOP_BASE >= $1))
}
# The loop runs from before the SIGTERM until the new daemon has served 300 more connections.
LOOP_BASE=0
host_wait_for "$ML_WAIT_S" loop_made 300 || ml_fail "the connect loop did not make 300 connections in $ML_WAIT_S s"
restart
read -r _ _ LOOP_BASE <"$ML_WORKDIR/loop.progress"
host_wait_for "$ML_WAIT_S" loop_made 300 ||
  ml_fail "the connect loop did not make 300 connections in $ML_WAIT_S s after the upgrade"
ml_connrate_stop "$LOOP" "$ML_WORKDIR/loop.out" "the connect loop across the upgrade" 100
conns=$(ml_json_int "$ML_CONNRATE_RESULT" connections)
ml_snapshot u1
ml_show_delta u0 u1
out=$(ml_delta u0 u1 intercepted_outbound)
((conns > 100 && out >= conns)) ||
  ml_fail "not every connection of the loop was intercepted: $conns connections, intercepted_outbound +$out"
rel_assert_proxied upgrade "$conns" "$B4:8090"
mesh_assert_flat u0 u1 upgrade intercepted_inbound_tc
after=$(rel_link_progs)
ml_log "links before: $(tr '\n' ';' <<<"$before")"
ml_log "links after:  $(tr '\n' ';' <<<"$after")"
# sk_msg, sock_ops, connect4/6, getsockopt, and DNS capture's sendmsg4/6 and recvmsg4/6.
[[ $(wc -l <<<"$before") -eq 9 ]] || ml_fail "expected 9 pinned links, got: $before"
while read -r pin prog link; do
  read -r _ prog2 link2 < <(grep "^$pin " <<<"$after") || ml_fail "link $pin gone after the upgrade"
  [[ $link2 == "$link" ]] || ml_fail "link $pin was replaced (id $link -> $link2), not updated in place"
  [[ $prog2 != "$prog" ]] || ml_fail "link $pin still runs program $prog after the upgrade"
done <<<"$before"
persistent_alive upgrade

# ---------------------------------------------------------------------------------------------
ml_log "2. sockhash_max_entries 65536 -> 4096: the sockhash is recreated"
rel_write_config "$CONFIG" "sockhash_max_entries = 4096"
restart
[[ $(map_status ml_sockhash_v1) == recreated ]] ||
  ml_fail "status does not report ml_sockhash_v1 recreated: $(rel_status_json)"
grep -q 'map ml_sockhash_v1: max_entries 65536 (this build: 4096)' "$ML_DAEMON_LOG" ||
  ml_fail "the daemon log does not say why ml_sockhash_v1 was recreated"
mesh_still_intercepts after-sockhash-recreate
persistent_alive "sockhash recreation"

# ---------------------------------------------------------------------------------------------
ml_log "3. ml_tcflows_v3 resized: migrated, the tc-steered persistent connections keep working"
flows_before=$(rel_map_len ml_tcflows_v3)
restart MESHLANE_TEST_MAP_MAX_ENTRIES=ml_tcflows_v3=4096
[[ $(map_status ml_tcflows_v3) == migrated ]] ||
  ml_fail "status does not report ml_tcflows_v3 migrated: $(rel_status_json)"
[[ $("$BPFTOOL" -j map show pinned "$ML_BPFFS_DIR/ml_tcflows_v3" | python3 -c 'import json,sys; print(json.load(sys.stdin)["max_entries"])') -eq 4096 ]] ||
  ml_fail "the pinned ml_tcflows_v3 does not have 4096 entries"
flows_after=$(rel_map_len ml_tcflows_v3)
ml_log "tc flows: $flows_before before, $flows_after in the migrated map"
((flows_after >= 4)) || ml_fail "the migrated ml_tcflows_v3 holds $flows_after flows, expected the 4 persistent ones"
[[ ! -e $ML_BPFFS_DIR/ml_tcflows_v3_migrating ]] || ml_fail "ml_tcflows_v3_migrating left behind"
persistent_alive "tc flow migration"

# ---------------------------------------------------------------------------------------------
ml_log "4. an incompatible ml_portrules_v1 (bpftool, value size 16): recreated"
ml_daemon_stop
rm "$ML_BPFFS_DIR/ml_portrules_v1"
"$BPFTOOL" map create "$ML_BPFFS_DIR/ml_portrules_v1" type hash key 8 value 16 entries 64 \
  name ml_portrules_v1 || ml_fail "bpftool map create failed"
rel_start_timed "$CONFIG"
[[ $(map_status ml_portrules_v1) == recreated ]] ||
  ml_fail "status does not report ml_portrules_v1 recreated: $(rel_status_json)"
grep -q 'map ml_portrules_v1: value size 16 (this build: 1)' "$ML_DAEMON_LOG" ||
  ml_fail "the daemon log does not name what differs in ml_portrules_v1"
mesh_still_intercepts after-portrules-recreate
persistent_alive "port rules recreation"

# ---------------------------------------------------------------------------------------------
ml_log "5. an incompatible ml_tcflows_v3 (bpftool, value size 24): refused, nothing changes"
ml_daemon_stop
before=$(rel_link_progs)
real_id=$("$BPFTOOL" -j map show pinned "$ML_BPFFS_DIR/ml_tcflows_v3" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
rm "$ML_BPFFS_DIR/ml_tcflows_v3"
"$BPFTOOL" map create "$ML_BPFFS_DIR/ml_tcflows_v3" type hash key 40 value 24 entries 64 \
  name ml_tcflows_v3 || ml_fail "bpftool map create failed"
pins_before=$(find "$ML_BPFFS_DIR" | sort)
rel_exec_daemon "$CONFIG"
rc=0
wait "$ML_DAEMON_PID" || rc=$?
ML_DAEMON_PID=""
[[ $rc -ne 0 ]] || ml_fail "meshlaned started with an incompatible ml_tcflows_v3"
cat "$ML_DAEMON_LOG" >&2
grep -q "ml_tcflows_v3 is incompatible with this build: value size 24 (this build: 32)" "$ML_DAEMON_LOG" ||
  ml_fail "the refusal does not name ml_tcflows_v3 and what differs"
grep -q "rm $ML_BPFFS_DIR/ml_tcflows_v3" "$ML_DAEMON_LOG" && grep -q "meshlaned --cleanup" "$ML_DAEMON_LOG" ||
  ml_fail "the refusal does not say what to do"
[[ $(rel_link_progs) == "$before" ]] || ml_fail "the refused start changed the attached programs"
[[ $(find "$ML_BPFFS_DIR" | sort) == "$pins_before" ]] || ml_fail "the refused start changed the pins"
persistent_alive "the refused start"
rm "$ML_BPFFS_DIR/ml_tcflows_v3"
"$BPFTOOL" map pin id "$real_id" "$ML_BPFFS_DIR/ml_tcflows_v3"
rel_start_timed "$CONFIG"
[[ $(map_status ml_tcflows_v3) == reused ]] || ml_fail "the restored ml_tcflows_v3 was not reused"
mesh_still_intercepts after-refusal

# ---------------------------------------------------------------------------------------------
ml_log "6. from the previous build: flows in an ml_tcflows_v2, converted into ml_tcflows_v3"
ml_daemon_stop
# copy_flows TO KEEP SIZE: every flow of ml_tcflows_v3 into the map pinned as TO, its value cut
# to the first KEEP bytes and padded with zero bytes to SIZE (the older layouts are prefixes).
copy_flows() {
  "$BPFTOOL" -j map dump pinned "$ML_BPFFS_DIR/ml_tcflows_v3" | python3 -c '
import json, subprocess, sys
keep, size = int(sys.argv[3]), int(sys.argv[4])
for entry in json.load(sys.stdin):
    key = [b.replace("0x", "") for b in entry["key"]]
    value = [b.replace("0x", "") for b in entry["value"][:keep]] + ["00"] * (size - keep)
    subprocess.run([sys.argv[1], "map", "update", "pinned", sys.argv[2], "key", "hex", *key,
                    "value", "hex", *value], check=True)
' "$BPFTOOL" "$ML_BPFFS_DIR/$1" "$2" "$3" || ml_fail "cannot fill $1"
}
# v2: the same key; values of 16 bytes, the first 16 of a v3 value.
"$BPFTOOL" map create "$ML_BPFFS_DIR/ml_tcflows_v2" type hash key 40 value 16 entries 65536 \
  name ml_tcflows_v2 || ml_fail "bpftool map create ml_tcflows_v2 failed"
copy_flows ml_tcflows_v2 16 16
v2_flows=$(rel_map_len ml_tcflows_v2)
((v2_flows >= 4)) || ml_fail "ml_tcflows_v2 holds $v2_flows flows, expected the 4 persistent ones"
rm "$ML_BPFFS_DIR/ml_tcflows_v3"
rel_start_timed "$CONFIG"
grep -q "converted $v2_flows tc flow(s) from ml_tcflows_v2" "$ML_DAEMON_LOG" || {
  cat "$ML_DAEMON_LOG" >&2
  ml_fail "the daemon did not log converting $v2_flows flows from ml_tcflows_v2"
}
[[ ! -e $ML_BPFFS_DIR/ml_tcflows_v2 ]] || ml_fail "ml_tcflows_v2 is still pinned: $(ls "$ML_BPFFS_DIR")"
v3_flows=$(rel_map_len ml_tcflows_v3)
ml_log "tc flows: $v2_flows in ml_tcflows_v2, $v3_flows in the new ml_tcflows_v3"
((v3_flows >= v2_flows)) || ml_fail "ml_tcflows_v3 holds $v3_flows flows after converting $v2_flows"
persistent_alive "conversion from ml_tcflows_v2"
mesh_still_intercepts after-conversion-v2

# ---------------------------------------------------------------------------------------------
ml_log "7. from the build with LRU maps: ml_tcflows_v1 and ml_origdst_v1, converted"
ml_daemon_stop
# v1: the same key, values of 8 bytes (orig_port, inbound_port, fin_in, fin_out, pad): the first
# 6 bytes of a v3 value and two zero bytes.
"$BPFTOOL" map create "$ML_BPFFS_DIR/ml_tcflows_v1" type lru_hash key 40 value 8 entries 65536 \
  name ml_tcflows_v1 || ml_fail "bpftool map create ml_tcflows_v1 failed"
"$BPFTOOL" map create "$ML_BPFFS_DIR/ml_origdst_v1" type lru_hash key 48 value 20 entries 65536 \
  name ml_origdst_v1 || ml_fail "bpftool map create ml_origdst_v1 failed"
copy_flows ml_tcflows_v1 6 8
v1_flows=$(rel_map_len ml_tcflows_v1)
((v1_flows >= 4)) || ml_fail "ml_tcflows_v1 holds $v1_flows flows, expected the 4 persistent ones"
rm "$ML_BPFFS_DIR/ml_tcflows_v3" "$ML_BPFFS_DIR/ml_origdst_v2"
rel_start_timed "$CONFIG"
grep -q "converted $v1_flows tc flow(s) from ml_tcflows_v1" "$ML_DAEMON_LOG" || {
  cat "$ML_DAEMON_LOG" >&2
  ml_fail "the daemon did not log converting $v1_flows flows from ml_tcflows_v1"
}
[[ ! -e $ML_BPFFS_DIR/ml_tcflows_v1 && ! -e $ML_BPFFS_DIR/ml_origdst_v1 ]] ||
  ml_fail "the v1 maps are still pinned: $(ls "$ML_BPFFS_DIR")"
v3_flows=$(rel_map_len ml_tcflows_v3)
ml_log "tc flows: $v1_flows in ml_tcflows_v1, $v3_flows in the new ml_tcflows_v3"
((v3_flows >= v1_flows)) || ml_fail "ml_tcflows_v3 holds $v3_flows flows after converting $v1_flows"
persistent_alive "conversion from ml_tcflows_v1"
mesh_still_intercepts after-conversion

# ---------------------------------------------------------------------------------------------
ml_log "8. from a build without port marks: the flows' ports marked at start, the filter armed"
ml_daemon_stop
rm "$ML_BPFFS_DIR/ml_tcports_v1"
rel_start_timed "$CONFIG"
[[ $(map_status ml_tcports_v1) == created ]] || ml_fail "ml_tcports_v1 was not created: $(rel_status_json)"
# port_mark SLOT: the 64-bit word at SLOT of ml_tcports_v1 (bpf/include/meshlane/tc_port_marks.h:
# a bit per port, 64 ports to a slot, app ports from slot 0, inbound ports from 1024, armed 2048).
port_mark() {
  "$BPFTOOL" -j map lookup pinned "$ML_BPFFS_DIR/ml_tcports_v1" key $(($1 & 255)) $(($1 >> 8)) 0 0 |
    python3 -c 'import json,sys; print(int.from_bytes(bytes(int(b, 16) for b in json.load(sys.stdin)["value"]), "little"))'
}
(($(port_mark 2048) == 1)) || ml_fail "the tc port filter is not armed after the start"
(($(port_mark $((8092 >> 6))) >> (8092 & 63) & 1)) || ml_fail "app port 8092 of P-tc's flows is not marked"
(($(port_mark $((1024 + (15006 >> 6)))) >> (15006 & 63) & 1)) ||
  ml_fail "inbound port 15006 of P-tc's flows is not marked"
(($(port_mark $((8091 >> 6))) >> (8091 & 63) & 1)) && ml_fail "port 8091, where nothing was steered, is marked"
grep -qE "tc port filter armed: ([4-9]|[1-9][0-9]+) flow\(s\) filed, 1 app port\(s\) and 1 inbound port\(s\) marked" "$ML_DAEMON_LOG" || {
  grep "tc port filter" "$ML_DAEMON_LOG" >&2
  ml_fail "the daemon did not log marking the ports of P-tc's 4 flows"
}
persistent_alive "marks from the flows"
ml_snapshot m0
mesh_xfer marks-new-tc "$REL_B" "[::]:8093" "$REL_X" "$B4:8093" --bytes 1M --timeout 30
ml_snapshot m1
mesh_assert_rose m0 m1 marks-new-tc intercepted_inbound_tc 1
(($(port_mark $((8093 >> 6))) >> (8093 & 63) & 1)) || ml_fail "app port 8093 was not marked by its SYN"

# ---------------------------------------------------------------------------------------------
persistent_alive "the last step"
ml_log "stopping the persistent clients"
ml_connrate_stop "$PMESH" "$ML_WORKDIR/pmesh.out" "P-mesh, persistent across every step" 1000
ml_connrate_stop "$PTC" "$ML_WORKDIR/ptc.out" "P-tc, persistent across every step" 1000
ml_daemon_stop
ml_daemon_cleanup
[[ ! -e $ML_BPFFS_DIR ]] || ml_fail "$ML_BPFFS_DIR still exists after meshlaned --cleanup"
ml_pass
