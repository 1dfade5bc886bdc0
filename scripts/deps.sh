#!/usr/bin/env bash
# Installs what meshlane needs to build, test, demo and benchmark on Debian 12, with apt-get.
# Only installs missing packages, so a second run is quick.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev
  libboost-dev libtomlplusplus-dev libnl-3-dev libnl-route-3-dev nlohmann-json3-dev
  libcli11-dev libspdlog-dev libfmt-dev libgtest-dev clang-format clang-tidy
  # fuzzing (scripts/fuzz.sh): libFuzzer and the sanitizer runtimes of clang 14
  libclang-rt-14-dev
  # tests, demo and benchmarks
  iproute2 iperf3 sockperf haproxy iptables python3 procps gnuplot-nox curl
  # deployment checks (tests/deploy/check_manifests.py)
  python3-yaml python3-kubernetes
  # DNS capture (tests/netns/test_dns_capture.sh): dnsmasq as DNS server and proxy, dig
  dnsmasq-base bind9-dnsutils
  # the CNI reference plugins (bridge, host-local, loopback) of tests/netns/test_cni_chain.sh
  containernetworking-plugins
)

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: run as root (sudo): it installs packages with apt-get" >&2
  exit 1
fi

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "deps.sh: all ${#packages[@]} packages present"
  exit 0
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
