#!/usr/bin/env bash
# Linkerd-style interception by meshlane alone, with no iptables rule in any pod (linkerd
# preset: proxy uid/gid 2102, outbound 4140, inbound 4143, inbound 4190/4191 not intercepted,
# no passthrough source: the inbound proxy's connect to its own pod passes as is).
# Same topology and scenarios as test_mesh_istio.sh (see mesh_lib.sh): mesh path A -> B
# through both sidecars (HAProxy for IPv4, ml_proxy for IPv6) with splicing, excluded port and
# CIDR, tc steering from off the node, a sidecarless pod through a node proxy, and cleanup.
source "$(dirname "${BASH_SOURCE[0]}")/mesh_lib.sh"

MESH_KIND=linkerd
MESH_UID=2102
MESH_OUT=4140
MESH_IN=4143
MESH_EXCL_IN="4190, 4191"
MESH_SRC4=""
MESH_SRC6=""
mesh_run_suite
