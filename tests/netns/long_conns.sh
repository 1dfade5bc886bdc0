# shellcheck shell=bash
# Long-lived connections for the tests that keep them open across changes (test_fast_path.sh,
# test_mesh_reload.sh, test_upgrade.sh): paced, verified TCP streams (long_stream.py; ll_start,
# ll_checkpoint, ll_finish) and ml_connrate load that runs until the test stops it
# (ll_connrate_*; persistent connections and connect loops). Source it after mesh_lib.sh (or
# rel_lib.sh, which sources that):
#
#   source "$(dirname "${BASH_SOURCE[0]}")/long_conns.sh"
#
# A stream LABEL keeps its files in $ML_WORKDIR/LABEL.{server,client}.{out,err,progress} and
# $ML_WORKDIR/LABEL.{ready,finish}. Everything runs in the test cgroup. Nothing waits a fixed
# time: every wait polls, ML_WAIT_S only guards against a hang.
#
# Environment: PYTHON (default python3).

LL_STREAM="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/long_stream.py"
declare -A LL_SPID LL_CPID LL_LAST_S LL_LAST_C

# ll_start LABEL MODE(nb|blk) SERVER_NS LISTEN CLIENT_NS CONNECT: both ends of a paced stream
# (nb: non-blocking sockets, as a mesh app; blk: blocking, which meshlane never splices);
# returns once both ends have written progress.
ll_start() {
  local label=$1 mode=$2 sns=$3 listen=$4 cns=$5 connect=$6 base="$ML_WORKDIR/$1" blk=()
  local server_pid client_pid seed=$((RANDOM + 1))
  [[ $mode == blk ]] && blk=(--blocking)
  rm -f "$base.finish" "$base.ready"
  ml_bg server_pid "$base.server.out" "$base.server.err" "$ML_CG" "$sns" "${PYTHON:-python3}" \
    "$LL_STREAM" server --listen "$listen" --seed "$seed" --finish-file "$base.finish" \
    --progress-file "$base.server.progress" --ready-file "$base.ready" "${blk[@]}"
  ml_wait_file "$base.ready" "$server_pid" || {
    cat "$base.server.err" "$base.server.out" >&2
    ml_fail "$label: the long-lived server did not start listening on $listen"
  }
  ml_bg client_pid "$base.client.out" "$base.client.err" "$ML_CG" "$cns" "${PYTHON:-python3}" \
    "$LL_STREAM" client --connect "$connect" --seed "$seed" --finish-file "$base.finish" \
    --progress-file "$base.client.progress" "${blk[@]}"
  LL_SPID[$label]=$server_pid
  LL_CPID[$label]=$client_pid
  host_wait_for "$ML_WAIT_S" ll__started "$base" "$client_pid" "$server_pid" || true
  [[ -s $base.client.progress && -s $base.server.progress ]] || {
    cat "$base.client.err" "$base.client.out" "$base.server.err" "$base.server.out" >&2
    ml_fail "$label: the long-lived connection $connect from $cns did not start"
  }
  LL_LAST_S[$label]=0
  LL_LAST_C[$label]=0
  ml_log "$label: long-lived connection $connect from $cns open ($mode): $(sed -n 1p "$base.client.err")"
}
ll__started() { # BASE CLIENT_PID SERVER_PID: both wrote progress, or one is gone
  [[ -s $1.client.progress && -s $1.server.progress ]] || ! kill -0 "$2" 2>/dev/null ||
    ! kill -0 "$3" 2>/dev/null
}

# ll_checkpoint LABEL WHAT: both ends still run and each received more bytes since the last
# checkpoint (the connection kept moving data in both directions through WHAT). Waits for the
# progress files (rewritten every 100 ms) to show that, ML_WAIT_S at most.
ll_checkpoint() {
  local label=$1 what=$2
  LL_S=0 LL_C=0
  host_wait_for "$ML_WAIT_S" ll__moved "$label" "$what" ||
    ml_fail "$label: the long-lived connection stopped moving data during $what (server received $LL_S, was ${LL_LAST_S[$label]}; client received $LL_C, was ${LL_LAST_C[$label]})"
  ml_log "$label: still moving data both ways after $what (received: server $LL_S, client $LL_C)"
  LL_LAST_S[$label]=$LL_S
  LL_LAST_C[$label]=$LL_C
}
ll__moved() { # LABEL WHAT: sets LL_S, LL_C (what each end has received)
  local label=$1 base="$ML_WORKDIR/$1" role
  for role in server client; do
    kill -0 "$(ll__pid "$label" "$role")" 2>/dev/null || {
      cat "$base.$role.err" "$base.$role.out" >&2
      ml_fail "$label: the long-lived $role exited during $2"
    }
  done
  read -r _ LL_S <"$base.server.progress"
  read -r _ LL_C <"$base.client.progress"
  [[ $LL_S -gt ${LL_LAST_S[$label]} && $LL_C -gt ${LL_LAST_C[$label]} ]]
}
ll__pid() { # LABEL ROLE
  if [[ $2 == server ]]; then echo "${LL_SPID[$1]}"; else echo "${LL_CPID[$1]}"; fi
}

# ll_server_peer LABEL: the client address (without port) the long-lived server's app saw.
ll_server_peer() {
  local peer
  peer=$(sed -n 's/^server: connected local=[^ ]* peer=\([^ ]*\)$/\1/p' "$ML_WORKDIR/$1.server.err" | sed -n 1p)
  [[ -n $peer ]] || ml_fail "$1: the long-lived server logged no 'server: connected ... peer=...' line"
  mesh_peer_host "$peer"
}

# ll_finish LABEL EXPECT_PEER: lets both ends send their last 1 MiB and end, waits for them
# (ML_WAIT_S at most) and checks: exit 0, ok, each end received exactly what the other sent
# (every byte verified by long_stream.py, at least the last 1 MiB), and the server's app saw the
# client EXPECT_PEER (an address without port).
ll_finish() {
  local label=$1 expect=$2 base="$ML_WORKDIR/$1" role pid rc last errs="" s c peer
  touch "$base.finish"
  for role in server client; do
    pid=$(ll__pid "$label" "$role")
    host_wait_exit "$pid" || ml_fail "$label: the long-lived $role did not finish within $ML_WAIT_S s"
    rc=0
    wait "$pid" || rc=$?
    last=$(tail -n 1 "$base.$role.out" 2>/dev/null || true)
    echo "    $label $role (exit $rc): $last" >&2
    if [[ $rc -ne 0 || $(ml_json_field "$last" ok) != true ]]; then
      tail -n 20 "$base.$role.err" >&2
      errs+=" [$role] exit $rc: $(ml_json_field "$last" error)"
    fi
  done
  [[ -z $errs ]] || ml_fail "$label: the long-lived connection failed:$errs"
  s=$(tail -n 1 "$base.server.out")
  c=$(tail -n 1 "$base.client.out")
  [[ $(ml_json_int "$s" bytes_received) -eq $(ml_json_int "$c" bytes_sent) &&
    $(ml_json_int "$c" bytes_received) -eq $(ml_json_int "$s" bytes_sent) ]] ||
    ml_fail "$label: what one side received is not what the other sent: server $s, client $c"
  (($(ml_json_int "$s" bytes_received) > 1 << 20 && $(ml_json_int "$c" bytes_received) > 1 << 20)) ||
    ml_fail "$label: less than the last 1 MiB arrived: server $s, client $c"
  peer=$(ml_json_field "$s" peer)
  [[ $(mesh_peer_host "$peer") == "$expect" ]] ||
    ml_fail "$label: the server's app saw client $peer, expected $expect"
  ml_log "$label: finished, $(ml_json_int "$c" bytes_sent) bytes client -> server and $(ml_json_int "$s" bytes_sent) back, all verified; the server's app saw $peer"
}

# ---------------------------------------------------------------------------------------------
# ml_connrate load that runs until the test stops it (ml_connrate_stop): persistent
# request/response connections (--requests-per-conn 0) and connect loops (1: a new connection
# per request). A client NAME keeps its files in $ML_WORKDIR/NAME.{out,err,progress}.

# ll_connrate_server NS PORT CLOSE_AFTER [REQUEST_SIZE REPLY_SIZE]: an ml_connrate server on
# 0.0.0.0:PORT in NS and the test cgroup, replying REPLY_SIZE bytes (default 1000) to each
# REQUEST_SIZE-byte request (default 100), closing a connection after CLOSE_AFTER replies (0:
# never); returns once it listens.
ll_connrate_server() {
  local ns=$1 port=$2 pid
  ml_bg pid "$ML_WORKDIR/srv$port.out" "$ML_WORKDIR/srv$port.err" "$ML_CG" "$ns" \
    "$ML_CONNRATE" server --listen "0.0.0.0:$port" --request-size "${4:-100}" \
    --reply-size "${5:-1000}" --close-after "$3" --ready-file "$ML_WORKDIR/srv$port.ready"
  ml_wait_file "$ML_WORKDIR/srv$port.ready" "$pid" || ml_fail "ml_connrate server on $port did not start"
}

# ll_connrate_client VAR NAME NS CONNECT CONCURRENCY REQUESTS_PER_CONN [REQUEST_SIZE
# REPLY_SIZE]: an ml_connrate client NS -> CONNECT (in the test cgroup) until stopped, sizes as
# its server's (default 100 and 1000); its PID goes to VAR.
ll_connrate_client() {
  ml_bg "$1" "$ML_WORKDIR/$2.out" "$ML_WORKDIR/$2.err" "$ML_CG" "$3" \
    "$ML_CONNRATE" client --connect "$4" --concurrency "$5" --duration 0 \
    --request-size "${7:-100}" --reply-size "${8:-1000}" --requests-per-conn "$6" --timeout 30 \
    --progress-file "$ML_WORKDIR/$2.progress"
}

# ll_connrate_progress NAME PID [LABEL]: ML_CR_REQUESTS/ERRORS/CONNECTIONS of client NAME (fails
# the test, naming LABEL (default NAME), if it has exited or seen an error).
ll_connrate_progress() {
  ml_connrate_progress "$2" "$ML_WORKDIR/$1.out" "$ML_WORKDIR/$1.progress" "${3:-$1}"
}

# ll_connrate_checkpoint NAME PID WHAT [LABEL]: client NAME still runs, has seen no error and
# answered requests since its last checkpoint (waits for that, ML_WAIT_S at most).
declare -A LL_CR_LAST
ll_connrate_checkpoint() {
  host_wait_for "$ML_WAIT_S" ll__connrate_moved "$1" "$2" "${4:-$1}" ||
    ml_fail "${4:-$1}: the persistent connections answered no request during $3 (progress: $(cat "$ML_WORKDIR/$1.progress" 2>/dev/null))"
  ml_log "${4:-$1}: persistent connections still answering after $3 (${LL_CR_LAST[$1]} requests)"
}
ll__connrate_moved() { # NAME PID LABEL
  ll_connrate_progress "$1" "$2" "$3" && ((ML_CR_REQUESTS > ${LL_CR_LAST[$1]:-0})) || return 1
  LL_CR_LAST[$1]=$ML_CR_REQUESTS
}
