#!/usr/bin/env bash
# Istio-style interception by meshlane alone, with no iptables rule in any pod (istio preset:
# proxy uid/gid 1337, outbound 15001, inbound 15006, passthrough source 127.0.0.6 / ::6).
# A node netns with a bridge; pods A and B with sidecars (HAProxy for IPv4, ml_proxy for IPv6:
# HAProxy only asks SOL_IP SO_ORIGINAL_DST), sidecarless pods C4/C6 using a node-level proxy,
# and non-workload hosts on the bridge. In each address family:
#   - A's app -> A's sidecar (outbound) -> B's sidecar (inbound) -> B's app: bytes verified,
#     both proxy logs show the original destination B:8080, the app sees the passthrough
#     source; intercepted_outbound, intercepted_inbound_local, orig_dst_answered rise and the
#     three local hops are spliced (spliced_app_to_proxy/proxy_to_proxy/proxy_to_app);
#   - an excluded port and an excluded CIDR go direct (no proxy log line, bypassed_excluded);
#     a non-excluded off-node destination goes through A's sidecar;
#   - a host off the node (not a workload) -> B:8080 is steered by tc to B's inbound proxy;
#   - sidecarless C -> B through the node proxy (intercepted_to_node_proxy), C's hop to the
#     node proxy spliced (spliced_app_to_proxy);
# then SIGTERM + meshlaned --cleanup: no tc filter, no pin, pods talk directly again.
# See mesh_lib.sh for the topology and the scenarios.
source "$(dirname "${BASH_SOURCE[0]}")/mesh_lib.sh"

MESH_KIND=istio
MESH_UID=1337
MESH_OUT=15001
MESH_IN=15006
MESH_EXCL_IN="15008, 15020, 15021, 15090"
MESH_SRC4=127.0.0.6
MESH_SRC6=::6
mesh_run_suite
