#!/usr/bin/env bash
# `meshlaned --cleanup` leaves the machine as found, even after a SIGKILL and with a workload
# removed by a reload while its steered connection still drains (its tc filters are in no
# config any more: the daemon records every interface it put filters on in its state dir).
# Snapshot before (rel_snapshot: pins under the bpffs dir, tc filters in every test netns,
# programs on the test cgroup per `bpftool cgroup tree`, meshlaned processes, control socket),
# then: start with pods A and B; a long-lived connection X -> A:8083 steered by A's tc
# (ml_connrate, request/response until the test stops it); A removed from the config + SIGHUP
# (A's filters stay: draining); SIGKILL; restart with only B (the restarted daemon still knows
# A's draining filters: they stay while the flow lives, and the connection keeps answering
# requests; stopped then, it must have seen no error); SIGKILL again (the control socket file
# stays behind); `meshlaned --cleanup` with the B-only config. The snapshot after must equal the
# one before.
# shellcheck source-path=SCRIPTDIR source=rel_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/rel_lib.sh"
# shellcheck source-path=SCRIPTDIR source=long_conns.sh
source "$(dirname "${BASH_SOURCE[0]}")/long_conns.sh"
# With tc steering whatever daemon.inbound_steering defaults to: tc's filters draining across an uninstall are what this tests (socket-lookup links: test_sk_lookup_steering.sh).
export ML_INBOUND_STEERING=tc

rel_setup
rel_sidecars
CONFIG="$ML_WORKDIR/meshlane.toml"
rel_write_config "$CONFIG"
ML_CONFIG=$CONFIG
rel_snapshot "$ML_WORKDIR/before"

rel_start_timed "$CONFIG"
A4=$(mesh_v4 10)
ll_connrate_server "$REL_A" 8083 0 100 100
ml_snapshot t0
ll_connrate_client LL ll "$REL_X" "$A4:8083" 1 0 100 100
ll_connrate_checkpoint ll "$LL" "its start" "the long-lived connection"
ml_snapshot t1
mesh_assert_rose t0 t1 long-lived intercepted_inbound_tc

# B only: A removed while its steered connection is open.
rel_write_config_b_only "$CONFIG"
kill -HUP "$ML_DAEMON_PID"
host_wait_for "$ML_WAIT_S" grep -q 'workload pod-a removed; its tc filters stay' "$ML_DAEMON_LOG" ||
  ml_fail "pod-a was not removed by the reload"
[[ -n $(mesh_tc_filters "$REL_A") ]] || ml_fail "A's tc filters went while its steered connection is open"
rel_kill9
rel_start_timed "$CONFIG"
# A drain check runs every 2 s: give the restarted daemon time for one (it must not remove the
# filters; nothing shows that a check ran, so this waits, and can only miss a failure if slow).
sleep 2.5
ll_connrate_checkpoint ll "$LL" "the restart" "the long-lived connection"
[[ -n $(mesh_tc_filters "$REL_A") ]] ||
  ml_fail "the restarted daemon removed A's filters while the connection they steer is open"
ml_log "A's draining filters survived the restart: $(mesh_tc_filters "$REL_A" | grep -c ml_tc) filter line(s)"
ml_connrate_stop "$LL" "$ML_WORKDIR/ll.out" "the long-lived connection across the reload and restart"
rel_kill9
ml_daemon_cleanup "$CONFIG"
rel_snapshot "$ML_WORKDIR/after"
if ! diff -u "$ML_WORKDIR/before" "$ML_WORKDIR/after" >&2; then
  ml_fail "meshlaned --cleanup did not leave the machine as found (diff above)"
fi
[[ ! -e $ML_WORKDIR/state/tc-filters ]] || ml_fail "the tc record is left in the state dir"
ml_log "snapshot before == after ($(wc -l <"$ML_WORKDIR/after") lines)"
ml_pass
