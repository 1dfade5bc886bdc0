#!/usr/bin/env bash
# The control socket end to end, driven with meshlanectl against a daemon on the test's own
# cgroup: status and stats fields (splicing and interception on, the optional kernel features
# apart, in JSON and the table); workload get and list show labels and the acceleration keys,
# and workload add has a flag for every [[workload]] key, each read back; a workload added live
# is intercepted from its next connection and no longer once deleted, while an established
# connection of the pod carries on; conns lists the pod's spliced sockets; peers that are neither root nor in a socket group are
# refused; malformed JSON and an oversized frame get structured errors and the daemon keeps
# serving; a workload's netns that is a FIFO, a regular file, the host's or a uts namespace is
# refused and changes nothing; a pod whose namespace vanished is kept unavailable and blocks no
# later add, del or SIGHUP; the live workload survives a daemon restart (with the deprecated
# socket_group, read as the write group); exit codes. Third run, the two tiers
# (docs/security.md): a member of socket_read_group reads but is refused every write with a
# clear error and changes nothing, a member of socket_write_group (not in the read group: it
# connects through the socket's ACL) changes workloads, and the daemon log audits both, and
# SIGHUP, with uid and pid.
# shellcheck source=control_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/control_lib.sh"

ctl_setup
ml_make_cgroup
ctl_make_pods POD_A POD_B
ml_log "pods: A $POD_A (198.18.0.10), B $POD_B (198.18.0.11)"

# First run: the socket is world-writable so that a non-root peer reaches the credential check.
ctl_daemon_start 'socket_mode = "0666"'

# ---- status and stats ---------------------------------------------------------------------------
ctl_ok -o json status
STATUS=$CTL_OUT
ctl_assert_json "$STATUS" 'j["protocol"] == 1 and j["version"] != ""' "status version"
ctl_assert_json "$STATUS" 'j["uptime_seconds"] >= 0 and j["pid"] > 0' "status uptime/pid"
ctl_assert_json "$STATUS" "j[\"bpffs_dir\"] == \"$ML_BPFFS_DIR\"" "status bpffs_dir"
ctl_assert_json "$STATUS" "j[\"cgroup\"] == \"$ML_CG\"" "status cgroup"
ctl_assert_json "$STATUS" "j[\"socket\"] == \"$CTL_SOCKET\"" "status socket"
ctl_assert_json "$STATUS" 'len(j["kernel_features"]) > 0 and all(f["present"] for f in j["kernel_features"])' \
  "status kernel features"
ctl_assert_json "$STATUS" "any(a[\"what\"] == \"connect4 on $ML_CG\" for a in j[\"attachments\"])" \
  "status attach points"
ctl_assert_json "$STATUS" 'len(j["attachments"]) == 9' "status attach point count"
ctl_assert_json "$STATUS" 'j["workloads"] == {"total": 0, "config": 0, "live": 0}' "status workloads"
ctl_assert_json "$STATUS" 'j["splicing"] is True and j["interception"] is True and j["degraded"] is False' \
  "status splicing, interception, not degraded"
ctl_assert_json "$STATUS" "j[\"inbound_steering\"] == \"${ML_INBOUND_STEERING:-sk_lookup}\"" \
  "status inbound_steering (the default, or ML_INBOUND_STEERING)"
# Optional features (kernel >= 6.2, >= 6.6): listed apart, each with what it is for and what
# happens without it; on a kernel new enough for both, both are on.
ctl_assert_json "$STATUS" 'len(j["optional_kernel_features"]) == 2 and all(isinstance(f["present"], bool) and f["name"] and f["needed_for"] and f["when_absent"] for f in j["optional_kernel_features"])' \
  "status optional kernel features"
ctl_assert_json "$STATUS" '[f["needed_for"] for f in j["optional_kernel_features"]] == ["acceleration.max_unread_bytes (back-pressure), acceleration.leave_spinning_readers and the other end following a socket that left the splice", "the map-full pre-check before interception"]' \
  "status optional kernel features are for back-pressure and the map-full pre-check"
KERNEL_MM=$(uname -r | awk -F. '{ print $1 * 100 + $2 }')
if ((KERNEL_MM >= 606)); then
  ctl_assert_json "$STATUS" 'all(f["present"] for f in j["optional_kernel_features"])' \
    "optional kernel features on kernel $(uname -r)"
fi
REQUIRED=$(ctl_json "$STATUS" 'len(j["kernel_features"])')
OPTIONAL_ON=$(ctl_json "$STATUS" 'len([f for f in j["optional_kernel_features"] if f["present"]])')
ctl_ok status
grep -q '^version  *[0-9]' <<<"$CTL_OUT" || ml_fail "status table has no version line: $CTL_OUT"
grep -q '^connect6 on ' <<<"$CTL_OUT" || ml_fail "status table lists no connect6 attach point"
grep -qE "^datapath +splicing on, interception on \\(inbound steering by ${ML_INBOUND_STEERING:-sk_lookup}\\)\$" <<<"$CTL_OUT" ||
  ml_fail "status table does not say splicing and interception are on: $CTL_OUT"
grep -qE "^kernel +$(uname -r), $REQUIRED of $REQUIRED features found, $OPTIONAL_ON of 2 optional ones on\$" <<<"$CTL_OUT" ||
  ml_fail "status table kernel line: $CTL_OUT"
grep -qE '^OPTIONAL KERNEL FEATURE +ON +FOR +WHEN OFF$' <<<"$CTL_OUT" ||
  ml_fail "status table has no optional kernel feature table: $CTL_OUT"
grep -qE '^kfunc bpf_map_sum_elem_count \(kernel >= 6\.6\) +(yes|no) +the map-full pre-check before interception ' <<<"$CTL_OUT" ||
  ml_fail "status table has no map-full pre-check row: $CTL_OUT"
[[ $(stat -c %a "$CTL_SOCKET") == 666 ]] || ml_fail "socket mode is $(stat -c %a "$CTL_SOCKET"), expected 666"

ctl_ok -o json stats
for counter in sockets_added intercepted_outbound spliced_other bytes_redirected; do
  ctl_assert_json "$CTL_OUT" "isinstance(j[\"counters\"][\"$counter\"], int)" "stats $counter"
done
# The same numbers as meshlaned --stats (nothing runs in the cgroup right now).
DIRECT=$(ml_stats_json)
[[ $(ml_json_int "$DIRECT" sockets_added) == $(ctl_json "$CTL_OUT" 'j["counters"]["sockets_added"]') ]] ||
  ml_fail "stats over the socket differ from meshlaned --stats: $CTL_OUT vs $DIRECT"
ctl_ok stats
grep -q '^intercepted_outbound  *[0-9]' <<<"$CTL_OUT" || ml_fail "stats table: $CTL_OUT"

# ---- interception follows live workload changes -------------------------------------------------

BEFORE=$(ctl_counter intercepted_outbound)
ctl_app_connect before
[[ $SERVED == podb ]] || ml_fail "before the workload exists, pod B must get the app's connection"
[[ $(ctl_counter intercepted_outbound) == "$BEFORE" ]] ||
  ml_fail "intercepted_outbound rose without any workload"

# A loopback connection inside pod A, established before the pod becomes a workload.
ctl_hold_start HOLD_PID "$POD_A" 9000

ctl_ok workload add pod-a --netns "$POD_A" --ip 198.18.0.10 --ip fd00::10
[[ $CTL_OUT == "workload pod-a added" ]] || ml_fail "workload add printed: $CTL_OUT"
ctl_ok workload add pod-a --netns "/var/run/netns/$POD_A" --ip 198.18.0.10 --ip fd00::10
[[ $CTL_OUT == "workload pod-a unchanged" ]] || ml_fail "adding the same workload again printed: $CTL_OUT"
ctl_ok -o json workload get pod-a
ctl_assert_json "$CTL_OUT" 'j["source"] == "live" and j["spec"]["outbound_port"] == 15001 and j["spec"]["ips"] == ["198.18.0.10", "fd00::10"]' \
  "workload get"
ctl_assert_json "$CTL_OUT" 'j["spec"]["labels"] == {} and j["spec"]["acceleration"] is True and j["spec"]["exclude_acceleration_ports"] == []' \
  "workload get labels and acceleration keys (defaults)"
ctl_ok workload get pod-a
for line in '^labels +-$' '^acceleration +yes$' '^exclude_acceleration_ports +-$'; do
  grep -qE "$line" <<<"$CTL_OUT" || ml_fail "workload get has no line $line: $CTL_OUT"
done
ctl_ok workload list
grep -qE "^pod-a +live +applied +istio +no +yes +/var/run/netns/$POD_A +198.18.0.10, fd00::10 +-$" <<<"$CTL_OUT" ||
  ml_fail "workload list: $CTL_OUT"
ctl_ok -o json status
ctl_assert_json "$CTL_OUT" 'j["workloads"] == {"total": 1, "config": 0, "live": 1}' "status after add"

ctl_app_connect live
[[ $SERVED == sidecar ]] ||
  ml_fail "after workload add, the app's next connection must go to its sidecar"
AFTER=$(ctl_counter intercepted_outbound)
[[ $AFTER -eq $((BEFORE + 1)) ]] ||
  ml_fail "intercepted_outbound went from $BEFORE to $AFTER, expected one more"
ml_log "live workload intercepted: intercepted_outbound $BEFORE -> $AFTER"

# conns: the held loopback connection, both ends spliced, scoped to pod A's namespace.
ctl_ok -o json conns
ctl_assert_json "$CTL_OUT" 'any(c["local"] == "127.0.0.1:9000" and c["workload"] == "pod-a" and c["remote_workload"] == "pod-a" and c["peer_in_map"] and c["scope"] != 0 for c in j["connections"])' \
  "conns lists the held connection as pod-a's"
ctl_ok conns
grep -qE '^127\.0\.0\.1:9000 +127\.0\.0\.1:[0-9]+ +pod-a +pod-a +other +yes +netns [0-9]+$' <<<"$CTL_OUT" ||
  ml_fail "conns table: $CTL_OUT"

# Deleting stops interception for new connections; the established one carries on.
ctl_ok workload del pod-a
[[ $CTL_OUT == "workload pod-a deleted" ]] || ml_fail "workload del printed: $CTL_OUT"
ctl_app_connect deleted
[[ $SERVED == podb ]] || ml_fail "after workload del, pod B must get the app's connection again"
[[ $(ctl_counter intercepted_outbound) == "$AFTER" ]] ||
  ml_fail "intercepted_outbound rose after the workload was deleted"
ctl_hold_finish "$HOLD_PID" 9000
ml_log "deleted workload: not intercepted any more, established connection intact"

ctl workload del pod-a
ctl_expect_rc 2 "deleting a missing workload"
grep -q 'not_found' <<<"$CTL_ERR" || ml_fail "deleting a missing workload: $CTL_ERR"
ctl_ok workload del pod-a --missing-ok

# ---- who may call --------------------------------------------------------------------------------
ctl_as 65534 65534 -o json workload add intruder --netns "$POD_B" --ip 198.18.0.11
ctl_expect_rc 2 "non-root workload add"
ctl_assert_json "$CTL_OUT" 'j["error"]["code"] == "permission_denied"' "non-root workload add"
ctl_as 65534 65534 status
ctl_expect_rc 2 "non-root status (socket_group unset: root only)"
ctl_ok -o json workload list
ctl_assert_json "$CTL_OUT" 'j["total"] == 0' "nothing was added by the non-root peer"

# ---- bad input -------------------------------------------------------------------------------------
state=$(printf '{"v":1,"id":1,"method":\n' | ctl_raw "$ML_WORKDIR/raw1")
ctl_assert_json "$(head -n1 "$ML_WORKDIR/raw1")" 'j["error"]["code"] == "parse_error" and j["id"] is None' "malformed JSON"
[[ $state == closed ]] || ml_fail "the daemon kept a connection open after malformed JSON"

state=$("$PYTHON" -c 'import sys; sys.stdout.write("{\"v\":1,\"id\":2,\"method\":\"status\",\"params\":{\"x\":\"" + "a" * (1 << 20) + "\"}}\n")' |
  ctl_raw "$ML_WORKDIR/raw2")
ctl_assert_json "$(head -n1 "$ML_WORKDIR/raw2")" 'j["error"]["code"] == "frame_too_large"' "oversized frame"
[[ $state == closed ]] || ml_fail "the daemon kept a connection open after an oversized frame"

printf '%s\n' '{"v":1,"id":3,"method":"workload.rm"}' | ctl_raw "$ML_WORKDIR/raw3" >/dev/null
ctl_assert_json "$(head -n1 "$ML_WORKDIR/raw3")" 'j["error"]["code"] == "unknown_method" and j["id"] == 3' "unknown method"
printf '%s\n' '{"v":1,"id":4,"method":"stats","params":{"colour":"x"}}' | ctl_raw "$ML_WORKDIR/raw4" >/dev/null
ctl_assert_json "$(head -n1 "$ML_WORKDIR/raw4")" 'j["error"]["code"] == "invalid_params"' "unknown parameter"
printf '%s\n' '{"v":1,"id":5,"method":"workload.add","params":{"name":"x","netns":"/x","ips":["300.1.1.1"]}}' |
  ctl_raw "$ML_WORKDIR/raw5" >/dev/null
ctl_assert_json "$(head -n1 "$ML_WORKDIR/raw5")" 'j["error"] == {"code": "invalid_params", "message": "params.ips[0]: \"300.1.1.1\" is not an IPv4 or IPv6 address"}' \
  "workload.add validation"

kill -0 "$ML_DAEMON_PID" 2>/dev/null || ml_fail "meshlaned died on bad input"
ctl_ok -o json status
ml_log "bad input answered with structured errors; the daemon keeps serving"

# ---- a workload's netns is not trusted ------------------------------------------------------------
# A FIFO (which a plain open would wait on forever, on the daemon's only I/O thread), a regular
# file, the host's namespace and a namespace of another kind are each refused with an error
# that says what the path is, and change nothing; the daemon answers right after the FIFO.
mkfifo "$ML_WORKDIR/not-a-netns.fifo"
echo "not a namespace" >"$ML_WORKDIR/not-a-netns.txt"
ctl_refused_netns() {  # NETNS EXPECTED_MESSAGE_PART
  ctl --timeout 10 -o json workload add bad --netns "$1" --ip 198.18.0.30
  ctl_expect_rc 2 "workload add with netns $1"
  ctl_assert_json "$CTL_OUT" "j[\"error\"][\"code\"] == \"apply_failed\" and \"$2\" in j[\"error\"][\"message\"]" \
    "workload add with netns $1"
  ml_log "netns $1 refused: $(ctl_json "$CTL_OUT" 'j["error"]["message"]')"
}
ctl_refused_netns "$ML_WORKDIR/not-a-netns.fifo" "not-a-netns.fifo is a FIFO, not a network namespace"
ctl_ok --timeout 10 -o json status
ctl_refused_netns "$ML_WORKDIR/not-a-netns.txt" "not-a-netns.txt is a regular file, not a network namespace"
# The host's namespace, which meshlaned runs in here: through this shell's /proc entry, and
# through PID 1's where this machine lets root read it (not in every container).
ctl_refused_netns "/proc/$$/ns/net" "/proc/$$/ns/net is meshlaned's own network namespace"
if stat -L /proc/1/ns/net >/dev/null 2>&1; then
  ctl_refused_netns /proc/1/ns/net "/proc/1/ns/net is meshlaned's own network namespace"
fi
ctl_refused_netns "/proc/$$/ns/uts" "/proc/$$/ns/uts is a uts namespace, not a network namespace"
ctl_ok -o json workload list
ctl_assert_json "$CTL_OUT" 'j["total"] == 0 and j["draining"] == []' "nothing was added by refused netns paths"
if [[ -e $CTL_STATE_DIR/workloads.json ]] && grep -q '"bad"' "$CTL_STATE_DIR/workloads.json"; then
  ml_fail "a refused workload reached the state file"
fi
ml_log "FIFO, regular file, host and uts namespaces refused; nothing changed; the daemon answers"

# ---- a pod whose namespace vanished blocks no later change ------------------------------------------
# Pods "gone" and "next" get an eth0 (a veth whose peer stays in the pod: tc needs an interface,
# and not every kernel here has the dummy module). "gone" is applied, then its
# namespace deleted: adding "next", a SIGHUP reload and deleting both still work, and workload
# get shows "gone" unavailable with its namespace gone.
for ns_var in GONE_NS NEXT_NS; do
  ml_make_netns "$ns_var" "${ns_var%_NS}"
  ip -n "${!ns_var}" link add eth0 type veth peer name eth0-peer &&
    ip -n "${!ns_var}" link set eth0 up && ip -n "${!ns_var}" link set eth0-peer up ||
    ml_fail "cannot add an eth0 to ${!ns_var}"
done
ctl_ok workload add gone --netns "$GONE_NS" --ip 198.18.0.31
ctl_ok -o json workload get gone
ctl_assert_json "$CTL_OUT" 'j["health"]["state"] == "applied" and j["health"]["netns_exists"] and j["health"]["tc_filters"] == "attached" and j["health"]["netns_cookie"] > 0 and j["health"]["netns_inode"] > 0' \
  "health of an applied workload"
ip netns del "$GONE_NS"
ctl_ok -o json workload get gone
ctl_assert_json "$CTL_OUT" 'j["health"]["netns"] == "gone" and not j["health"]["netns_exists"]' \
  "health of a workload whose namespace was deleted"
ctl_ok workload add next --netns "$NEXT_NS" --ip 198.18.0.32
[[ $CTL_OUT == "workload next added" ]] || ml_fail "workload add next printed: $CTL_OUT"
ctl_ok -o json workload get next
ctl_assert_json "$CTL_OUT" 'j["health"]["state"] == "applied" and j["health"]["tc_filters"] == "attached"' \
  "health of the workload added after a pod vanished"
ctl_ok -o json workload get gone
ctl_assert_json "$CTL_OUT" 'j["health"]["state"] == "unavailable" and "cannot open network namespace" in j["health"]["unavailable_reason"] and j["health"]["netns_cookie"] is None' \
  "the vanished pod's workload is kept, unavailable"
ctl_ok workload list
grep -qE '^gone +live +unavailable +istio ' <<<"$CTL_OUT" || ml_fail "workload list does not show gone unavailable: $CTL_OUT"
ml_sighup "reload with a vanished pod"
grep -q 'reload rejected' <<<"$RELOAD_LINES" && ml_fail "SIGHUP was rejected because of the vanished pod"
ctl_ok -o json workload list
ctl_assert_json "$CTL_OUT" 'j["total"] == 2 and [w["health"]["state"] for w in j["workloads"]] == ["unavailable", "applied"]' \
  "workloads after the reload"
ctl_ok workload del gone
ctl_ok workload del next
ctl_ok -o json workload list
ctl_assert_json "$CTL_OUT" 'j["total"] == 0' "both deleted"
ml_log "a vanished pod: kept unavailable; add, SIGHUP and del still work"

# ---- workload add has a flag for every [[workload]] key ---------------------------------------------
# Every key set to something other than its preset, then read back with workload get: the spec
# (every key workload.get reports) is exactly what the flags said, the table shows labels and
# the acceleration keys, and `workload add --help` names a flag for each key.
ctl_ok workload add every-flag --netns "$NEXT_NS" --ip 198.18.0.40 --ip fd00::40 --mesh custom \
  --proxy-uid 1500 --proxy-gid 1501 --outbound-port 16001 --inbound-port 16006 \
  --inbound-passthrough-sources 127.0.0.7 --include-outbound-ports 80,443 \
  --exclude-outbound-ports 5432 --include-inbound-ports 8080 --include-inbound-ports 8443 \
  --exclude-inbound-ports none --include-outbound-cidrs 198.18.0.0/24 \
  --exclude-outbound-cidrs 198.18.0.99/32 --exclude-inbound-cidrs fd00::/64 \
  --node-proxy 198.18.0.1:15001 --interface eth0 --label app=every --label tier=web \
  --no-acceleration --exclude-acceleration-ports 6379,11211 --fast-path \
  --fast-path-exclude-ports 9443 --dns-capture --dns-proxy-port 15153
[[ $CTL_OUT == "workload every-flag added" ]] || ml_fail "workload add with every flag printed: $CTL_OUT"
ctl_ok -o json workload get every-flag
EVERY=$CTL_OUT
ctl_assert_json "$EVERY" "j['spec'] == {'name': 'every-flag', 'netns': '/var/run/netns/$NEXT_NS', 'ips': ['198.18.0.40', 'fd00::40'], 'mesh': 'custom', 'proxy_uid': 1500, 'proxy_gid': 1501, 'outbound_port': 16001, 'inbound_port': 16006, 'inbound_passthrough_sources': ['127.0.0.7'], 'include_outbound_ports': [80, 443], 'exclude_outbound_ports': [5432], 'include_inbound_ports': [8080, 8443], 'exclude_inbound_ports': [], 'include_outbound_cidrs': ['198.18.0.0/24'], 'exclude_outbound_cidrs': ['198.18.0.99/32'], 'exclude_inbound_cidrs': ['fd00::/64'], 'node_proxy': '198.18.0.1:15001', 'interface': 'eth0', 'labels': {'app': 'every', 'tier': 'web'}, 'acceleration': False, 'exclude_acceleration_ports': [6379, 11211], 'fast_path': True, 'fast_path_exclude_ports': [9443], 'dns_capture': True, 'dns_proxy_port': 15153}" \
  "workload get after workload add with every flag"
ctl_ok workload get every-flag
for line in '^labels +app=every, tier=web$' '^acceleration +no$' \
  '^exclude_acceleration_ports +6379, 11211$' '^fast_path_exclude_ports +9443$'; do
  grep -qE "$line" <<<"$CTL_OUT" || ml_fail "workload get every-flag has no line $line: $CTL_OUT"
done
ctl_ok workload list
grep -qE "^every-flag +live +applied +custom +yes +no +/var/run/netns/$NEXT_NS +198.18.0.40, fd00::40 +app=every, tier=web$" <<<"$CTL_OUT" ||
  ml_fail "workload list with labels and acceleration off: $CTL_OUT"
ctl workload add --help
ctl_expect_rc 0 "workload add --help"
ADD_HELP=$CTL_OUT
for key in $(ctl_json "$EVERY" '" ".join(j["spec"])'); do
  case $key in
    name) continue ;;  # the positional NAME
    ips) flag=--ip ;;
    labels) flag=--label ;;
    acceleration) flag=--no-acceleration ;;
    *) flag="--${key//_/-}" ;;
  esac
  grep -qE -- "(^|[ ,])$flag([ ,{]|$)" <<<"$ADD_HELP" || ml_fail "workload add --help has no $flag for $key: $ADD_HELP"
done
ctl_ok workload del every-flag
# --acceleration (the default, given explicitly) with excepted ports.
ctl_ok workload add acc --netns "$NEXT_NS" --ip 198.18.0.41 --acceleration --exclude-acceleration-ports 6379
ctl_ok -o json workload get acc
ctl_assert_json "$CTL_OUT" 'j["spec"]["acceleration"] is True and j["spec"]["exclude_acceleration_ports"] == [6379]' \
  "workload add --acceleration --exclude-acceleration-ports"
ctl_ok workload list
grep -qE "^acc +live +applied +istio +no +yes, not 6379 +/var/run/netns/$NEXT_NS +198.18.0.41 +-$" <<<"$CTL_OUT" ||
  ml_fail "workload list with an excepted acceleration port: $CTL_OUT"
ctl_ok workload del acc
ml_log "workload add: a flag for every key, read back by workload get and list"

# ---- exit codes -------------------------------------------------------------------------------------
ctl workload get nope
ctl_expect_rc 2 "workload get of a missing workload"
ctl workload add
ctl_expect_rc 1 "workload add without arguments"
ctl bogus
ctl_expect_rc 1 "unknown command"
ctl workload --help
ctl_expect_rc 0 "workload --help"
grep -q 'add' <<<"$CTL_OUT" || ml_fail "workload --help lists no add: $CTL_OUT"
CTL_SOCKET_SAVED=$CTL_SOCKET
CTL_SOCKET="$ML_WORKDIR/nothing.sock"
ctl status
CTL_SOCKET=$CTL_SOCKET_SAVED
ctl_expect_rc 3 "no daemon at the socket"
grep -q 'is meshlaned running' <<<"$CTL_ERR" || ml_fail "connect failure message: $CTL_ERR"

# ---- the live workload survives a restart ----------------------------------------------------------
ctl_ok workload add pod-a --netns "$POD_A" --ip 198.18.0.10 --ip fd00::10 --exclude-outbound-ports 9999
[[ -f $CTL_STATE_DIR/workloads.json ]] || ml_fail "no state file in $CTL_STATE_DIR"
ml_daemon_stop
[[ $ML_DAEMON_RC -eq 0 ]] || ml_fail "meshlaned exited with status $ML_DAEMON_RC on SIGTERM"
[[ ! -e $CTL_SOCKET ]] || ml_fail "the socket file outlived the daemon"

# Second run: root-only file mode, but the socket belongs to group nogroup, given with the
# deprecated key (an existing config must keep working, as the write group, with a warning).
ctl_daemon_start 'socket_mode = "0660"' 'socket_group = "nogroup"'
[[ $(stat -c '%a %G' "$CTL_SOCKET") == "660 nogroup" ]] ||
  ml_fail "socket is $(stat -c '%a %G' "$CTL_SOCKET"), expected 660 nogroup"
grep -q 'daemon.socket_group is deprecated: it is read as daemon.socket_write_group' "$ML_DAEMON_LOG" ||
  ml_fail "no deprecation warning for daemon.socket_group in $ML_DAEMON_LOG"
ctl_ok -o json workload get pod-a
ctl_assert_json "$CTL_OUT" 'j["source"] == "live" and j["spec"]["exclude_outbound_ports"] == [9999]' \
  "workload after restart"
BEFORE=$(ctl_counter intercepted_outbound)
ctl_app_connect restarted
[[ $SERVED == sidecar ]] || ml_fail "after a restart, the live workload must still be intercepted"
[[ $(ctl_counter intercepted_outbound) -eq $((BEFORE + 1)) ]] || ml_fail "intercepted_outbound did not rise after the restart"

# Members of socket_group may call; others cannot even connect (file mode).
ctl_as 65534 65534 -o json status
ctl_expect_rc 0 "status by a member of socket_group"
ctl_as 65534 65533 status
ctl_expect_rc 3 "status by a non-member (socket file mode 0660)"

ctl_ok workload del pod-a
grep -Eq '^[^ ]+ info audit: uid 0 pid [1-9][0-9]*: workload.del pod-a: deleted$' "$ML_DAEMON_LOG" ||
  ml_fail "no audit line for root's workload.del in $ML_DAEMON_LOG"

# ---- read and write tiers ----------------------------------------------------------------------
# Numeric gids no account uses (the config takes a gid as well as a name), so nothing is created
# on the host and nothing is left to remove; setpriv gives the callers their ids.
READ_GID=64990 WRITE_GID=64991 READER_UID=64992 WRITER_UID=64993
ml_daemon_stop
ctl_daemon_start 'socket_mode = "0660"' "socket_read_group = \"$READ_GID\"" \
  "socket_write_group = \"$WRITE_GID\""
[[ $(stat -c '%a %g' "$CTL_SOCKET") == "660 $READ_GID" ]] ||
  ml_fail "socket is $(stat -c '%a %g' "$CTL_SOCKET"), expected 660 $READ_GID"
grep -q "control socket $CTL_SOCKET (mode 0660, read: gid $READ_GID and the write group, write: gid $WRITE_GID;" \
  "$ML_DAEMON_LOG" || ml_fail "the startup log does not describe the tiers"
echo '{"name": "reader-policy", "workload": "pod-b", "ingress": [{"action": "deny", "ports": [1]}]}' \
  >"$ML_WORKDIR/reader-policy.json"
chmod 644 "$ML_WORKDIR/reader-policy.json"
ctl_ok -o json workload list
LIST_BEFORE=$CTL_OUT
ctl_ok -o json policy get
POLICIES_BEFORE=$CTL_OUT

# The read tier: status and list work.
ctl_as "$READER_UID" "$READ_GID" -o json status
ctl_expect_rc 0 "status by a member of socket_read_group"
ctl_as "$READER_UID" "$READ_GID" -o json workload list
ctl_expect_rc 0 "workload list by a member of socket_read_group"
[[ $CTL_OUT == "$LIST_BEFORE" ]] || ml_fail "the read tier sees another list: $CTL_OUT"
# Every write is refused with the method, the caller's uid and the setting that grants it.
expect_refused() {
  local what=$1 method=$2
  ctl_expect_rc 2 "$what by a member of socket_read_group"
  local expected="uid $READER_UID (gid $READ_GID) may not call $method: a write method, open to uid 0 and members of daemon.socket_write_group (gid $WRITE_GID) (permission_denied)"
  grep -qF "$expected" <<<"$CTL_ERR" || ml_fail "$what by the read tier: expected '$expected', got: $CTL_ERR"
}
ctl_as "$READER_UID" "$READ_GID" workload add intruder --netns "$POD_B" --ip 198.18.0.11
expect_refused "workload add" workload.add
ctl_as "$READER_UID" "$READ_GID" policy apply -f "$ML_WORKDIR/reader-policy.json"
expect_refused "policy apply" policy.apply
ctl_as "$READER_UID" "$READ_GID" policy apply --replace -f "$ML_WORKDIR/reader-policy.json"
expect_refused "policy apply --replace" policy.apply
ctl_as "$READER_UID" "$READ_GID" monitor --count 1
expect_refused "monitor" monitor
ctl_ok -o json workload list
[[ $CTL_OUT == "$LIST_BEFORE" ]] || ml_fail "refused calls changed the workloads: $CTL_OUT"
ctl_ok -o json policy get
[[ $CTL_OUT == "$POLICIES_BEFORE" ]] || ml_fail "refused calls changed the policies: $CTL_OUT"
grep -Eq "warning audit: refused uid $READER_UID gid $READ_GID pid [1-9][0-9]*: workload.add \(write method\)" \
  "$ML_DAEMON_LOG" || ml_fail "no warning for the refused workload.add in $ML_DAEMON_LOG"

# The write tier (only in the write group: it reaches the socket through its ACL entry).
ctl_as "$WRITER_UID" "$WRITE_GID" -o json workload add pod-a --netns "$POD_A" --ip 198.18.0.10
ctl_expect_rc 0 "workload add by a member of socket_write_group"
ctl_assert_json "$CTL_OUT" 'j["outcome"] == "added"' "workload add by the write tier"
ctl_as "$WRITER_UID" "$WRITE_GID" workload del pod-a
ctl_expect_rc 0 "workload del by a member of socket_write_group"
grep -Eq "info audit: uid $WRITER_UID pid [1-9][0-9]*: workload.add pod-a: added\$" "$ML_DAEMON_LOG" ||
  ml_fail "no audit line for the write tier's workload.add in $ML_DAEMON_LOG"
grep -Eq "info audit: uid $WRITER_UID pid [1-9][0-9]*: workload.del pod-a: deleted\$" "$ML_DAEMON_LOG" ||
  ml_fail "no audit line for the write tier's workload.del in $ML_DAEMON_LOG"
# In neither group: the file mode keeps it out.
ctl_as 65534 65534 status
ctl_expect_rc 3 "status by a member of neither group"

# SIGHUP: audited too.
kill -HUP "$ML_DAEMON_PID"
for _ in $(seq 100); do
  grep -q "info audit: SIGHUP reload of $ML_CONFIG: applied" "$ML_DAEMON_LOG" && break
  sleep 0.1
done
grep -q "info audit: SIGHUP reload of $ML_CONFIG: applied" "$ML_DAEMON_LOG" ||
  ml_fail "no audit line for SIGHUP in $ML_DAEMON_LOG"
ml_pass
