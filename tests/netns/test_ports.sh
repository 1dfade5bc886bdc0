#!/usr/bin/env bash
# Port filters. Server on 5201, client bound to a known port (40001, 40002, ...); for each
# configuration a fresh daemon and one verified transfer:
#   exclude_ports = [server port]  -> not spliced, sockets_skipped_by_port rises
#   exclude_ports = [client port]  -> not spliced (either end), skipped rises
#   include_ports = [6000]         -> not spliced (neither end listed), skipped rises
#   include_ports = [server port]  -> spliced, nothing skipped
#   include_ports = [client port]  -> spliced (either end)
#   include and exclude the server port -> not spliced (exclude wins)
# Traffic is `ml_xfer --nonblocking`, so that the port rules alone decide: nothing may be
# counted in sockets_skipped_blocking.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ml_setup
ml_require_meshlane
ml_make_cgroup
ml_make_netns NS
CPORT=40000

# case LABEL spliced|skipped CONFIG_LINES...  (uses the next client port; $CPORT inside
# CONFIG_LINES is replaced by it)
case_() {
  local label=$1 expect=$2
  shift 2
  CPORT=$((CPORT + 1))
  local -a lines=()
  local l
  for l in "$@"; do lines+=("${l//CPORT/$CPORT}"); done
  if [[ -n $ML_DAEMON_PID ]]; then
    ml_restart_daemon "${lines[@]}"
  else
    ml_daemon_start "${lines[@]}"
  fi
  ml_log "$label: ${lines[*]}"
  ml_snapshot before
  ml_xfer_pair "$ML_CG" "$NS" "$label" "--listen 127.0.0.1:5201" \
    "--connect 127.0.0.1:5201 --bind 127.0.0.1:$CPORT" --nonblocking --bytes 8M --timeout 60
  ml_snapshot after
  local skipped blocking
  skipped=$(ml_delta before after sockets_skipped_by_port)
  blocking=$(ml_delta before after sockets_skipped_blocking)
  [[ $blocking -eq 0 ]] || ml_fail "$label: sockets_skipped_blocking rose by $blocking for non-blocking sockets"
  if [[ $expect == spliced ]]; then
    ml_assert_spliced before after "$ML_XFER_WIRE" "$label"
    [[ $skipped -eq 0 ]] || ml_fail "$label: sockets_skipped_by_port rose by $skipped for a connection that should be spliced"
  else
    ml_assert_not_spliced before after "$label"
    [[ $skipped -gt 0 ]] || ml_fail "$label: sockets_skipped_by_port did not rise"
  fi
}

case_ exclude-server-port skipped "exclude_ports = [5201]"
case_ exclude-client-port skipped "exclude_ports = [CPORT]"
case_ include-other-port skipped "include_ports = [6000]"
case_ include-server-port spliced "include_ports = [5201]"
case_ include-client-port spliced "include_ports = [CPORT]"
case_ exclude-wins skipped "include_ports = [5201]" "exclude_ports = [5201]"
ml_pass
