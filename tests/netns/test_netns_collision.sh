#!/usr/bin/env bash
# Identical 4-tuples in two network namespaces: in each, a server on 127.0.0.1:5201 and a
# client bound to 127.0.0.1:40000, transferring concurrently with different seeds. Each side
# checks that it gets exactly its own peer's stream (a stream from the other namespace carries
# the other seed and is reported), and the counters show both pairs were spliced.
# Traffic is `ml_xfer --nonblocking`: blocking sockets are not spliced by default.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ml_setup
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
ml_pass
