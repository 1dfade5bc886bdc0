#!/usr/bin/env bash
# One daemon per state directory and bpffs directory, and state it never reads through a link
# (docs/security.md). With a daemon serving a live workload:
#   - its state files are 0600, no temporary file is left, the lock file holds its pid;
#   - a second meshlaned with the same config, and one with another state_dir but the same
#     bpffs_dir, exit non-zero naming the lock and the first daemon's pid, and change nothing:
#     pins, link programs, cgroup attachments, state files and tc filters are as before, the
#     first daemon still answers status, lists its workload, reads counters and intercepts;
#   - `meshlaned --cleanup` refuses too, changing nothing.
# Stopped (SIGTERM), then started:
#   - with workloads.json replaced by a symlink: refused, naming the file; the link's target
#     and the pinned datapath are untouched;
#   - with a group-writable state_dir, and with a world-writable socket directory: refused,
#     naming the directory, its mode and the fix;
#   - with all of it put right: it starts and brings the live workload back.
# shellcheck source=control_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/control_lib.sh"

ctl_setup
ml_require_cmd "$BPFTOOL" timeout sha256sum
ml_make_cgroup
ctl_make_pods POD_A POD_B

ctl_daemon_start
FIRST_PID=$ML_DAEMON_PID
ctl_ok workload add pod-a --netns "$POD_A" --ip 198.18.0.10 --ip fd00::10 --interface eth0
ctl_app_connect first
[[ $SERVED == sidecar ]] || ml_fail "the live workload's connection must go to its sidecar"

# ---- files the daemon wrote --------------------------------------------------------------------
for f in workloads.json tc-filters meshlaned.lock; do
  [[ -f $CTL_STATE_DIR/$f && ! -L $CTL_STATE_DIR/$f ]] || ml_fail "$CTL_STATE_DIR/$f is not a regular file: $(ls -la "$CTL_STATE_DIR")"
  mode=$(stat -c %a "$CTL_STATE_DIR/$f")
  [[ $mode == 600 ]] || ml_fail "$CTL_STATE_DIR/$f has mode $mode, expected 600"
done
[[ $(cat "$CTL_STATE_DIR/meshlaned.lock") == "$FIRST_PID" ]] ||
  ml_fail "meshlaned.lock holds '$(cat "$CTL_STATE_DIR/meshlaned.lock")', expected the daemon's pid $FIRST_PID"
leftover=$(find "$CTL_STATE_DIR" -name '*.tmp*')
[[ -z $leftover ]] || ml_fail "temporary files left in the state_dir: $leftover"
ml_log "state files 0600, lock file with pid $FIRST_PID, no temporary file"

# snapshot FILE: what a second daemon must not change.
snapshot() {
  {
    echo "# pins and their programs"
    local pin
    find "$ML_BPFFS_DIR" | sort
    for pin in "$ML_BPFFS_DIR"/links/*; do
      echo "$pin $("$BPFTOOL" -j link show pinned "$pin" | "$PYTHON" -c 'import json,sys; l=json.load(sys.stdin); print(l["id"], l["prog_id"])')"
    done
    echo "# cgroup"
    "$BPFTOOL" cgroup tree "$ML_CG" | tail -n +2
    echo "# tc on pod A"
    ip netns exec "$POD_A" tc filter show dev eth0 ingress
    ip netns exec "$POD_A" tc filter show dev eth0 egress
    echo "# state files"
    (cd "$CTL_STATE_DIR" && sha256sum workloads.json tc-filters meshlaned.lock)
  } >"$1" 2>&1
}

# refused LABEL CONFIG PATTERN [MODE_ARGS...]: meshlaned on CONFIG must exit non-zero, within
# 20 s, with PATTERN (grep -E) in its output.
refused() {
  local label=$1 cfg=$2 pattern=$3 rc=0 out="$ML_WORKDIR/$1.out"
  shift 3
  timeout 20 "$MESHLANED" --config "$cfg" "$@" >"$out" 2>&1 </dev/null || rc=$?
  if [[ $rc -eq 0 || $rc -eq 124 ]]; then
    cat "$out" >&2
    ml_fail "$label: meshlaned $* exited with status $rc, expected a refusal"
  fi
  grep -qE -- "$pattern" "$out" || {
    cat "$out" >&2
    ml_fail "$label: the error does not match '$pattern'"
  }
  ml_log "$label: status $rc: $(grep -E -- "$pattern" "$out" | head -n 1)"
}

# first_still_serves LABEL [connect]: the first daemon answers status with its pid, keeps its
# workload and reads counters; with "connect", the app's next connection is still intercepted.
first_still_serves() {
  local label=$1
  kill -0 "$FIRST_PID" 2>/dev/null || ml_fail "$label: the first meshlaned (pid $FIRST_PID) is gone"
  ctl_ok -o json status
  ctl_assert_json "$CTL_OUT" "j[\"pid\"] == $FIRST_PID" "$label: status answered by the first daemon"
  ctl_assert_json "$CTL_OUT" 'j["workloads"] == {"total": 1, "config": 0, "live": 1}' "$label: workloads"
  ctl_ok -o json workload get pod-a
  local before
  before=$(ctl_counter intercepted_outbound)
  [[ ${2:-} == connect ]] || return 0
  ctl_app_connect "$label"
  [[ $SERVED == sidecar ]] || ml_fail "$label: the live workload is no longer intercepted"
  [[ $(ctl_counter intercepted_outbound) -eq $((before + 1)) ]] ||
    ml_fail "$label: intercepted_outbound did not rise by one"
}

# ---- a second daemon, and --cleanup, while the first runs ---------------------------------------
snapshot "$ML_WORKDIR/before"
refused second-same-config "$ML_CONFIG" "another meshlaned \\(pid $FIRST_PID\\) holds $CTL_STATE_DIR/meshlaned.lock"
snapshot "$ML_WORKDIR/after-second"
diff -u "$ML_WORKDIR/before" "$ML_WORKDIR/after-second" >&2 || ml_fail "the second daemon changed something (diff above)"
grep -q 'maps .* under\|workload(s) applied' "$ML_WORKDIR/second-same-config.out" &&
  ml_fail "the second daemon got as far as the datapath: $(cat "$ML_WORKDIR/second-same-config.out")"
first_still_serves after-second connect

# Another state_dir and socket, the same bpffs_dir: the datapath is the same instance.
OTHER="$ML_WORKDIR/other.toml"
sed -e "s|^state_dir = .*|state_dir = \"$ML_WORKDIR/state2\"|" \
  -e "s|^socket = .*|socket = \"$ML_WORKDIR/run2/meshlane.sock\"|" "$ML_CONFIG" >"$OTHER"
snapshot "$ML_WORKDIR/before"
refused same-bpffs-dir "$OTHER" "another meshlaned \\(pid $FIRST_PID\\) holds $ML_BPFFS_DIR and so runs with this daemon.bpffs_dir"
snapshot "$ML_WORKDIR/after-other"
diff -u "$ML_WORKDIR/before" "$ML_WORKDIR/after-other" >&2 || ml_fail "the daemon with the same bpffs_dir changed something (diff above)"
[[ ! -e $ML_WORKDIR/run2 ]] || ml_fail "the refused daemon created its socket directory"

refused cleanup-while-running "$ML_CONFIG" "cleanup refused: another meshlaned \\(pid $FIRST_PID\\)" --cleanup
snapshot "$ML_WORKDIR/after-cleanup"
diff -u "$ML_WORKDIR/before" "$ML_WORKDIR/after-cleanup" >&2 || ml_fail "--cleanup under a running daemon changed something (diff above)"
first_still_serves after-cleanup

# ---- a symlinked state file, unsafe directories -------------------------------------------------
ml_daemon_stop
[[ $ML_DAEMON_RC -eq 0 ]] || ml_fail "meshlaned exited with status $ML_DAEMON_RC on SIGTERM"
snapshot "$ML_WORKDIR/stopped"

mv "$CTL_STATE_DIR/workloads.json" "$ML_WORKDIR/workloads.elsewhere"
ln -s "$ML_WORKDIR/workloads.elsewhere" "$CTL_STATE_DIR/workloads.json"
sum=$(sha256sum <"$ML_WORKDIR/workloads.elsewhere")
refused symlinked-state "$ML_CONFIG" "refusing to read the state file $CTL_STATE_DIR/workloads.json: it is a symbolic link"
[[ -L $CTL_STATE_DIR/workloads.json && $(sha256sum <"$ML_WORKDIR/workloads.elsewhere") == "$sum" ]] ||
  ml_fail "the refused start changed the link or its target"
rm "$CTL_STATE_DIR/workloads.json"
mv "$ML_WORKDIR/workloads.elsewhere" "$CTL_STATE_DIR/workloads.json"

chmod 0770 "$CTL_STATE_DIR"
refused group-writable-state-dir "$ML_CONFIG" "daemon.state_dir $CTL_STATE_DIR is writable by its group or by everyone \\(owner uid 0, mode 0770\\).*chmod go-w $CTL_STATE_DIR"
chmod 0700 "$CTL_STATE_DIR"

SOCKET_DIR=$(dirname "$CTL_SOCKET")
mkdir -p "$SOCKET_DIR"
chmod 0777 "$SOCKET_DIR"
refused world-writable-socket-dir "$ML_CONFIG" "the directory of daemon.socket $SOCKET_DIR is writable by its group or by everyone"
rmdir "$SOCKET_DIR"

# Every refusal above came before the datapath: the pins and programs SIGTERM left are as they were.
sed -i '/meshlaned.lock/d' "$ML_WORKDIR/stopped"
snapshot "$ML_WORKDIR/refusals"
sed -i '/meshlaned.lock/d' "$ML_WORKDIR/refusals"
diff -u "$ML_WORKDIR/stopped" "$ML_WORKDIR/refusals" >&2 || ml_fail "a refused start changed something (diff above)"

# ---- put right, it starts and brings the workload back ------------------------------------------
ctl_daemon_start
FIRST_PID=$ML_DAEMON_PID
first_still_serves restarted connect
ml_pass
