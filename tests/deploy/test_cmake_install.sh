#!/usr/bin/env bash
# `cmake --install` into a DESTDIR: the three binaries, the config at MESHLANE_CONFIG_DIR, the
# docs and the systemd unit, each where docs/kubernetes.md ("Without Kubernetes") says; the
# installed meshlaned accepts the installed config (--check-config, which touches no datapath);
# a second install keeps a config the operator edited; --check-config reports a broken one
# (exit 1, JSON "ok": false naming the key) and the default path when no --config is given.
# Usage: test_cmake_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
dest=$(mktemp -d /tmp/meshlane-install.XXXXXX)
trap 'rm -rf -- "$dest"' EXIT
fail() {
  echo "FAIL: cmake_install: $*" >&2
  exit 1
}

prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
config_dir=$(sed -n 's/^MESHLANE_CONFIG_DIR:PATH=//p' "$build/CMakeCache.txt")
[[ -n $prefix && -n $config_dir ]] || fail "no CMAKE_INSTALL_PREFIX or MESHLANE_CONFIG_DIR in $build/CMakeCache.txt"

DESTDIR=$dest cmake --install "$build" >"$dest.log" 2>&1 || { cat "$dest.log" >&2; fail "cmake --install failed"; }
rm -f "$dest.log"
for binary in meshlaned meshlanectl meshlane-cni; do
  [[ -x $dest$prefix/bin/$binary ]] || fail "$prefix/bin/$binary was not installed"
done
config=$dest$config_dir/meshlane.toml
cmp "$config" "$src/config/meshlane.toml" || fail "$config_dir/meshlane.toml is not config/meshlane.toml"
[[ $(stat -c %a "$config") == 644 ]] || fail "$config_dir/meshlane.toml has mode $(stat -c %a "$config"), expected 644"
unit=$dest$prefix/lib/systemd/system/meshlaned.service
[[ -f $unit ]] || fail "the systemd unit was not installed"
grep -q "^ExecStart=$prefix/bin/meshlaned --config $config_dir/meshlane.toml\$" "$unit" ||
  fail "the unit's ExecStart does not run the installed meshlaned with the installed config: $(grep ExecStart "$unit")"
for doc in README.md meshlane.toml docs/kubernetes.md docs/reliability.md; do
  [[ -f $dest$prefix/share/doc/meshlane/$doc ]] || fail "doc $doc was not installed"
done

# The installed daemon accepts the installed config.
out=$("$dest$prefix/bin/meshlaned" --check-config --config "$config" -o json) ||
  fail "meshlaned --check-config refused the installed config: $out"
python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(not (r["ok"] and r["problems"] == []))' "$out" ||
  fail "--check-config: $out"

# An edited config survives a re-install.
echo "# edited by the operator" >>"$config"
DESTDIR=$dest cmake --install "$build" >/dev/null
grep -q "edited by the operator" "$config" || fail "a re-install replaced the operator's config"

# A broken config: exit 1, the key named, in JSON.
printf '[daemon]\nlog_level = "loud"\n' >"$dest/bad.toml"
rc=0
out=$("$dest$prefix/bin/meshlaned" --check-config --config "$dest/bad.toml" -o json) || rc=$?
[[ $rc -eq 1 ]] || fail "--check-config of a bad config exited $rc, expected 1"
python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(not (r["ok"] is False and "daemon.log_level" in r["problems"][0]))' "$out" ||
  fail "--check-config of a bad config: $out"

# Without --config: the default path, named in the error when it is missing.
if [[ ! -e $config_dir/meshlane.toml ]]; then
  rc=0
  err=$("$dest$prefix/bin/meshlaned" --check-config 2>&1 >/dev/null) || rc=$?
  [[ $rc -eq 1 && $err == *"$config_dir/meshlane.toml"* ]] ||
    fail "without --config, meshlaned should name $config_dir/meshlane.toml (exit 1); got $rc: $err"
fi
echo "PASS: cmake_install"
