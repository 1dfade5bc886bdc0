#!/usr/bin/env bash
# Builds meshlane's node image OFFLINE, from the local build and this host's shared libraries,
# with buildah (Debian 12: apt-get install buildah). No registry is contacted: the image starts
# `from scratch` and gets
#   - /usr/local/bin/{meshlaned,meshlanectl,meshlane-cni} from build/bin/,
#   - every shared library `ldd` lists for them, and the dynamic loader, copied from this host
#     (the Debian 12 packages of scripts/deps.sh: libbpf1, libelf1, zlib1g, libspdlog1.10, libfmt9,
#     libstdc++6, libgcc-s1, libc6),
#   - /etc/meshlane/meshlane.toml (config/meshlane.toml), a root-only /etc/passwd and /etc/group.
# deploy/image/Containerfile is the same image from a registry's debian:12-slim, for hosts that
# can pull.
#
# Usage: scripts/build-image.sh [--tag NAME] [--archive FILE.tar] [--bin-dir DIR] [--no-cni]
#   --tag       image name (default localhost/meshlane:<version from CMakeLists.txt>)
#   --archive   also write the image as an OCI archive (import it on a node with
#               `ctr -n k8s.io images import FILE.tar` or `podman load -i FILE.tar`)
#   --bin-dir   where the binaries are (default build/bin)
#   --no-cni    build without meshlane-cni (an image that cannot run install-cni; for tests)
# Environment: BUILDAH_ROOT=DIR keeps buildah's storage there (default: buildah's own,
# /var/lib/containers); STORAGE_DRIVER=vfs where overlay is not available (inside containers).
# Exit status: 0 built, 1 usage or a missing binary/buildah, other: buildah's.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^project(meshlane VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
tag="localhost/meshlane:${version}"
archive=""
bin_dir="build/bin"
with_cni=1
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --archive) archive="$2"; shift 2 ;;
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --no-cni) with_cni=0; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "build-image.sh: unknown option $1 (--help lists them)" >&2; exit 1 ;;
  esac
done

if ! command -v buildah >/dev/null; then
  echo "build-image.sh: buildah is not installed: apt-get install buildah" >&2
  exit 1
fi
binaries=(meshlaned meshlanectl)
[ "$with_cni" -eq 1 ] && binaries+=(meshlane-cni)
for binary in "${binaries[@]}"; do
  if [ ! -x "$bin_dir/$binary" ]; then
    echo "build-image.sh: $bin_dir/$binary is missing: build it first (scripts/build.sh)" >&2
    exit 1
  fi
done

buildah_cmd=(buildah)
if [ -n "${BUILDAH_ROOT:-}" ]; then
  buildah_cmd+=(--root "$BUILDAH_ROOT/root" --runroot "$BUILDAH_ROOT/runroot")
fi

rootfs=$(mktemp -d /tmp/meshlane-rootfs.XXXXXX)
container=""
cleanup() {
  rm -rf "$rootfs"
  if [ -n "$container" ]; then
    "${buildah_cmd[@]}" rm "$container" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

# The root filesystem, made here and copied in as one layer.
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/meshlane" "$rootfs/run/meshlane" "$rootfs/tmp" \
         "$rootfs/var/lib/meshlane" "$rootfs/var/run" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
chmod 1777 "$rootfs/tmp"
for binary in "${binaries[@]}"; do
  install -m 0755 "$bin_dir/$binary" "$rootfs/usr/local/bin/$binary"
  # RelWithDebInfo builds carry ~80 MB of DWARF; the image needs none of it.
  strip --strip-debug "$rootfs/usr/local/bin/$binary"
  # "libX.so => /path (addr)" and the loader's "/lib64/ld-linux-x86-64.so.2 (addr)": the file
  # behind each path, copied under the same path (symlinks resolved).
  ldd "$bin_dir/$binary" | awk '/=> \//{print $3} /^[ \t]*\/[^ ]+ \(/{print $1}' |
    while read -r library; do
      cp -L --parents "$library" "$rootfs/"
    done
done
install -m 0644 config/meshlane.toml "$rootfs/etc/meshlane/meshlane.toml"
echo "root:x:0:0:root:/root:/usr/sbin/nologin" > "$rootfs/etc/passwd"
echo "root:x:0:" > "$rootfs/etc/group"

container=$("${buildah_cmd[@]}" from scratch)
"${buildah_cmd[@]}" copy "$container" "$rootfs" / >/dev/null
"${buildah_cmd[@]}" config \
  --entrypoint '["/usr/local/bin/meshlaned"]' \
  --cmd '["--config", "/etc/meshlane/meshlane.toml"]' \
  --env PATH=/usr/local/bin:/usr/bin:/bin \
  --label org.opencontainers.image.title=meshlane \
  --label org.opencontainers.image.version="$version" \
  "$container"
"${buildah_cmd[@]}" commit --quiet "$container" "$tag" >/dev/null
echo "build-image.sh: built $tag ($(du -sh "$rootfs" | cut -f1) uncompressed)"
if [ -n "$archive" ]; then
  "${buildah_cmd[@]}" push --quiet "$tag" "oci-archive:$archive:$tag"
  echo "build-image.sh: wrote $archive"
fi
