#!/usr/bin/env bash
# meshlane on a node whose pods still have istio-init's iptables rules (a pod started before
# meshlane, not recreated since: the usual state while a node is migrated). Pods A and B carry
# the exact istio-init nat rules (scripts/bench/istio-iptables.rules) and HAProxy sidecars as
# uid 1337; meshlaned intercepts both as istio workloads. A's app -> B:8080 must still reach B's
# app with every byte, and both sidecars must connect to the original destination B:8080:
#   - meshlane intercepts before iptables sees a packet (intercepted_outbound,
#     intercepted_inbound_local), and the OUTPUT rules let the rewritten connects through;
#   - B's PREROUTING rule still REDIRECTs the sidecar-to-sidecar connection (to 15006, where it
#     already goes), so conntrack has an answer for SO_ORIGINAL_DST too: B:15006, B's own
#     inbound port. meshlane's answer must win (orig_dst_answered), or B's sidecar connects to
#     itself;
#   - the hops are spliced as without the rules.
# Then the same with the rules removed (iptables -t nat -F), conntrack still loaded.
source "$(dirname "${BASH_SOURCE[0]}")/mesh_lib.sh"
# shellcheck source=scripts/bench/istio-iptables.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/bench/istio-iptables.sh"

APP=8080
mesh_setup
ml_require_meshlane
ml_require_cmd iptables-restore
[[ -r $ISTIO_IPTABLES_RULES ]] || ml_fail "istio-init rules not found at $ISTIO_IPTABLES_RULES"
# shellcheck disable=SC2119  # no suffix
ml_make_cgroup
mesh_make_node
mesh_add_pod POD_A a 10
mesh_add_pod POD_B b 11
A=$(mesh_v4 10) B=$(mesh_v4 11)
for ns in "$POD_A" "$POD_B"; do
  istio_iptables_install "$ns" || ml_fail "iptables-restore failed in $ns"
done

MESH_WL_LINES=()
mesh_workload pod-a "$POD_A" "\"$A\"" istio
mesh_workload pod-b "$POD_B" "\"$B\"" istio
ml_daemon_start "${MESH_WL_LINES[@]}"
mesh_start_haproxy pa "$POD_A" hap-a 1337 15001 15006 127.0.0.6
mesh_start_haproxy pb "$POD_B" hap-b 1337 15001 15006 127.0.0.6
LOG_A="$MESH_DIR/hap-a.log" LOG_B="$MESH_DIR/hap-b.log"

# one LABEL: A's app -> B:8080 through both sidecars, checked end to end.
one() {
  local label=$1 sa sb a_out
  sa=$(mesh_log_lines "$LOG_A")
  sb=$(mesh_log_lines "$LOG_B")
  a_out=$(istio_iptables_redirect_hits "$POD_A" ISTIO_REDIRECT)
  ml_snapshot m0
  mesh_xfer "$label" "$POD_B" "0.0.0.0:$APP" "$POD_A" "$B:$APP" --bytes 4M --timeout 30
  mesh__expect_log "$label" "$LOG_A" "$sa" "$(mesh__log_re haproxy outbound '[^ ]+' "$B:$APP")" \
    "A's sidecar did not connect to the original destination $B:$APP"
  mesh__expect_log "$label" "$LOG_B" "$sb" \
    "$(mesh__log_re haproxy inbound "$(mesh_re "$A"):[0-9]+" "$B:$APP")" \
    "B's sidecar did not connect to the original destination $B:$APP"
  if mesh_log_since "$LOG_B" "$sb" | grep -qE " $(mesh_re "$B"):15006\$"; then
    mesh_dump_logs "$LOG_B"
    ml_fail "$label: B's sidecar connected to its own inbound port (conntrack's answer won)"
  fi
  ml_snapshot m1
  ml_show_delta m0 m1
  [[ $(mesh_peer_host "$MESH_SERVER_PEER") == 127.0.0.6 ]] ||
    ml_fail "$label: B's app saw client $MESH_SERVER_PEER, expected B's sidecar from 127.0.0.6"
  mesh_assert_rose m0 m1 "$label" intercepted_outbound
  mesh_assert_rose m0 m1 "$label" intercepted_inbound_local
  mesh_assert_rose m0 m1 "$label" orig_dst_answered 2
  mesh_assert_flat m0 m1 "$label" orig_dst_unknown
  mesh_assert_rose m0 m1 "$label" spliced_proxy_to_proxy
  [[ $(istio_iptables_redirect_hits "$POD_A" ISTIO_REDIRECT) -eq $a_out ]] ||
    ml_fail "$label: A's iptables redirected outbound packets: meshlane did not intercept first"
}

one with-rules
# The proof that conntrack had an answer of its own: B's inbound REDIRECT rule matched.
[[ $(istio_iptables_redirect_hits "$POD_B" ISTIO_IN_REDIRECT) -ge 1 ]] ||
  ml_fail "B's ISTIO_IN_REDIRECT matched no packet: the test did not exercise conntrack's answer"

for ns in "$POD_A" "$POD_B"; do
  ip netns exec "$ns" iptables -t nat -F || ml_fail "cannot flush the nat table in $ns"
done
one rules-flushed
ml_pass
