#!/usr/bin/env bash
# Identical 4-tuples in two network namespaces: in each, a server on 127.0.0.1:5201 and a
# client bound to 127.0.0.1:40000, transferring concurrently with different seeds. Each side
# checks that it gets exactly its own peer's stream (a stream from the other namespace carries
# the other seed and is reported), and the counters show both pairs were spliced.
# Traffic is `ml_xfer --nonblocking`: blocking sockets are not spliced by default.
# Then workloads: one namespace named through another path (a bind mount of its file, and
# /proc/PID/ns/net of a process inside) is the same namespace, so a second workload there is a
# conflict naming the first, and nothing changes; another namespace is no conflict.
# shellcheck source=control_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/control_lib.sh"
ml_setup
ml_require_cmd "$PYTHON" mount umount stat
[[ -x $MESHLANECTL ]] || ml_fail "meshlanectl not found at $MESHLANECTL (set MESHLANE_BIN)"
ml_require_meshlane
ml_make_cgroup
ml_make_netns NSA a
ml_make_netns NSB b
ml_daemon_start

COMMON=(--nonblocking --bytes 256M --timeout 90)
ml_snapshot before
ml_xfer_server_bg SA "$ML_CG" "$NSA" ns-a --listen 127.0.0.1:5201 --seed 1001 "${COMMON[@]}"
ml_xfer_server_bg SB "$ML_CG" "$NSB" ns-b --listen 127.0.0.1:5201 --seed 2002 "${COMMON[@]}"
ml_bg CA "$ML_WORKDIR/ns-a.client.out" "$ML_WORKDIR/ns-a.client.err" "$ML_CG" "$NSA" \
  "$ML_XFER" client --connect 127.0.0.1:5201 --bind 127.0.0.1:40000 --seed 1001 "${COMMON[@]}"
ml_bg CB "$ML_WORKDIR/ns-b.client.out" "$ML_WORKDIR/ns-b.client.err" "$ML_CG" "$NSB" \
  "$ML_XFER" client --connect 127.0.0.1:5201 --bind 127.0.0.1:40000 --seed 2002 "${COMMON[@]}"
rc_ca=0 rc_cb=0 rc_sa=0 rc_sb=0
wait "$CA" || rc_ca=$?
wait "$CB" || rc_cb=$?
wait "$SA" || rc_sa=$?
wait "$SB" || rc_sb=$?
ml_snapshot after

errs=""
ML_XFER_WIRE=0
ml__xfer_result ns-a client "$rc_ca" || errs+=" [ns-a client] $ML__XFER_ERR"
ml__xfer_result ns-a server "$rc_sa" || errs+=" [ns-a server] $ML__XFER_ERR"
ml__xfer_result ns-b client "$rc_cb" || errs+=" [ns-b client] $ML__XFER_ERR"
ml__xfer_result ns-b server "$rc_sb" || errs+=" [ns-b server] $ML__XFER_ERR"
[[ -z $errs ]] || ml_fail "transfers failed:$errs"
# Each pair sent half of ML_XFER_WIRE: >= 90% of the total means both pairs were spliced.
ml_assert_spliced before after "$ML_XFER_WIRE" "both namespaces"
added=$(ml_delta before after sockets_added)
[[ $added -ge 4 ]] || ml_fail "sockets_added rose by $added, expected >= 4 (two sockets in each namespace)"

# ---- one namespace through several paths is one workload's namespace ---------------------------
CTL_SOCKET="$ML_WORKDIR/meshlane.sock"
for ns in "$NSA" "$NSB"; do  # tc needs the workload's interface
  ip -n "$ns" link add eth0 type veth peer name eth0-peer && ip -n "$ns" link set eth0 up &&
    ip -n "$ns" link set eth0-peer up || ml_fail "cannot add an eth0 to $ns"
done
# A bind mount of pod A's namespace file elsewhere, as a runtime might keep it.
ALIAS="$ML_WORKDIR/ns-a-alias"
touch "$ALIAS"
mount --bind "/var/run/netns/$NSA" "$ALIAS" || ml_fail "cannot bind-mount /var/run/netns/$NSA"
host_defer umount "$ALIAS"
# A process inside pod A: its /proc/PID/ns/net is a third path.
ml_bg SLEEPER /dev/null "$ML_WORKDIR/sleeper.err" - "$NSA" sleep 600
ns_inode() { stat -L -c %i "$1" 2>/dev/null; }
sleeper_inside() { [[ $(ns_inode "/proc/$SLEEPER/ns/net") == "$(ns_inode "/var/run/netns/$NSA")" ]]; }
host_wait_for "$ML_WAIT_S" sleeper_inside || ml_fail "the process did not enter $NSA"
[[ $(ns_inode "$ALIAS") == "$(ns_inode "/var/run/netns/$NSA")" ]] || ml_fail "$ALIAS is not $NSA's namespace"

ctl_ok workload add a --netns "$NSA" --ip 198.18.0.50
for alias in "$ALIAS" "/proc/$SLEEPER/ns/net"; do
  ctl -o json workload add a-again --netns "$alias" --ip 198.18.0.51
  ctl_expect_rc 2 "a second workload in pod A's namespace through $alias"
  ctl_assert_json "$CTL_OUT" "j['error'] == {'code': 'conflict', 'message': 'netns $alias is already the namespace of workload a (its netns /var/run/netns/$NSA is the same network namespace)'}" \
    "workload add through $alias"
  ml_log "through $alias: $(ctl_json "$CTL_OUT" 'j["error"]["message"]')"
done
ctl_ok -o json workload list
ctl_assert_json "$CTL_OUT" '[w["name"] for w in j["workloads"]] == ["a"]' "nothing added by the conflicts"
ctl_ok workload add b --netns "$NSB" --ip 198.18.0.52
[[ $CTL_OUT == "workload b added" ]] || ml_fail "a workload in another namespace: $CTL_OUT"
ctl_ok workload del a
ctl_ok workload del b
ml_pass
