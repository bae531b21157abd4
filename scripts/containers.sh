#!/usr/bin/env bash
# Make podman run containers on this machine, for `train.backend: container`,
# `deploy.backend: container` and their tests. Idempotent: run it as often as you like
# (`make test` and .ci/run do).
#
# 1. Install podman, buildah, debootstrap (and runc) with apt when podman is missing.
# 2. Probe: run a tiny container (an image of /usr/bin/true and its libraries, made from
#    this machine's own files: no registry needed). If that fails, write the settings that
#    make it work to /etc/containers/containers.conf.d/50-mlcicd.conf and probe again:
#      - runtime "runc": crun refuses cgroup v1/hybrid hosts ("cgroups in hybrid mode not
#        supported"), as in some VMs and sandboxes;
#      - default_ulimits no higher than this shell's hard limits (and nproc <= 32768):
#        podman's defaults (nofile 1048576) cannot be set in a process whose hard limit is
#        lower ("setrlimit RLIMIT_NOFILE: Operation not permitted").
# 3. Print what works, or fail with podman's own error.
#
# MLCICD_SKIP_CONTAINERS=1 skips all of it (and the container tests skip, on purpose).
set -euo pipefail

if [ "${MLCICD_SKIP_CONTAINERS:-}" = "1" ]; then
  echo "containers: skipped (MLCICD_SKIP_CONTAINERS=1)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then
  SUDO="sudo"
fi

if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null; then
  echo "containers: installing podman, buildah, debootstrap with apt"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    podman buildah debootstrap runc crun uidmap slirp4netns fuse-overlayfs ca-certificates
fi

PROBE=localhost/mlcicd/probe:latest
probe_image() {
  # /usr/bin/true with the libraries it links, as an image: a few hundred kB.
  local root
  root=$(mktemp -d)
  mkdir -p "$root/usr/bin"
  cp /usr/bin/true "$root/usr/bin/true"
  for lib in $(ldd /usr/bin/true | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  tar -C "$root" -c . | podman import --quiet - "$PROBE" >/dev/null
  rm -rf "$root"
}

probe() {
  podman run --rm --network none "$PROBE" /usr/bin/true 2>&1
}

podman image exists "$PROBE" || probe_image
if out=$(probe); then
  echo "containers: podman $(podman --version | awk '{print $3}') runs containers here as it is"
  exit 0
fi
echo "containers: a container does not start with podman's defaults:"
echo "  $out"

CONF=/etc/containers/containers.conf.d/50-mlcicd.conf
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
[ "$nofile" = "unlimited" ] || [ "$nofile" -gt 1048576 ] && nofile=1048576
[ "$nproc" = "unlimited" ] || [ "$nproc" -gt 32768 ] && nproc=32768
runtime=$(command -v runc >/dev/null && echo runc || echo crun)
$SUDO mkdir -p "$(dirname "$CONF")"
$SUDO tee "$CONF" >/dev/null <<EOF
# Written by mlcicd's scripts/containers.sh: podman's defaults do not start a container here.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "$runtime"
EOF
echo "containers: wrote $CONF (runtime $runtime, nofile $nofile, nproc $nproc)"
if out=$(probe); then
  echo "containers: podman runs containers here now"
  exit 0
fi
echo "containers: a container still does not start: $out" >&2
echo "containers: see docs/containers.md, or set MLCICD_SKIP_CONTAINERS=1 to run without them" >&2
exit 1
