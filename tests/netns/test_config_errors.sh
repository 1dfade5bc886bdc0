#!/usr/bin/env bash
# Config errors: unknown keys and tables, wrong types, out-of-range values and TOML syntax
# errors make meshlaned exit 1 with "FILE:LINE:COL: key: message" on stderr (the key named
# where there is one), before anything is pinned or attached. A missing file is an error that
# names the path. The valid base config is checked to start, so the test cannot pass because
# everything is rejected.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ml_setup
ml_require_meshlane
ml_require_cmd "$BPFTOOL" timeout
ml_make_cgroup

nothing_pinned() {
  local label=$1 left
  [[ ! -e $ML_BPFFS_DIR ]] || ml_fail "$label: $ML_BPFFS_DIR exists after a rejected config: $(ls -A "$ML_BPFFS_DIR")"
  left=$(ml_cgroup_progs "$ML_CG")
  [[ -z $left ]] || ml_fail "$label: programs attached to $ML_CG after a rejected config:"$'\n'"$left"
}

# expect_error LABEL LINE KEY MODE: runs meshlaned (MODE: run, --cleanup or --stats) on
# $cfg; exit status must be 1 and stderr must have "$cfg:LINE:COL: ...KEY...: message".
# KEY "-" means no key is required (syntax errors).
expect_error() {
  local label=$1 line=$2 key=$3 mode=$4 rc=0 err="$ML_WORKDIR/$1.err"
  local -a extra=()
  case $mode in
    run) ;;
    --cleanup) extra=(--cleanup) ;;
    --stats) extra=(--stats -o json) ;;
  esac
  timeout 20 "$MESHLANED" --config "$cfg" "${extra[@]}" >"$ML_WORKDIR/$label.out" 2>"$err" </dev/null || rc=$?
  if [[ $rc -ne 1 ]]; then
    cat "$err" >&2
    ml_fail "$label: meshlaned ${extra[*]} exited with status $rc, expected 1"
  fi
  local hit
  hit=$(grep -F "$cfg:$line:" "$err" || true)
  if [[ -z $hit ]]; then
    cat "$err" >&2
    ml_fail "$label: stderr does not name $cfg:$line:"
  fi
  grep -qE ":$line:[0-9]+: " <<<"$hit" || ml_fail "$label: no column after the line number: $hit"
  if [[ $key != - ]] && ! grep -qE ":$line:[0-9]+: ([A-Za-z0-9_.]*\\.)?$key(\\[[0-9]+\\])?: " <<<"$hit"; then
    ml_fail "$label: the message does not name the key as \"FILE:LINE:COL: $key: ...\": $hit"
  fi
  ml_log "$label: $hit"
  nothing_pinned "$label"
}

# write_cfg LINES...: the base config with LINES in place of the @ placeholder lines.
base() {
  cat <<CFG
[daemon]
bpffs_dir = "$ML_BPFFS_DIR"
cgroup = "$ML_CG_REL"
log_level = "info"
socket = "$ML_WORKDIR/meshlane.sock"
state_dir = "$ML_WORKDIR/state"

[acceleration]
enabled = true
sockhash_max_entries = 1024
CFG
}
ML_BPFFS_DIR=/sys/fs/bpf/meshlane-test-$ML_TAG
cfg="$ML_WORKDIR/bad.toml"
host_defer ml_daemon_cleanup_quiet "$cfg"

# Unknown key in [daemon], line 4.
base | sed '4i bogus_key = 1' >"$cfg"
expect_error unknown-key-daemon 4 bogus_key run
expect_error unknown-key-cleanup 4 bogus_key --cleanup
expect_error unknown-key-stats 4 bogus_key --stats
# Unknown key in [acceleration], line 11.
{ base; echo "sockhash_entries = 5"; } >"$cfg"
expect_error unknown-key-accel 11 sockhash_entries run
# Unknown table: its key (line 12) or its header (line 11) is reported.
{ base; echo "[bogus]"; echo "x = 1"; } >"$cfg"
rc=0
timeout 20 "$MESHLANED" --config "$cfg" >/dev/null 2>"$ML_WORKDIR/unknown-table.err" </dev/null || rc=$?
[[ $rc -eq 1 ]] || ml_fail "unknown-table: exit status $rc, expected 1: $(cat "$ML_WORKDIR/unknown-table.err")"
grep -qE "$cfg:(11|12):[0-9]+: [^ ]*(bogus|x)[^ ]*: " "$ML_WORKDIR/unknown-table.err" ||
  ml_fail "unknown-table: stderr does not name $cfg:11 or :12 and the table: $(cat "$ML_WORKDIR/unknown-table.err")"
ml_log "unknown-table: $(head -n1 "$ML_WORKDIR/unknown-table.err")"
nothing_pinned unknown-table
# Wrong types.
base | sed 's/^sockhash_max_entries = .*/sockhash_max_entries = "many"/' >"$cfg"
expect_error wrong-type-int 10 sockhash_max_entries run
base | sed 's/^enabled = .*/enabled = 1/' >"$cfg"
expect_error wrong-type-bool 9 enabled run
base | sed 's/^log_level = .*/log_level = 3/' >"$cfg"
expect_error wrong-type-string 4 log_level run
{ base; echo 'exclude_ports = "5201"'; } >"$cfg"
expect_error wrong-type-array 11 exclude_ports run
{ base; echo 'include_ports = ["http"]'; } >"$cfg"
expect_error wrong-type-element 11 include_ports run
# Out of range.
{ base; echo 'exclude_ports = [70000]'; } >"$cfg"
expect_error port-out-of-range 11 exclude_ports run
base | sed 's/^sockhash_max_entries = .*/sockhash_max_entries = -1/' >"$cfg"
expect_error negative-entries 10 sockhash_max_entries run
# TOML syntax error on line 9.
base | sed 's/^enabled = .*/enabled = /' >"$cfg"
expect_error syntax-error 9 - run

# Missing file.
rc=0
missing="$ML_WORKDIR/does-not-exist.toml"
timeout 20 "$MESHLANED" --config "$missing" >/dev/null 2>"$ML_WORKDIR/missing.err" </dev/null || rc=$?
[[ $rc -eq 1 ]] || ml_fail "missing config file: exit status $rc, expected 1"
grep -qF "$missing" "$ML_WORKDIR/missing.err" || ml_fail "missing config file: stderr does not name $missing: $(cat "$ML_WORKDIR/missing.err")"
nothing_pinned missing-file

# The base config itself is valid: the daemon gets ready with it.
good="$ML_WORKDIR/good.toml"
base >"$good"
ml_daemon_start_with_config "$good"
ml_daemon_stop
[[ $ML_DAEMON_RC -eq 0 ]] || ml_fail "meshlaned exited with status $ML_DAEMON_RC on SIGTERM"
ml_daemon_cleanup
ml_pass
