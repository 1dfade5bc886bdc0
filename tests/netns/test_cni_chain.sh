#!/usr/bin/env bash
# meshlane-cni in a real CNI chain (docs/cni.md): the reference plugins loopback, bridge and
# host-local (Debian's containernetworking-plugins) then meshlane-cni, run by cni_runner.py (a
# small spec-following runtime) inside a "node" netns, so that the bridge and the host-side
# veths never appear in the root netns. Pods are network namespaces; addresses come from
# host-local in 198.18.2.0/24 and fd00:2::/64. With meshlaned running:
#   - pod A carries sidecar.istio.io/status: it is registered (workload get: its v4 and v6
#     addresses, netns, labels), and its app's connect to pod B goes through its HAProxy
#     sidecar (proxy log, intercepted_outbound);
#   - pods B and C carry no mesh annotation: not registered, B -> C is not intercepted, no tc
#     filter on their eth0;
#   - the ADD result is meshlane-cni's prevResult unchanged (0.4.0 and 1.0.0 chains);
#   - ADD twice (meshlane-cni's, with the same input: the bridge plugin's ADD is not repeatable)
#     and DEL twice (the whole chain) are harmless; CHECK passes; DEL removes the workload;
#   - 1.1.0: STATUS answers, GC removes the workload of an attachment the runtime forgot;
#   - VERSION answers for 0.4.0, 1.0.0 and 1.1.0;
#   - with meshlaned stopped: failure_policy closed fails ADD with code 11 (and DEL still
#     succeeds), open passes prevResult through; STATUS is 50 under closed;
#   - restart reconciliation ([kubernetes] cni_cache_dir): after meshlaned restarts, pod e
#     (added while it was down) and pod p (started before meshlane-cni was in its conflist) are
#     workloads, e's traffic goes through its sidecar spliced; pod g (deleted while it was down)
#     and pod h (no mesh) are not; status "cni_resync" counts them; a second start adds nothing.
source "$(dirname "${BASH_SOURCE[0]}")/mesh_lib.sh"

MESHLANECTL=${MESHLANECTL:-$MESHLANE_BIN/meshlanectl}
MESHLANE_CNI=${MESHLANE_CNI:-$MESHLANE_BIN/meshlane-cni}
CNI_PLUGIN_DIR=${CNI_PLUGIN_DIR:-/usr/lib/cni}
RUNNER="$MESHLANE_SRC/tests/netns/cni_runner.py"
ISTIO_ANNOTATIONS='{"sidecar.istio.io/status":"{\"containers\":[\"istio-proxy\"]}"}'

mesh_setup
ml_require_cmd python3
for plugin in loopback bridge host-local; do
  [[ -x $CNI_PLUGIN_DIR/$plugin ]] ||
    ml_fail "CNI plugin $plugin not in $CNI_PLUGIN_DIR (scripts/deps.sh installs containernetworking-plugins)"
done
[[ -x $MESHLANE_CNI ]] || ml_fail "meshlane-cni not found at $MESHLANE_CNI (set MESHLANE_BIN)"
[[ -x $MESHLANECTL ]] || ml_fail "meshlanectl not found at $MESHLANECTL (set MESHLANE_BIN)"

ml_make_cgroup
ml_make_netns NODE node
ml_daemon_start
SOCK="$ML_WORKDIR/meshlane.sock"
CACHE="$ML_WORKDIR/cni-cache"
TRACE="$ML_WORKDIR/cni-trace"
mkdir -p "$CACHE" "$TRACE"

# conflist FILE VERSION POLICY [meshlane-only]: the pod network (bridge + host-local +
# meshlane-cni), or meshlane-cni alone (for STATUS and GC, which Debian 12's reference plugins,
# 1.1.1, do not speak: they stop at CNI 1.0.0).
conflist() {
  local file=$1 version=$2 policy=$3 only=${4:-}
  local bridge='{"type":"bridge","bridge":"mlcni0","isGateway":true,"ipMasq":false,
    "ipam":{"type":"host-local","dataDir":"'"$ML_WORKDIR"'/ipam",
      "ranges":[[{"subnet":"198.18.2.0/24"}],[{"subnet":"fd00:2::/64"}]]}},'
  [[ -z $only ]] || bridge=""
  cat >"$file" <<EOF
{"cniVersion":"$version","name":"mlnet","plugins":[$bridge
  {"type":"meshlane-cni","control_socket":"$SOCK","failure_policy":"$policy","timeout_ms":20000,
   "log_file":"$ML_WORKDIR/meshlane-cni.log",
   "capabilities":{"io.kubernetes.cri.pod-annotations":true}}]}
EOF
}
conflist "$ML_WORKDIR/net-1.0.0.conflist" 1.0.0 closed
conflist "$ML_WORKDIR/net-0.4.0.conflist" 0.4.0 closed
conflist "$ML_WORKDIR/net-open.conflist" 1.0.0 open
conflist "$ML_WORKDIR/net-1.1.0.conflist" 1.1.0 closed only
cat >"$ML_WORKDIR/lo.conflist" <<EOF
{"cniVersion":"1.0.0","name":"lo","plugins":[{"type":"loopback"}]}
EOF

# cni COMMAND CONFLIST NS POD [ANNOTATIONS_JSON]: runs the chain in the node netns for pod NS
# (Kubernetes namespace "shop", pod name POD, container id "sandbox-POD"); its stdout goes to
# $ML_WORKDIR/cni.out, its status to CNI_RC.
cni() {
  local command=$1 list=$2 ns=$3 pod=$4 annotations=${5:-'{}'}
  CNI_RC=0
  ip netns exec "$NODE" python3 "$RUNNER" "$command" --conflist "$list" \
    --bin-dir "$CNI_PLUGIN_DIR" --bin-dir "$MESHLANE_BIN" --cache-dir "$CACHE" \
    --container-id "sandbox-$pod" --netns "/var/run/netns/$ns" --ifname eth0 \
    --cni-args "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=$pod;K8S_POD_UID=$pod" \
    --capability "io.kubernetes.cri.pod-annotations=$annotations" --trace "$TRACE" \
    >"$ML_WORKDIR/cni.out" 2>>"$ML_WORKDIR/cni.err" || CNI_RC=$?
}

# cni_ok COMMAND CONFLIST NS POD [ANNOTATIONS_JSON]: cni, which must succeed.
cni_ok() {
  cni "$@"
  if [[ $CNI_RC -ne 0 ]]; then
    cat "$ML_WORKDIR/cni.out" >&2
    tail -n 20 "$ML_WORKDIR/cni.err" >&2
    ml_fail "CNI $1 of pod $4 failed (status $CNI_RC)"
  fi
}

# add_pod VAR POD CONFLIST [ANNOTATIONS_JSON]: a netns wired by the chain (plus loopback on lo);
# VAR gets the netns, VAR_V4 and VAR_V6 the addresses the chain gave eth0.
add_pod() {
  local var=$1 pod=$2 list=$3 annotations=${4:-'{}'} ns
  ml_make_netns ns "$pod"
  CNI_RC=0
  ip netns exec "$NODE" python3 "$RUNNER" ADD --conflist "$ML_WORKDIR/lo.conflist" \
    --bin-dir "$CNI_PLUGIN_DIR" --cache-dir "$ML_WORKDIR/cni-cache-lo" --container-id "sandbox-$pod" \
    --netns "/var/run/netns/$ns" --ifname lo >/dev/null 2>>"$ML_WORKDIR/cni.err" || CNI_RC=$?
  [[ $CNI_RC -eq 0 ]] || ml_fail "loopback ADD of $pod failed"
  cni_ok ADD "$list" "$ns" "$pod" "$annotations"
  local v4 v6
  v4=$(result_address "$ML_WORKDIR/cni.out" 4)
  v6=$(result_address "$ML_WORKDIR/cni.out" 6)
  [[ -n $v4 && -n $v6 ]] || ml_fail "the chain gave $pod no v4 and v6 address: $(cat "$ML_WORKDIR/cni.out")"
  host_wait_for "$ML_WAIT_S" host_eth0_usable "$ns" || ml_fail "eth0 of $pod is not usable"
  printf -v "$var" '%s' "$ns"
  printf -v "${var}_V4" '%s' "$v4"
  printf -v "${var}_V6" '%s' "$v6"
  ml_log "pod $pod: netns $ns, $v4, $v6"
}

# result_address FILE 4|6: the first address of that family in a CNI result, without prefix.
result_address() {
  python3 - "$1" "$2" <<'PY'
import ipaddress, json, sys
result = json.load(open(sys.argv[1]))
for ip in result.get("ips", []):
    address = ip["address"].split("/")[0]
    if ipaddress.ip_address(address).version == int(sys.argv[2]):
        print(address)
        break
PY
}

# same_json A B WHAT: the two files hold equal JSON values.
same_json() {
  python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' \
    "$1" "$2" || {
    echo "--- $1:" >&2; cat "$1" >&2; echo "--- $2:" >&2; cat "$2" >&2
    ml_fail "$3"
  }
}

# workload_json NAME: `meshlanectl workload get NAME -o json` into WL_OUT, its status in WL_RC.
workload_json() {
  WL_RC=0
  WL_OUT=$("$MESHLANECTL" --socket "$SOCK" -o json workload get "$1" 2>/dev/null) || WL_RC=$?
}

assert_registered() {
  local name=$1 ns=$2 v4=$3 v6=$4 out
  workload_json "$name"
  out=$WL_OUT
  [[ $WL_RC -eq 0 ]] || ml_fail "workload $name is not registered (meshlanectl status $WL_RC)"
  python3 - "$out" "/var/run/netns/$ns" "$v4" "$v6" "sandbox-${name#shop.}" <<'PY' ||
import json, sys
spec = json.loads(sys.argv[1])["spec"]
assert spec["netns"] == sys.argv[2], spec["netns"]
assert sorted(spec["ips"]) == sorted([sys.argv[3], sys.argv[4]]), spec["ips"]
assert spec["mesh"] == "istio", spec["mesh"]
assert spec["interface"] == "eth0", spec["interface"]
labels = spec["labels"]
assert labels["meshlane.io/managed-by"] == "meshlane-cni", labels
assert labels["meshlane.io/container-id"] == sys.argv[5], labels
assert labels["meshlane.io/k8s-namespace"] == "shop", labels
PY
    ml_fail "workload $name does not hold the pod's settings: $out"
  ml_log "workload $name registered: $v4, $v6"
}

assert_not_registered() {
  workload_json "$1"
  [[ $WL_RC -eq 2 ]] || ml_fail "workload $1 exists (meshlanectl status $WL_RC), expected none"
}

# to_b_via_sidecar LABEL POD NS BEFORE AFTER: POD's app (in NS) sends 1 MiB, verified, to B's
# app on port 8080, and POD's HAProxy sidecar (mesh_start_haproxy ... POD) must log carrying it
# to that original destination; counters are snapshot into BEFORE and AFTER around it.
to_b_via_sidecar() {
  local label=$1 pod=$2 ns=$3 log="$MESH_DIR/$2.log" start
  start=$(mesh_log_lines "$log")
  ml_snapshot "$4"
  mesh_xfer "$label" "$B" "0.0.0.0:8080" "$ns" "$B_V4:8080" --bytes 1M --timeout 30
  mesh__expect_log "$label" "$log" "$start" "$(mesh__log_re haproxy outbound '[^ ]+' "$B_V4:8080")" \
    "$pod's sidecar did not carry $pod's connect to $B_V4:8080"
  ml_snapshot "$5"
}

# ---- Enrollment -----------------------------------------------------------------------------
ml_log "VERSION in each spec version"
for version in 0.4.0 1.0.0 1.1.0; do
  out=$(echo "{\"cniVersion\":\"$version\"}" | CNI_COMMAND=VERSION "$MESHLANE_CNI")
  python3 -c 'import json,sys; v=json.loads(sys.argv[1]); sys.exit(not (v["cniVersion"]==sys.argv[2] and v["supportedVersions"]==["0.4.0","1.0.0","1.1.0"]))' \
    "$out" "$version" || ml_fail "VERSION $version answered $out"
done
cni_ok VERSION "$ML_WORKDIR/net-1.0.0.conflist" "$NODE" version
grep -q '"meshlane-cni"' "$ML_WORKDIR/cni.out" || ml_fail "the chain's VERSION lacks meshlane-cni"

add_pod A a "$ML_WORKDIR/net-1.0.0.conflist" "$ISTIO_ANNOTATIONS"
same_json "$TRACE/ADD-0-bridge.out" "$TRACE/ADD-1-meshlane-cni.out" \
  "meshlane-cni's 1.0.0 ADD result differs from its prevResult (the bridge's result)"
assert_registered shop.a "$A" "$A_V4" "$A_V6"
mesh_assert_steering "$A"
# What meshlane-cni got and gave for pod a, to ADD it again (the reference bridge plugin's ADD
# is not repeatable: it refuses an eth0 that exists).
cp "$TRACE/ADD-1-meshlane-cni.in" "$ML_WORKDIR/a-add.in"
cp "$TRACE/ADD-0-bridge.out" "$ML_WORKDIR/a-add.prev"
add_pod B b "$ML_WORKDIR/net-1.0.0.conflist"
add_pod C c "$ML_WORKDIR/net-0.4.0.conflist"
same_json "$TRACE/ADD-0-bridge.out" "$TRACE/ADD-1-meshlane-cni.out" \
  "meshlane-cni's 0.4.0 ADD result (skipped pod) differs from its prevResult"
grep -q '"cniVersion": *"0.4.0"' "$TRACE/ADD-1-meshlane-cni.out" || ml_fail "0.4.0 result not passed as 0.4.0"
assert_not_registered shop.b
assert_not_registered shop.c

ml_log "A's app -> B: through A's HAProxy sidecar"
mesh_start_haproxy HA_PID "$A" a 1337 15001 15006 127.0.0.6
to_b_via_sidecar a-to-b a "$A" s0 s1
mesh_assert_rose s0 s1 a-to-b intercepted_outbound

ml_log "B -> C: neither is a workload, nothing intercepted"
mesh_xfer b-to-c "$C" "0.0.0.0:8080" "$B" "$C_V4:8080" --bytes 1M --timeout 30
ml_snapshot s2
mesh_assert_flat s1 s2 b-to-c intercepted_outbound
for ns in "$B" "$C"; do mesh_assert_no_steering "$ns"; done

# ---- Idempotence, CHECK, STATUS, GC, DEL ----------------------------------------------------
ml_log "ADD twice, CHECK"
rc=0
CNI_COMMAND=ADD CNI_CONTAINERID=sandbox-a CNI_NETNS="/var/run/netns/$A" CNI_IFNAME=eth0 \
  CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=a" CNI_PATH="$MESHLANE_BIN" \
  "$MESHLANE_CNI" <"$ML_WORKDIR/a-add.in" >"$ML_WORKDIR/a-add2.out" 2>>"$ML_WORKDIR/cni.err" || rc=$?
[[ $rc -eq 0 ]] || ml_fail "the second ADD of pod a failed (status $rc): $(cat "$ML_WORKDIR/a-add2.out")"
same_json "$ML_WORKDIR/a-add.prev" "$ML_WORKDIR/a-add2.out" \
  "the second ADD of pod a did not print its prevResult"
grep -q "workload shop.a unchanged" "$ML_WORKDIR/meshlane-cni.log" ||
  ml_fail "the second ADD of pod a was not 'unchanged' for meshlaned: $(tail -n 3 "$ML_WORKDIR/meshlane-cni.log")"
assert_registered shop.a "$A" "$A_V4" "$A_V6"
cni_ok CHECK "$ML_WORKDIR/net-1.0.0.conflist" "$A" a "$ISTIO_ANNOTATIONS"
cni_ok CHECK "$ML_WORKDIR/net-1.0.0.conflist" "$B" b

ml_log "1.1.0: STATUS, GC"
cni_ok STATUS "$ML_WORKDIR/net-1.1.0.conflist" "$NODE" none
cni_ok GC "$ML_WORKDIR/net-1.1.0.conflist" "$NODE" none
assert_registered shop.a "$A" "$A_V4" "$A_V6"
add_pod D d "$ML_WORKDIR/net-1.0.0.conflist" "$ISTIO_ANNOTATIONS"
assert_registered shop.d "$D" "$D_V4" "$D_V6"
mv "$CACHE/results/mlnet-sandbox-d-eth0" "$ML_WORKDIR/d-cache.json"  # the runtime forgot d
cni_ok GC "$ML_WORKDIR/net-1.1.0.conflist" "$NODE" none
assert_not_registered shop.d
assert_registered shop.a "$A" "$A_V4" "$A_V6"
mv "$ML_WORKDIR/d-cache.json" "$CACHE/results/mlnet-sandbox-d-eth0"
cni_ok DEL "$ML_WORKDIR/net-1.0.0.conflist" "$D" d

ml_log "DEL twice"
cni_ok DEL "$ML_WORKDIR/net-1.0.0.conflist" "$A" a
assert_not_registered shop.a
cni_ok DEL "$ML_WORKDIR/net-1.0.0.conflist" "$A" a
cni_ok DEL "$ML_WORKDIR/net-0.4.0.conflist" "$C" c

# ---- meshlaned down ---------------------------------------------------------------------------
ml_log "pod g: registered, then deleted while meshlaned is down"
add_pod G g "$ML_WORKDIR/net-open.conflist" "$ISTIO_ANNOTATIONS"
assert_registered shop.g "$G" "$G_V4" "$G_V6"

ml_log "meshlaned stopped: failure policy"
ml_daemon_stop
add_pod E e "$ML_WORKDIR/net-open.conflist" "$ISTIO_ANNOTATIONS"
same_json "$TRACE/ADD-0-bridge.out" "$TRACE/ADD-1-meshlane-cni.out" \
  "failure_policy open: meshlane-cni's ADD result differs from its prevResult"
grep -q 'failure_policy "open"' "$ML_WORKDIR/meshlane-cni.log" || ml_fail "open: no log line"
add_pod H h "$ML_WORKDIR/net-open.conflist"  # no mesh: stays out after the restart too

ml_make_netns F f
cni ADD "$ML_WORKDIR/net-1.0.0.conflist" "$F" f "$ISTIO_ANNOTATIONS"
[[ $CNI_RC -ne 0 ]] || ml_fail "failure_policy closed: ADD succeeded with meshlaned down"
python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); sys.exit(e["code"] != 11)' \
  "$ML_WORKDIR/cni.out" || ml_fail "failure_policy closed: expected code 11, got $(cat "$ML_WORKDIR/cni.out")"
cni_ok DEL "$ML_WORKDIR/net-1.0.0.conflist" "$F" f  # the runtime's clean-up after a failed ADD
cni STATUS "$ML_WORKDIR/net-1.1.0.conflist" "$NODE" none
python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); sys.exit(e["code"] != 50)' \
  "$ML_WORKDIR/cni.out" || ml_fail "STATUS with meshlaned down: expected code 50, got $(cat "$ML_WORKDIR/cni.out")"

ml_log "pod g deleted while meshlaned is down (DEL succeeds, its netns goes)"
cni_ok DEL "$ML_WORKDIR/net-open.conflist" "$G" g
host_delete_netns "$G"

# A pod that started before install-cni: its network's conflist then had no meshlane-cni (the
# same network name, the bridge alone), so its cache entry holds a configuration without it.
python3 - "$ML_WORKDIR/net-open.conflist" "$ML_WORKDIR/net-before-install.conflist" <<'PY'
import json, sys
conflist = json.load(open(sys.argv[1]))
conflist["plugins"] = [p for p in conflist["plugins"] if p["type"] != "meshlane-cni"]
json.dump(conflist, open(sys.argv[2], "w"))
PY
add_pod P p "$ML_WORKDIR/net-before-install.conflist" "$ISTIO_ANNOTATIONS"
! grep -q "shop/p" "$ML_WORKDIR/meshlane-cni.log" ||
  ml_fail "meshlane-cni ran for pod p, whose conflist does not list it"

# ---- Restart reconciliation -------------------------------------------------------------------
# The node's conflist today holds meshlane-cni (install-cni ran); meshlaned reads the runtime's
# result cache at start.
mkdir -p "$ML_WORKDIR/net.d"
cp "$ML_WORKDIR/net-open.conflist" "$ML_WORKDIR/net.d/10-mlnet.conflist"
mesh_start_haproxy HE_PID "$E" e 1337 15001 15006 127.0.0.6
mesh_start_haproxy HP_PID "$P" p 1337 15001 15006 127.0.0.6
ml_daemon_start "[kubernetes]" "cni_cache_dir = \"$CACHE\"" "cni_conf_dir = \"$ML_WORKDIR/net.d\""

ml_log "after the restart: e (added while down) and p (from before the install) are workloads"
assert_registered shop.e "$E" "$E_V4" "$E_V6"
assert_registered shop.p "$P" "$P_V4" "$P_V6"
assert_not_registered shop.g
assert_not_registered shop.h
grep -q "live workload shop.g dropped, its pod is gone" "$ML_DAEMON_LOG" ||
  ml_fail "the daemon did not log dropping shop.g, whose netns is gone"
status=$("$MESHLANECTL" --socket "$SOCK" -o json status)
# The cache holds b, h (no mesh: skipped), e and p (added); a, c, d, f and g were deleted.
python3 - "$status" <<'PY' || ml_fail "status cni_resync is not what the cache holds: $status"
import json, sys
resync = json.loads(sys.argv[1])["cni_resync"]
assert resync["enabled"] is True, resync
assert (resync["entries"], resync["added"], resync["skipped"], resync["failed"]) == (4, 2, 2, 0), resync
PY
mesh_assert_steering "$E"

ml_log "e's app -> b: through e's HAProxy sidecar, spliced"
to_b_via_sidecar e-to-b e "$E" r0 r1
mesh_assert_rose r0 r1 e-to-b intercepted_outbound
mesh_assert_rose r0 r1 e-to-b spliced_app_to_proxy
# What an operator sees of a pod enrolled from the cache (shown in the test's log).
"$MESHLANECTL" --socket "$SOCK" workload get shop.e >&2
workload_stats=$("$MESHLANECTL" --socket "$SOCK" -o json stats --workload shop.e)
python3 - "$workload_stats" <<'PY' || ml_fail "shop.e's own counters did not record its traffic: $workload_stats"
import json, sys
counters = json.loads(sys.argv[1])
counters = counters.get("counters", counters)
print("shop.e counters:", {k: v for k, v in counters.items() if v}, file=sys.stderr)
assert counters["intercepted_outbound"] >= 1 and counters["spliced_app_to_proxy"] >= 1, counters
PY

ml_log "a second restart changes nothing (the workloads are registered already)"
ml_daemon_stop
ml_daemon_start "[kubernetes]" "cni_cache_dir = \"$CACHE\"" "cni_conf_dir = \"$ML_WORKDIR/net.d\""
status=$("$MESHLANECTL" --socket "$SOCK" -o json status)
python3 - "$status" <<'PY' || ml_fail "second start: cni_resync should find e and p registered: $status"
import json, sys
resync = json.loads(sys.argv[1])["cni_resync"]
assert (resync["added"], resync["unchanged"], resync["failed"]) == (0, 2, 0), resync
PY

for pod in e h p b; do
  ns_var=${pod^^}
  cni_ok DEL "$ML_WORKDIR/net-open.conflist" "${!ns_var}" "$pod"
done
assert_not_registered shop.e
assert_not_registered shop.p

ml_pass
