#!/usr/bin/env bash
# 1,000 clients of the control socket at once (issue #4): the daemon raises its open file limit
# and logs its client limit; 1,000 clients connected together each send a request (valid ones,
# pipelined pairs, unknown methods, malformed JSON, stalled and vanishing clients) and each gets
# its right answer or its error; with the limit filled, more clients get too_many_clients and are
# disconnected while the held ones are still served. Afterwards the daemon serves as before and
# the live workload added before the storm is still applied: its pod's connects are intercepted.
# shellcheck source=control_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/control_lib.sh"

CLIENTS=1000

ctl_setup
ml_make_cgroup
ctl_make_pods POD_A POD_B
ctl_daemon_start
grep -qE 'open file limit \(RLIMIT_NOFILE\) (raised from [0-9]+ to )?[0-9]+' "$ML_DAEMON_LOG" ||
  ml_fail "meshlaned did not log its open file limit"
LIMIT=$(sed -nE 's/.*control socket .* up to ([0-9]+) clients\).*/\1/p' "$ML_DAEMON_LOG")
[[ -n $LIMIT ]] || ml_fail "meshlaned did not log its control client limit"
[[ $LIMIT -ge $CLIENTS ]] ||
  ml_fail "meshlaned serves only $LIMIT control clients (open file limit too low? ulimit -Hn)"
ml_log "meshlaned serves up to $LIMIT control clients"

ctl_ok workload add pod-a --netns "$POD_A" --ip 198.18.0.10 --ip fd00::10
BEFORE=$(ctl_counter intercepted_outbound)

SUMMARY=$("$PYTHON" "$MESHLANE_SRC/tests/netns/control_clients.py" "$CTL_SOCKET" \
  --clients "$CLIENTS" --extra 5 --workload pod-a) || {
  ml_dump_daemon_log
  ml_fail "the control socket failed its clients: $SUMMARY"
}
ml_log "clients: $SUMMARY"
ctl_assert_json "$SUMMARY" "j['answered'] == j['expected_answered'] and j['expected_answered'] == $((CLIENTS * 8 / 10))" \
  "every client that sent a whole request was answered"
ctl_assert_json "$SUMMARY" "j['max_clients'] == $LIMIT and j['rejected_over_limit'] == 5" \
  "clients over the limit were turned away"

kill -0 "$ML_DAEMON_PID" 2>/dev/null || ml_fail "meshlaned died under $CLIENTS clients"
if grep -q 'terminate called\|fatal' "$ML_DAEMON_LOG"; then
  ml_fail "meshlaned logged a fatal error: $(grep 'terminate called\|fatal' "$ML_DAEMON_LOG" | head -n 3)"
fi
# The daemon drops the storm's clients as it reads their closes: wait for it (the hang guard
# only) to count meshlanectl's connection alone.
only_meshlanectl() {
  ctl_ok -o json status
  [[ $(ctl_json "$CTL_OUT" 'j["control"]["clients"]') == 1 ]]
}
host_wait_for "$ML_WAIT_S" only_meshlanectl || true
ctl_assert_json "$CTL_OUT" 'j["workloads"] == {"total": 1, "config": 0, "live": 1}' "workloads after the storm"
ctl_assert_json "$CTL_OUT" 'j["control"]["clients"] == 1' "only meshlanectl is connected afterwards"
ctl_ok -o json workload get pod-a
ctl_assert_json "$CTL_OUT" 'j["source"] == "live" and j["spec"]["ips"] == ["198.18.0.10", "fd00::10"]' \
  "the live workload after the storm"
ctl_app_connect after
[[ $SERVED == sidecar ]] || ml_fail "after the storm, pod A's connects must still go to its sidecar"
[[ $(ctl_counter intercepted_outbound) -eq $((BEFORE + 1)) ]] ||
  ml_fail "intercepted_outbound did not rise by one after the storm"
ml_log "the daemon keeps serving; the live workload is still applied"
ctl_ok workload del pod-a
ml_pass
