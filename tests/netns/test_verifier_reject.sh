#!/usr/bin/env bash
# A build whose program the verifier rejects, in an istio-style mesh (rel_lib.sh). The knob
# MESHLANE_TEST_VERIFIER_REJECT=1 (tests only) sets a load-time constant that turns ml_sk_msg
# into a program the kernel's verifier refuses (a number used as a pointer).
#   1. On a clean machine: meshlaned exits non-zero, its log carries the verifier log at warning
#      level (its last 25 lines when longer; the whole at debug) with the verifier's own reason,
#      and names the program and object that failed; nothing is left behind: no pin, not even
#      the bpffs directory it made, nothing attached to the cgroup.
#   2. Over a running datapath (as when an upgrade brings a rejected build): meshlaned refuses
#      the same way and changes nothing: every pinned link keeps its program, the pins are the
#      same, and new mesh connections are still intercepted and spliced.
# shellcheck source-path=SCRIPTDIR source=rel_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/rel_lib.sh"

rel_setup
ml_require_test_hooks
rel_sidecars
B4=$(mesh_v4 11)
CONFIG="$ML_WORKDIR/meshlane.toml"
rel_write_config "$CONFIG"

# expect_rejection LABEL: runs the daemon with the knob; it must exit non-zero with the
# verifier's reason in its log.
expect_rejection() {
  local label=$1 rc=0
  MESHLANE_TEST_VERIFIER_REJECT=1 rel_exec_daemon "$CONFIG"
  wait "$ML_DAEMON_PID" || rc=$?
  ML_DAEMON_PID=""
  [[ $rc -ne 0 ]] || { ml_dump_daemon_log; ml_fail "$label: meshlaned started with a rejected program"; }
  grep -q "invalid mem access 'scalar'" "$ML_DAEMON_LOG" || {
    ml_dump_daemon_log
    ml_fail "$label: the log does not carry the verifier's reason"
  }
  grep -q "warning libbpf: prog 'ml_sk_msg': BPF program load failed: Permission denied" \
    "$ML_DAEMON_LOG" || ml_fail "$label: the log does not name the rejected program"
  grep -q "warning libbpf: prog 'ml_sk_msg': -- BEGIN PROG LOAD LOG --" "$ML_DAEMON_LOG" ||
    ml_fail "$label: the verifier log is not in the log at warning level"
  grep -q 'cannot load the sockops BPF programs' "$ML_DAEMON_LOG" ||
    ml_fail "$label: the error does not name the object that failed to load"
  ml_log "$label: refused; the log says: $(grep -m1 "invalid mem access" "$ML_DAEMON_LOG" | sed 's/^.*libbpf: //' | cut -c1-120)"
}

# ---------------------------------------------------------------------------------------------
ml_log "1. rejected on a clean machine"
expect_rejection clean
[[ -z $(ml_cgroup_progs "$ML_CG") ]] || ml_fail "programs attached although loading failed"
[[ ! -e $ML_BPFFS_DIR ]] ||
  ml_fail "a failed load left $ML_BPFFS_DIR behind: $(find "$ML_BPFFS_DIR" | sort | tr '\n' ' ')"

# ---------------------------------------------------------------------------------------------
ml_log "2. rejected over a running datapath"
rel_start_timed "$CONFIG"
mesh_xfer before "$REL_B" "[::]:$REL_APP" "$REL_A" "$B4:$REL_APP" --bytes 1M --timeout 30
rel_kill9
rel_link_progs >"$ML_WORKDIR/links.before"
find "$ML_BPFFS_DIR" | sort >"$ML_WORKDIR/pins.before"
[[ $(wc -l <"$ML_WORKDIR/links.before") -ge 4 ]] ||
  ml_fail "expected the datapath's links pinned: $(cat "$ML_WORKDIR/links.before")"

expect_rejection running
rel_link_progs >"$ML_WORKDIR/links.after"
find "$ML_BPFFS_DIR" | sort >"$ML_WORKDIR/pins.after"
diff -u "$ML_WORKDIR/links.before" "$ML_WORKDIR/links.after" ||
  ml_fail "a pinned link changed program although the new build was rejected"
diff -u "$ML_WORKDIR/pins.before" "$ML_WORKDIR/pins.after" ||
  ml_fail "the pins changed although the new build was rejected"

sa=$(mesh_log_lines "$REL_LOG_A")
ml_snapshot r0
mesh_xfer after "$REL_B" "[::]:$REL_APP" "$REL_A" "$B4:$REL_APP" --bytes 2M --timeout 30
ml_snapshot r1
ml_show_delta r0 r1
mesh_assert_rose r0 r1 after intercepted_outbound
mesh_assert_rose r0 r1 after orig_dst_answered 2
mesh_assert_rose r0 r1 after bytes_redirected 2097152
mesh__expect_log after "$REL_LOG_A" "$sa" "^outbound [^ ]+ [^ ]+ $(mesh_re "$B4"):$REL_APP\$" \
  "A's sidecar did not carry the connection to $B4:$REL_APP"

ml_log "PASS: a verifier rejection is reported with the verifier's reason and changes nothing"
