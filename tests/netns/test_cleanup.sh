#!/usr/bin/env bash
# Lifecycle of the datapath:
#   1. the daemon starts, attaches to the test cgroup and pins under its bpffs_dir; traffic is
#      spliced;
#   2. SIGTERM: the daemon exits 0 and leaves everything pinned and attached: the same
#      programs stay attached to the cgroup, --stats still reads the pinned counters and new
#      traffic is still spliced without a daemon;
#   3. --cleanup exits 0: bpffs_dir is gone, nothing is attached to the cgroup
#      (bpftool cgroup show/tree), every program, map and link the daemon made is gone, and
#      bpftool lists nothing named ml_* (when the machine had no ml_* objects before the
#      test; otherwise only this test's objects are checked); --cleanup again exits 0;
#      --stats fails; traffic still works, unspliced.
# Traffic is `ml_xfer --nonblocking` (sockets O_NONBLOCK from their creation), which the
# datapath splices by default; blocking sockets are not spliced (see test_blocking_guard.sh).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ml_setup
ml_require_meshlane
ml_require_cmd "$BPFTOOL"
ml_make_cgroup
ml_make_netns NS

preexisting=$( { ml_bpf_named prog; ml_bpf_named map; } | wc -l)
ml_daemon_start

# --- what the daemon made
attached=$(ml_cgroup_progs "$ML_CG")
[[ -n $attached ]] || ml_fail "nothing attached to the test cgroup $ML_CG after 'meshlaned ready'"
ml_log "attached to $ML_CG:"$'\n'"$attached"
[[ -d $ML_BPFFS_DIR ]] || ml_fail "bpffs_dir $ML_BPFFS_DIR does not exist after 'meshlaned ready'"
pins=$(cd "$ML_BPFFS_DIR" && find . -mindepth 1 ! -type d | sort)
[[ -n $pins ]] || ml_fail "nothing pinned under $ML_BPFFS_DIR"
ml_log "pins under $ML_BPFFS_DIR:"$'\n'"$pins"

# IDs of this daemon's objects: programs attached to the cgroup, pinned maps/links/programs,
# the programs of the pinned links, and every ml_* program that uses one of the pinned maps
# (the sk_msg program is attached to the sockhash, not to the cgroup).
our_progs=" $(awk '{print $1}' <<<"$attached" | tr '\n' ' ')"
our_maps=" "
our_links=" "
while IFS= read -r p; do
  f="$ML_BPFFS_DIR/${p#./}"
  if l=$("$BPFTOOL" map show pinned "$f" 2>/dev/null | sed -n '1s/^\([0-9]*\):.*/\1/p') && [[ -n $l ]]; then
    our_maps+="$l "
  elif l=$("$BPFTOOL" link show pinned "$f" 2>/dev/null | sed -n 1p) && [[ -n $l ]]; then
    our_links+="${l%%:*} "
    lp=$(sed -n 's/.* prog \([0-9]\{1,\}\).*/\1/p' <<<"$l")
    [[ -n $lp && $our_progs != *" $lp "* ]] && our_progs+="$lp "
  elif l=$("$BPFTOOL" prog show pinned "$f" 2>/dev/null | sed -n '1s/^\([0-9]*\):.*/\1/p') && [[ -n $l ]]; then
    our_progs+="$l "
  fi
done <<<"$pins"
# ml_* programs whose map_ids include one of ours.
while read -r id ids; do
  for m in ${ids//,/ }; do
    if [[ $our_maps == *" $m "* && $our_progs != *" $id "* ]]; then our_progs+="$id "; fi
  done
done < <("$BPFTOOL" prog show 2>/dev/null | awk '
  /^[0-9]+: / { id = ""; if ($0 ~ / name ml_/) { id = $1; sub(":", "", id) } }
  id != "" && /map_ids/ { for (i = 1; i <= NF; i++) if ($i == "map_ids") print id, $(i + 1) }')
ml_log "this daemon's objects: progs [$our_progs] maps [$our_maps] links [$our_links]"
[[ $our_maps != " " ]] || ml_fail "no pinned map found under $ML_BPFFS_DIR"

# --- traffic with the daemon running
ml_snapshot s0
ml_xfer_pair "$ML_CG" "$NS" with-daemon "--listen 127.0.0.1:5201" "--connect 127.0.0.1:5201" \
  --nonblocking --bytes 16M --timeout 60
ml_snapshot s1
ml_assert_spliced s0 s1 "$ML_XFER_WIRE" "with the daemon running"

# --- SIGTERM leaves the datapath in place
ml_daemon_stop
[[ $ML_DAEMON_RC -eq 0 ]] || { ml_dump_daemon_log; ml_fail "meshlaned exited with status $ML_DAEMON_RC on SIGTERM, expected 0"; }
[[ -d $ML_BPFFS_DIR ]] || ml_fail "bpffs_dir $ML_BPFFS_DIR removed by SIGTERM: the datapath must stay pinned"
pins_after=$(cd "$ML_BPFFS_DIR" && find . -mindepth 1 ! -type d | sort)
[[ $pins_after == "$pins" ]] || ml_fail "pins changed on SIGTERM: before [$pins] after [$pins_after]"
attached_after=$(ml_cgroup_progs "$ML_CG")
[[ $attached_after == "$attached" ]] ||
  ml_fail "cgroup attachments changed on SIGTERM: before [$attached] after [$attached_after]"
ml_snapshot s2
ml_xfer_pair "$ML_CG" "$NS" after-sigterm "--listen 127.0.0.1:5202" "--connect 127.0.0.1:5202" \
  --nonblocking --bytes 16M --timeout 60
ml_snapshot s3
ml_assert_spliced s2 s3 "$ML_XFER_WIRE" "after the daemon exited"

# --- --cleanup removes everything
ml_daemon_cleanup
[[ ! -e $ML_BPFFS_DIR ]] || ml_fail "bpffs_dir $ML_BPFFS_DIR still exists after --cleanup: $(ls -la "$ML_BPFFS_DIR")"
left=$(ml_cgroup_progs "$ML_CG")
[[ -z $left ]] || ml_fail "programs still attached to $ML_CG after --cleanup:"$'\n'"$left"
tree=$("$BPFTOOL" cgroup tree "$ML_CG" 2>&1 | grep -E '[0-9]+ ' | grep -v '^CgroupPath' || true)
[[ -z $tree ]] || ml_fail "bpftool cgroup tree $ML_CG still lists programs after --cleanup:"$'\n'"$tree"
# Objects are freed asynchronously once the last reference goes: wait for that (ML_WAIT_S at
# most).
remaining=""
all_freed() {
  remaining=""
  for id in $our_progs; do "$BPFTOOL" prog show id "$id" >/dev/null 2>&1 && remaining+=" prog $id"; done
  for id in $our_maps; do "$BPFTOOL" map show id "$id" >/dev/null 2>&1 && remaining+=" map $id"; done
  for id in $our_links; do "$BPFTOOL" link show id "$id" >/dev/null 2>&1 && remaining+=" link $id"; done
  [[ -z $remaining ]]
}
host_wait_for "$ML_WAIT_S" all_freed || ml_fail "still loaded $ML_WAIT_S s after --cleanup:$remaining"
named=$( { ml_bpf_named prog; ml_bpf_named map; ml_bpf_ml_links; } )
if [[ $preexisting -eq 0 ]]; then
  [[ -z $named ]] || ml_fail "bpftool still lists ml_* objects after --cleanup:"$'\n'"$named"
else
  ml_log "the machine had $preexisting ml_* objects before this test (another meshlane?):" \
    "checked this daemon's objects only; now listed:"$'\n'"$named"
fi
ml_daemon_cleanup
ml_log "--cleanup run twice: ok"
rc=0
"$MESHLANED" --config "$ML_CONFIG" --stats -o json >"$ML_WORKDIR/stats-after.out" 2>&1 || rc=$?
[[ $rc -ne 0 ]] || ml_fail "--stats exited 0 with nothing pinned: $(cat "$ML_WORKDIR/stats-after.out")"

ml_xfer_pair "$ML_CG" "$NS" after-cleanup "--listen 127.0.0.1:5203" "--connect 127.0.0.1:5203" \
  --nonblocking --bytes 16M --timeout 60
ml_pass
