#!/usr/bin/env bash
# Pods that were running before meshlaned: an istio-style mesh (pods A and B with HAProxy
# sidecars, see rel_lib.sh) whose sidecars and apps all listen BEFORE the datapath is attached,
# as on a busy node where meshlane is installed, or after a node reboot where the pods start
# first. sock_ops never saw those listen() calls; the listener scan (an iter/task_file BPF
# iterator, run when meshlaned starts) must record their modes so that new connections are
# spliced at once, on every hop.
#   1. Sidecars, a non-blocking app server on B:8080 and B:8081 and a blocking one on B:8082,
#      all started first; then meshlaned. The start scan reports them (status listener_scan,
#      the log line, the counter listeners_scanned): at least the 4 HAProxy listeners and the 3
#      app listeners, the blocking one as blocking.
#   2. A new connection A's app -> B:8080 (4 MiB each way, every byte checked): intercepted and
#      spliced on every hop (spliced_app_to_proxy, spliced_proxy_to_proxy, spliced_proxy_to_app
#      +1 each), no socket skipped as blocking; the sidecars carried it (HAProxy's sessions).
#   3. A -> B:8082, the blocking app: the scan did not make it non-blocking: the last hop stays
#      on TCP (sockets_skipped_blocking +1, spliced_proxy_to_app +0), every byte intact.
#   4. SIGTERM, `meshlaned --cleanup` (every pin and link gone, so every record too), a fresh
#      start: the scan records the listeners that are still open again (the sidecars' and
#      B:8081's), and A -> B:8081 is spliced on every hop.
#   5. Two app listeners opened after the datapath (B:8083 non-blocking, B:8084 blocking),
#      then a workload change (SIGHUP with one workload more) runs the scan again (status
#      reason "workloads changed"), which finds every listener already known and records
#      nothing: the non-blocking one carries no record (sock_ops marked it in its flags), the
#      blocking one its record "blocking". A -> B:8083 is spliced on every hop, A -> B:8084 on
#      all but the last (sockets_skipped_blocking +1), every byte checked.
#   6. `meshlaned --cleanup` and a start with acceleration.enabled = false: the scan still
#      registers the listeners (the fast path asks who listens) but records no mode (nothing
#      would read one, and each would be cloned into every accepted socket): B's sidecar
#      listeners, read back from the kernel, carry no record, where at step 1 they carried
#      "non-blocking".
# shellcheck source-path=SCRIPTDIR source=rel_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/rel_lib.sh"

rel_setup
CONFIG="$ML_WORKDIR/meshlane.toml"
rel_write_config "$CONFIG"
B4=$(mesh_v4 11)
BYTES=4M

# ---------------------------------------------------------------------------------------------
ml_log "1. sidecars and apps first, then meshlaned"
rel_sidecars
ml_xfer_server_bg S8080 "$ML_CG" "$REL_B" app8080 --listen "[::]:8080" --nonblocking \
  --bytes "$BYTES" --timeout 120
ml_xfer_server_bg S8081 "$ML_CG" "$REL_B" app8081 --listen "[::]:8081" --nonblocking \
  --bytes "$BYTES" --timeout 300
ml_xfer_server_bg S8082 "$ML_CG" "$REL_B" app8082 --listen "[::]:8082" \
  --bytes "$BYTES" --timeout 120
rel_start_timed "$CONFIG"

# scan_field KEY: status listener_scan.last.KEY (or listener_scan.KEY with a leading dot).
scan_field() {
  rel_status_json | python3 -c '
import json, sys
scan = json.load(sys.stdin)["listener_scan"]
key = sys.argv[1]
print(json.dumps(scan[key[1:]] if key.startswith(".") else scan["last"][key]))' "$1" ||
    ml_fail "status has no listener_scan field $1: $(rel_status_json)"
}

# assert_start_scan LABEL NONBLOCKING BLOCKING: the scan of this start recorded at least that
# many non-blocking and blocking listeners (HAProxy's outbound and inbound in A and B, and the
# app servers that still listen).
assert_start_scan() {
  local label=$1 want_nb=$2 want_blk=$3 listeners recorded nonblocking blocking
  [[ $(scan_field reason) == '"start"' ]] || ml_fail "$label: the last scan was not the start's: $(scan_field reason)"
  [[ $(scan_field complete) == true ]] || ml_fail "$label: the scan was incomplete"
  listeners=$(scan_field listeners)
  recorded=$(scan_field recorded)
  nonblocking=$(scan_field recorded_nonblocking)
  blocking=$(scan_field recorded_blocking)
  ml_log "$label: scan found $listeners listener(s), recorded $recorded ($nonblocking non-blocking, $blocking blocking)"
  ((nonblocking >= want_nb && blocking >= want_blk)) ||
    ml_fail "$label: the scan recorded $recorded listener(s) ($nonblocking non-blocking, $blocking blocking), expected $want_nb non-blocking and $want_blk blocking at least"
  grep -q "listener scan (start): $listeners listener(s) of the cgroup: $recorded recorded now" "$ML_DAEMON_LOG" ||
    ml_fail "$label: the daemon log does not report the scan"
  (($(rel_counter listeners_scanned) >= recorded)) ||
    ml_fail "$label: listeners_scanned $(rel_counter listeners_scanned) < $recorded recorded"
}

# through_mesh LABEL PORT SERVER_PID: A's app -> B:PORT through both sidecars with the app server
# started in step 1; checks every byte and that both sidecars carried it.
through_mesh() {
  local label=$1 port=$2 server=$3
  local -A before=() after=()
  mesh_haproxy_sessions_of before hap-a hap-b
  ml_snapshot "${label}0"
  ml_xfer_client "$ML_CG" "$REL_A" "app$port" --connect "$B4:$port" --nonblocking \
    --bytes "$BYTES" --timeout 120
  ml_xfer_wait_server "$server" "app$port"
  ml_xfer_check "app$port" "$ML__CLIENT_RC" "$ML__SERVER_RC"
  ml_snapshot "${label}1"
  ml_show_delta "${label}0" "${label}1"
  mesh_haproxy_sessions_of after hap-a hap-b
  ((after[hap-a-outbound] > before[hap-a-outbound])) || ml_fail "$label: A's outbound sidecar did not carry the connection"
  ((after[hap-b-inbound] > before[hap-b-inbound])) || ml_fail "$label: B's inbound sidecar did not carry the connection"
}

# hops LABEL APP_PROXY PROXY_PROXY PROXY_APP: the spliced hop counters' rise since through_mesh.
hops() {
  local label=$1 got want
  got="$(ml_delta "${label}0" "${label}1" spliced_app_to_proxy) $(ml_delta "${label}0" "${label}1" spliced_proxy_to_proxy) $(ml_delta "${label}0" "${label}1" spliced_proxy_to_app)"
  want="$2 $3 $4"
  ml_log "$label: spliced hops app->proxy, proxy->proxy, proxy->app: +${got// /, +}"
  [[ $got == "$want" ]] || ml_fail "$label: spliced hops rose by ($got), expected ($want)"
}

# listener_modes LABEL PID WANT: every listening socket of process PID carries WANT in
# ml_listenmode_v1 (2: non-blocking, false: no record), read back by ml_sockstate; B's
# sidecar's inbound and outbound ports are among them.
listener_modes() {
  local label=$1 pid=$2 want=$3 out
  out=$(host_in "$ML_CG" - "$ML_SOCKSTATE" --maps "$ML_BPFFS_DIR" --listeners-of "$pid" \
    2>"$ML_WORKDIR/listeners.$label.err") ||
    ml_fail "$label: ml_sockstate --listeners-of failed: $(cat "$ML_WORKDIR/listeners.$label.err") $out"
  ml_log "$label: listeners of $pid: $out"
  python3 - "$out" "$want" "$REL_OUT" "$REL_IN" <<'PY' ||
import json, sys
j, want = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ports = {l["port"] for l in j["listeners"]}
sys.exit(not ({int(sys.argv[3]), int(sys.argv[4])} <= ports and
              all(l["listenmode"] == want for l in j["listeners"])))
PY
    ml_fail "$label: not every listener of $pid (ports $REL_OUT and $REL_IN among them) carries listenmode $want: $out"
}

# app_listener_mode LABEL PID PORT WANT: process PID's listener on PORT carries WANT in
# ml_listenmode_v1 (1: blocking, false: no record), read back by ml_sockstate.
app_listener_mode() {
  local label=$1 pid=$2 port=$3 want=$4 out
  out=$(host_in "$ML_CG" - "$ML_SOCKSTATE" --maps "$ML_BPFFS_DIR" --listeners-of "$pid" \
    2>"$ML_WORKDIR/listeners.$label.err") ||
    ml_fail "$label: ml_sockstate --listeners-of failed: $(cat "$ML_WORKDIR/listeners.$label.err") $out"
  ml_log "$label: listeners of $pid: $out"
  python3 - "$out" "$want" "$port" <<'PY' ||
import json, sys
j, want, port = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
mine = [l for l in j["listeners"] if l["port"] == port]
sys.exit(not (mine and all(l["listenmode"] == want for l in mine)))
PY
    ml_fail "$label: the listener of $pid on port $port does not carry listenmode $want: $out"
}

ML_COUNTERS+=" spliced_app_to_proxy spliced_proxy_to_proxy spliced_proxy_to_app intercepted_outbound"
# 4 HAProxy listeners, apps 8080 and 8081 non-blocking, 8082 blocking.
assert_start_scan "first start" 6 1
listener_modes "first start" "$REL_PB" 2
"$MESHLANECTL" --socket "$(rel_socket)" status | grep -E "^listener scan +start: [0-9]+ listener\(s\), [0-9]+ recorded" ||
  ml_fail "meshlanectl status does not show the listener scan: $("$MESHLANECTL" --socket "$(rel_socket)" status)"

# ---------------------------------------------------------------------------------------------
ml_log "2. A -> B:8080 (pre-existing non-blocking app): spliced on every hop"
through_mesh first 8080 "$S8080"
hops first 1 1 1
mesh_assert_rose first0 first1 first intercepted_outbound
mesh_assert_flat first0 first1 first sockets_skipped_blocking
(($(ml_delta first0 first1 bytes_redirected) >= 3 * 2 * (4 << 20))) ||
  ml_fail "first: bytes_redirected rose by $(ml_delta first0 first1 bytes_redirected), expected 3 hops x 4 MiB each way"

# ---------------------------------------------------------------------------------------------
ml_log "3. A -> B:8082 (pre-existing blocking app): its hop stays on TCP"
through_mesh blocking 8082 "$S8082"
hops blocking 1 1 0
(($(ml_delta blocking0 blocking1 sockets_skipped_blocking) == 1)) ||
  ml_fail "blocking: sockets_skipped_blocking rose by $(ml_delta blocking0 blocking1 sockets_skipped_blocking), expected 1 (B's app end)"

# ---------------------------------------------------------------------------------------------
ml_log "4. --cleanup and a fresh start: the scan records them again"
ml_daemon_stop
ml_daemon_cleanup
[[ ! -e $ML_BPFFS_DIR ]] || ml_fail "$ML_BPFFS_DIR still exists after meshlaned --cleanup"
rel_start_timed "$CONFIG"
# The apps on 8080 and 8082 served their one connection and exited.
assert_start_scan "fresh start" 5 0
through_mesh fresh 8081 "$S8081"
hops fresh 1 1 1
mesh_assert_flat fresh0 fresh1 fresh sockets_skipped_blocking

# ---------------------------------------------------------------------------------------------
ml_log "5. a workload change scans again and records nothing new"
# Two app listeners opened after the datapath: sock_ops saw their listen(). The non-blocking
# one is marked in its sock_ops flags and has no record (none to clone into the sockets it
# accepts), the blocking one has its record "blocking"; the scan must take both as known.
ml_xfer_server_bg S8083 "$ML_CG" "$REL_B" app8083 --listen "[::]:8083" --nonblocking \
  --bytes "$BYTES" --timeout 300
ml_xfer_server_bg S8084 "$ML_CG" "$REL_B" app8084 --listen "[::]:8084" \
  --bytes "$BYTES" --timeout 300
scans=$(scan_field .scans)
mesh_add_pod REL_C c 12
MESH_WL_LINES=("${REL_WL_LINES[@]}")
mesh_workload pod-c "$REL_C" "\"$(mesh_v4 12)\"" istio
ml_write_config "$CONFIG" "${MESH_WL_LINES[@]}"
kill -HUP "$ML_DAEMON_PID"
for ((i = 0; i < 600; i++)); do
  (($(scan_field .scans) > scans)) && break
  sleep 0.1
done
(($(scan_field .scans) > scans)) || ml_fail "no listener scan within 60 s of the workload change"
[[ $(scan_field reason) == '"workloads changed"' ]] || ml_fail "the last scan's reason is $(scan_field reason)"
[[ $(scan_field recorded) -eq 0 && $(scan_field already_known) -ge 6 ]] ||
  ml_fail "the rescan recorded $(scan_field recorded) and knew $(scan_field already_known) listener(s): expected 0 and at least the 4 sidecar listeners and the apps on 8083 and 8084"
app_listener_mode marked "$S8083" 8083 false
app_listener_mode blockingafter "$S8084" 8084 1
# The marked listener's connections are spliced on every hop, the blocking one's last hop not.
through_mesh marked 8083 "$S8083"
hops marked 1 1 1
mesh_assert_flat marked0 marked1 marked sockets_skipped_blocking
through_mesh blockingafter 8084 "$S8084"
hops blockingafter 1 1 0
(($(ml_delta blockingafter0 blockingafter1 sockets_skipped_blocking) == 1)) ||
  ml_fail "blockingafter: sockets_skipped_blocking rose by $(ml_delta blockingafter0 blockingafter1 sockets_skipped_blocking), expected 1 (B's app end)"

# ---------------------------------------------------------------------------------------------
ml_log "6. acceleration off: the scan registers the listeners and records no mode"
ml_daemon_stop
ml_daemon_cleanup
sed -i 's/^enabled = true$/enabled = false/' "$CONFIG"
grep -qx 'enabled = false' "$CONFIG" || ml_fail "6: cannot turn acceleration off in $CONFIG"
rel_start_timed "$CONFIG"
[[ $(scan_field reason) == '"start"' && $(scan_field modes_recorded) == false ]] ||
  ml_fail "6: the start scan's reason is $(scan_field reason), modes_recorded $(scan_field modes_recorded): expected start, false"
(($(scan_field recorded) == 0 && $(scan_field listeners) >= 4 && $(scan_field registered) >= 4)) ||
  ml_fail "6: the scan found $(scan_field listeners), recorded $(scan_field recorded), registered $(scan_field registered) listener(s): expected at least the 4 sidecar listeners registered, none recorded"
grep -q "listener scan (start): [0-9]* listener(s) of the cgroup: 0 recorded now (acceleration off: no mode is recorded)" "$ML_DAEMON_LOG" ||
  ml_fail "6: the daemon log does not say that the scan recorded no mode"
"$MESHLANECTL" --socket "$(rel_socket)" status | grep -E "^listener scan +start: .*acceleration off: no mode is recorded" ||
  ml_fail "6: meshlanectl status does not say that the scan recorded no mode"
listener_modes "acceleration off" "$REL_PB" false

ml_daemon_stop
ml_daemon_cleanup
ml_pass
