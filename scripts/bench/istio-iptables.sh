# shellcheck shell=bash
# The istio-init nat rules (istio-iptables.rules, next to this file) in a network namespace, and
# how often their REDIRECT rules matched. Sourced by scripts/bench/lib.sh (mode b) and by
# tests/netns/test_istio_rules_left.sh, so both use the same rules and the same count.

ISTIO_IPTABLES_RULES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/istio-iptables.rules"

# istio_iptables_install NS: loads the rules into NS's nat table; non-zero if iptables-restore
# failed.
istio_iptables_install() {
  ip netns exec "$1" iptables-restore <"$ISTIO_IPTABLES_RULES"
}

# istio_iptables_redirect_hits NS CHAIN: packets that matched CHAIN's REDIRECT rules (summed).
istio_iptables_redirect_hits() {
  ip netns exec "$1" iptables -t nat -L "$2" -v -n -x 2>/dev/null |
    awk '$3 == "REDIRECT" { s += $1 } END { print s + 0 }'
}
