#!/usr/bin/env bash
# The mesh, fast-path, policy and CNI tests again, with inbound steering by tc filters
# (daemon.inbound_steering = "tc") instead of the default socket lookup: every scenario of
# test_mesh_istio.sh, test_mesh_linkerd.sh, test_fast_path.sh, test_policy.sh and
# test_cni_chain.sh (workloads named "namespace.pod") must hold the same way (the policy's
# denials of connections from off the pods are dropped there, where the socket lookup refuses
# them). Each test sets up and cleans up after itself; this runs them one after the other and
# fails with the first that fails.
set -uo pipefail
dir=$(dirname "${BASH_SOURCE[0]}")
export ML_INBOUND_STEERING=tc
for test in test_mesh_istio test_mesh_linkerd test_fast_path test_policy test_cni_chain; do
  echo "=== $test with ML_INBOUND_STEERING=tc"
  if ! bash "$dir/$test.sh"; then
    echo "FAIL: tc_suites: $test failed with tc steering (above)"
    exit 1
  fi
done
echo "PASS: tc_suites"
