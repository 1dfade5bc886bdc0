#!/usr/bin/env bash
# `meshlaned install-cni` / `uninstall-cni` end to end on temporary CNI dirs (never the host's):
# exit statuses, -o json, the golden conflists, --watch putting the entry back and stopping on
# SIGTERM, and the daemon's own command line unchanged.
# Usage: test_cni_commands.sh MESHLANED GOLDEN_DIR
set -euo pipefail
meshlaned=$1
golden=$2
scratch=$(mktemp -d /tmp/meshlane-cni-commands.XXXXXX)
watcher=""
cleanup() {
  if [ -n "$watcher" ]; then kill "$watcher" 2>/dev/null || true; fi
  rm -rf "$scratch"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

bin="$scratch/opt/cni/bin"
conf="$scratch/etc/cni/net.d"
plugin="$scratch/meshlane-cni"
mkdir -p "$bin" "$conf"
printf '#!/bin/sh\nexit 0\n' > "$plugin"
dirs=(--cni-bin-dir "$bin" --cni-conf-dir "$conf")

# The daemon's command line is as before, with the two subcommands added.
"$meshlaned" --help | grep -q -- "--cleanup" || fail "meshlaned --help lost --cleanup"
"$meshlaned" --help | grep -q "install-cni" || fail "meshlaned --help does not list install-cni"
"$meshlaned" install-cni --help | grep -q -- "--failure-policy" || fail "install-cni --help"
"$meshlaned" uninstall-cni --help | grep -q -- "--cni-conf-dir" || fail "uninstall-cni --help"

# No primary config: exit 3 and nothing written.
status=0; "$meshlaned" install-cni "${dirs[@]}" --plugin "$plugin" 2>"$scratch/err" || status=$?
[ "$status" -eq 3 ] || fail "empty conf dir: exit $status, expected 3"
grep -q "no primary CNI config yet" "$scratch/err" || fail "empty conf dir: $(cat "$scratch/err")"
[ ! -e "$bin/meshlane-cni" ] || fail "empty conf dir: the binary was written"

# Bad values: exit 1.
status=0; "$meshlaned" install-cni "${dirs[@]}" --plugin "$scratch/none" 2>/dev/null || status=$?
[ "$status" -eq 1 ] || fail "missing plugin: exit $status, expected 1"
status=0; "$meshlaned" install-cni "${dirs[@]}" --plugin "$plugin" --control-socket rel.sock \
  2>/dev/null || status=$?
[ "$status" -eq 1 ] || fail "relative socket: exit $status, expected 1"

# Install: the golden result, twice equals once.
cp "$golden/10-calico.conflist" "$conf/"
out=$("$meshlaned" install-cni "${dirs[@]}" --plugin "$plugin" -o json)
echo "$out" | grep -q '"action":"inserted"' || fail "first install: $out"
cmp "$conf/10-calico.conflist" "$golden/10-calico.conflist.expected" || fail "install != golden"
[ "$(stat -c %a "$bin/meshlane-cni")" = 755 ] || fail "binary mode"
out=$("$meshlaned" install-cni "${dirs[@]}" --plugin "$plugin" -o json)
echo "$out" | grep -q '"changed":false' || fail "second install changed something: $out"

# --config after the subcommand sets the socket (as the DaemonSet writes it).
printf '[daemon]\nsocket = "/run/other/x.sock"\n' > "$scratch/meshlane.toml"
"$meshlaned" install-cni --config "$scratch/meshlane.toml" "${dirs[@]}" --plugin "$plugin" >/dev/null
grep -q '"/run/other/x.sock"' "$conf/10-calico.conflist" || fail "--config's daemon.socket not used"
"$meshlaned" --config "$scratch/meshlane.toml" install-cni "${dirs[@]}" --plugin "$plugin" -o json |
  grep -q '"changed":false' || fail "--config before the subcommand differs"
"$meshlaned" install-cni "${dirs[@]}" --plugin "$plugin" >/dev/null

# --watch: the primary rewrites its file, the entry comes back; SIGTERM stops with exit 0.
"$meshlaned" install-cni --watch "${dirs[@]}" --plugin "$plugin" -o json >"$scratch/watch.out" &
watcher=$!
# Not a readiness wait: the watcher sets its inotify watch before its first pass, so a rewrite
# before or after it starts is put right either way (by that pass, or by the event); the pause
# only makes the event the likely path.
sleep 0.5
cp "$golden/30-calico-rewritten.conflist" "$conf/.tmp-write"
mv "$conf/.tmp-write" "$conf/10-calico.conflist"
for _ in $(seq 600); do  # up to a minute, for a slow machine
  cmp -s "$conf/10-calico.conflist" "$golden/30-calico-rewritten.conflist.expected" && break
  sleep 0.1
done
cmp "$conf/10-calico.conflist" "$golden/30-calico-rewritten.conflist.expected" ||
  fail "--watch did not put the entry back"
kill -TERM "$watcher"
status=0; wait "$watcher" || status=$?
watcher=""
[ "$status" -eq 0 ] || fail "--watch exit $status after SIGTERM, expected 0"
[ "$(grep -c '"action":"inserted"' "$scratch/watch.out")" -eq 1 ] ||
  fail "--watch output: $(cat "$scratch/watch.out")"

# Uninstall: the rewritten primary's bytes back, the binary gone; again: nothing to do.
out=$("$meshlaned" uninstall-cni "${dirs[@]}" -o json)
echo "$out" | grep -q '"removed":true' || fail "uninstall: $out"
cmp "$conf/10-calico.conflist" "$golden/30-calico-rewritten.conflist" || fail "uninstall bytes"
[ ! -e "$bin/meshlane-cni" ] || fail "uninstall left the binary"
"$meshlaned" uninstall-cni "${dirs[@]}" -o json | grep -q '"changed":false' ||
  fail "second uninstall changed something"

# A .conf: converted, and back under its own name.
rm -f "$conf"/*
cp "$golden/10-bridge.conf" "$conf/"
"$meshlaned" install-cni "${dirs[@]}" --plugin "$plugin" -o json | grep -q '"action":"converted"' ||
  fail ".conf not converted"
[ ! -e "$conf/10-bridge.conf" ] || fail ".conf still there"
"$meshlaned" uninstall-cni "${dirs[@]}" >/dev/null
cmp "$conf/10-bridge.conf" "$golden/10-bridge.conf" || fail ".conf not restored"
[ "$(ls -A "$conf")" = "10-bridge.conf" ] || fail "leftovers: $(ls -A "$conf")"
echo "test_cni_commands: ok"
