#!/usr/bin/env bash
# Soak test: connection churn through an istio-style mesh (pods A and B with HAProxy sidecars,
# host X off the node; tests/netns/rel_lib.sh) for --duration seconds, with meshlaned restarted
# in the middle (SIGTERM and SIGKILL in turn), every byte checked, and meshlaned's RSS and fd
# count sampled and checked for bounded growth.
#
#   sudo scripts/soak.sh [--duration SECONDS] [--restart-every SECONDS] [--tc-shared-client]
#
# The tc-steered storm comes from host Y (198.18.0.101) and the tc-steered transfers from X;
# with --tc-shared-client both come from X: then two connections from the same client address
# and port to two app ports of one pod happen now and then and share a tc flow key. That used
# to reset one of them (docs/reliability.md); since ml_tcflows_v2 the second is not steered,
# goes to the app directly and is counted (tc_flow_collisions).
#
# Each round (a few seconds): a connection storm A -> B (ml_connrate, new connection per
# request) and one from Y -> B (tc-steered) run in the background, from before the round's
# three verified ml_xfer transfers of random size and random write sizes (A -> B through both
# sidecars, and X -> B) until after them: the round stops them then and checks them, however
# long the transfers took. Every --restart-every seconds (default 20) the daemon is restarted,
# alternately with SIGTERM and SIGKILL, in the middle of the traffic. Any failed connection or
# transfer, or a storm connection that was not intercepted, fails the soak.
# Memory: VmRSS and the number of open fds of each daemon instance are sampled once per round;
# within one instance the growth from its 2nd sample to its last must stay under 4 MiB and 4
# fds, and no instance may exceed 64 MiB. The figures are printed at the end ("SOAK ..." lines).
# Environment: MESHLANE_BIN (default build/bin), as for the tests.
set -euo pipefail
DURATION=1800
RESTART_EVERY=20
SHARED_CLIENT=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --tc-shared-client) SHARED_CLIENT=1; shift ;;
    --duration) DURATION=$2; shift 2 ;;
    --restart-every) RESTART_EVERY=$2; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")/.." && pwd)
export MESHLANE_SRC=$HERE
export MESHLANE_BIN=${MESHLANE_BIN:-$HERE/build/bin}
# rel_lib.sh names the test after the sourcing file: "soak".
# shellcheck source=../tests/netns/rel_lib.sh
source "$HERE/tests/netns/rel_lib.sh"

RSS_GROWTH_KB=4096
FD_GROWTH=4
RSS_MAX_KB=65536

rel_setup
mesh_add_host REL_Y y 101
MESH_ALL+=("$REL_Y")
STORM_X=$REL_Y
[[ $SHARED_CLIENT -eq 1 ]] && STORM_X=$REL_X
rel_sidecars
CONFIG="$ML_WORKDIR/meshlane.toml"
rel_write_config "$CONFIG"
rel_start_timed "$CONFIG"
B4=$(mesh_v4 11)

# Servers in B: 8090 storm from A, 8091 storm from X, 8080 ml_xfer (one per transfer).
for port in 8090 8091; do
  ml_bg pid "$ML_WORKDIR/srv$port.out" "$ML_WORKDIR/srv$port.err" "$ML_CG" "$REL_B" \
    "$ML_CONNRATE" server --listen "0.0.0.0:$port" --request-size 512 --reply-size 4096 \
    --close-after 1 --ready-file "$ML_WORKDIR/srv$port.ready"
  ml_wait_file "$ML_WORKDIR/srv$port.ready" "$pid" || ml_fail "ml_connrate server $port did not start"
done

# ---- policy hook ---------------------------------------------------------------------------
# Policy updates in the middle of the traffic: every other restart applies, then deletes, a
# policy that allows all the soak's traffic but makes the kernel judge it (pod-b isolated with
# an allow rule for everyone, denies for CIDRs nobody uses). A connection refused by a policy
# switch would show up as a failed transfer or storm connection, and in denied_connect.
POLICY_UPDATES=0
soak_policy_update() {
  local sock
  sock=$(rel_socket)
  if ((POLICY_UPDATES % 2 == 0)); then
    cat >"$ML_WORKDIR/soak-policy.json" <<'J'
{"policies": [
  {"name": "soak-b-in", "workload": "pod-b",
   "ingress": [{"action": "allow"}, {"action": "deny", "from": [{"cidr": "198.19.255.0/24"}]}]},
  {"name": "soak-a-out", "workload": "pod-a",
   "egress": [{"action": "deny", "to": [{"cidr": "198.19.254.0/24"}], "ports": ["1-1024"]}]}]}
J
    "$MESHLANECTL" --socket "$sock" policy apply --replace -f "$ML_WORKDIR/soak-policy.json" >/dev/null ||
      ml_fail "policy apply failed in the middle of the soak"
  else
    "$MESHLANECTL" --socket "$sock" -o json policy apply --replace -f - <<<'{"policies": []}' >/dev/null ||
      ml_fail "clearing the policy failed in the middle of the soak"
  fi
  POLICY_UPDATES=$((POLICY_UPDATES + 1))
}
# --------------------------------------------------------------------------------------------

declare -a SAMPLES=() # "instance rss_kb fds"
INSTANCE=1
sample() {
  local pid=$ML_DAEMON_PID rss fds
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
  fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
  SAMPLES+=("$INSTANCE $rss $fds")
}

restart_daemon() {
  local how=$1
  if [[ $how == KILL ]]; then
    rel_kill9
  else
    ml_daemon_stop
    [[ $ML_DAEMON_RC -eq 0 ]] || ml_fail "meshlaned exited with status $ML_DAEMON_RC on SIGTERM"
  fi
  rel_start_timed "$CONFIG"
  INSTANCE=$((INSTANCE + 1))
  RESTART_MS+=("$REL_CONTROL_MS")
  ml_log "restart #$((INSTANCE - 1)) (SIG$how): control socket answered after ${REL_CONTROL_MS} ms"
}

# storm_start LABEL NS PORT: a storm in the background until storm_check stops it.
storm_start() {
  local label=$1 ns=$2 port=$3
  ml_bg STORM_PID "$ML_WORKDIR/$label.out" "$ML_WORKDIR/$label.err" "$ML_CG" "$ns" \
    "$ML_CONNRATE" client --connect "$B4:$port" --concurrency 4 --duration 0 \
    --request-size 512 --reply-size 4096 --requests-per-conn 1 --timeout 30
}
# storm_check LABEL PID: stops the storm; it must have seen no error.
storm_check() {
  ml_connrate_stop "$2" "$ML_WORKDIR/$1.out" "$1"
  STORM_CONNS=$((STORM_CONNS + $(ml_json_int "$ML_CONNRATE_RESULT" connections)))
}

START=$(date +%s)
NEXT_RESTART=$((START + RESTART_EVERY))
ROUND=0 XFERS=0 XFER_BYTES=0 STORM_CONNS=0
RESTART_MS=()
HOW=TERM
ml_snapshot s0
while (($(date +%s) - START < DURATION)); do
  ROUND=$((ROUND + 1))
  storm_start "storm-a-$ROUND" "$REL_A" 8090
  PA=$STORM_PID
  storm_start "storm-x-$ROUND" "$STORM_X" 8091
  PX=$STORM_PID
  restart_at=$((RANDOM % 3 + 1)) # second of the round at which a due restart happens
  for ((k = 1; k <= 3; k++)); do
    bytes=$((RANDOM * 32 + RANDOM % 1024 + 1))            # 1 B .. ~1 MiB
    maxw=$((1 << (RANDOM % 17 + 1)))                       # 2 B .. 128 KiB writes
    src=$REL_A
    ((RANDOM % 3 == 0)) && src=$REL_X
    mesh_xfer "r$ROUND-$k" "$REL_B" "[::]:8080" "$src" "$B4:8080" --bytes "$bytes" \
      --max-write "$maxw" --seed "$ROUND$k" --timeout 30 --quiet
    XFERS=$((XFERS + 1))
    XFER_BYTES=$((XFER_BYTES + ML_XFER_WIRE))
    if ((k == restart_at && $(date +%s) >= NEXT_RESTART)); then
      restart_daemon "$HOW"
      [[ $HOW == TERM ]] && HOW=KILL || HOW=TERM
      NEXT_RESTART=$(($(date +%s) + RESTART_EVERY))
      soak_policy_update
    fi
  done
  storm_check "storm-a-$ROUND" "$PA"
  storm_check "storm-x-$ROUND" "$PX"
  sample
  rm -f "$ML_WORKDIR"/r"$ROUND"-* "$ML_WORKDIR"/storm-*-"$ROUND".*
  if ((ROUND % 10 == 0)); then
    ml_log "round $ROUND, $(($(date +%s) - START)) s: $XFERS transfers, $STORM_CONNS storm connections, last sample: ${SAMPLES[-1]:-none}"
  fi
done
sleep 1
ml_snapshot s1
ml_show_delta s0 s1
out=$(ml_delta s0 s1 intercepted_outbound)
tc=$(ml_delta s0 s1 intercepted_inbound_tc)
collisions=$(ml_delta s0 s1 tc_flow_collisions)
# Every storm connection from A passed A's sidecar, every one from X was steered by B's tc, or
# (sharing X with the transfers) found its flow key taken by a transfer to another port and went
# to the app directly, by design (tc_flow_collisions); together at least as many as the storms
# made.
((out + tc + collisions >= STORM_CONNS)) ||
  ml_fail "intercepted_outbound +$out, intercepted_inbound_tc +$tc, tc_flow_collisions +$collisions: fewer than the $STORM_CONNS storm connections"
ml_log "tc flow key collisions (not steered, served directly): $collisions"
# No interception map ever filled up.
for c in intercept_skipped_map_full orig_dst_file_failed tc_flows_full; do
  [[ $(ml_delta s0 s1 "$c") -eq 0 ]] || ml_fail "$c rose by $(ml_delta s0 s1 "$c")"
done

# The policy switches refused nothing (all the soak's traffic is allowed by every version).
denied=$(($(ml_delta s0 s1 denied_connect) + $(ml_delta s0 s1 denied_inbound_tc)))
((denied == 0)) || ml_fail "$denied connections denied although every policy applied allows them"
ml_log "$POLICY_UPDATES policy switches in the middle of the traffic, 0 connections denied"

# Memory and fds, per daemon instance.
python3 - "$RSS_GROWTH_KB" "$FD_GROWTH" "$RSS_MAX_KB" "${SAMPLES[@]}" <<'PY' || ml_fail "meshlaned's memory or fd count grew beyond the bounds (above)"
import sys
growth_kb, fd_growth, rss_max = map(int, sys.argv[1:4])
inst = {}
for s in sys.argv[4:]:
    i, rss, fds = map(int, s.split())
    inst.setdefault(i, []).append((rss, fds))
bad = False
for i, ss in sorted(inst.items()):
    base = ss[1] if len(ss) > 1 else ss[0]
    last = ss[-1]
    peak = max(r for r, _ in ss)
    print(f"SOAK instance {i}: {len(ss)} samples, rss {base[0]} -> {last[0]} kB (peak {peak}), fds {base[1]} -> {last[1]}")
    if last[0] - base[0] > growth_kb or last[1] - base[1] > fd_growth or peak > rss_max:
        print(f"SOAK instance {i}: out of bounds", file=sys.stderr)
        bad = True
sys.exit(1 if bad else 0)
PY
ms_sorted=$(printf '%s\n' "${RESTART_MS[@]:-0}" | sort -n)
echo "SOAK duration=$(($(date +%s) - START))s rounds=$ROUND transfers=$XFERS bytes_verified=$XFER_BYTES storm_connections=$STORM_CONNS restarts=$((INSTANCE - 1)) restart_to_control_ms_max=$(tail -n 1 <<<"$ms_sorted") failures=0"
ml_daemon_stop
ml_daemon_cleanup
ml_pass
