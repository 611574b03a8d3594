#!/usr/bin/env bash
# Build the Containerfile with podman, run it, and ask its /readyz; print the image's size.
#
#   tools/container-check.sh            (make container-check; root on Debian: installs podman)
#
# Where no container registry can be reached, the base image is made here from Debian's
# packages (debootstrap: python3 and its venv module), and pip installs from a wheel directory
# built on this machine (the Containerfile's PIP_OPTIONS): the same Containerfile, built
# offline. Where the kernel refuses podman's defaults (no rlimits may be set, cgroups v1 and v2
# mixed), runc with cgroupfs and no default ulimits runs it (CONTAINERS_CONF below).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
TAG=localhost/digitrec:check
PORT=${PORT:-18000}
WORK=$(mktemp -d /tmp/digitrec-container.XXXXXX)
trap 'podman rm -f digitrec-check >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

need=()
for p in podman runc debootstrap; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
printf '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n' \
  >"$WORK/containers.conf"
export CONTAINERS_CONF="$WORK/containers.conf"

base=()
if ! podman pull -q docker.io/library/python:3.12-slim-bookworm >/dev/null 2>&1; then
  if ! podman image exists localhost/debian-python:bookworm; then
    echo "no registry: a base image from Debian (debootstrap)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm \
      "$WORK/rootfs" http://deb.debian.org/debian >/dev/null
    rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
    tar -C "$WORK/rootfs" -c . | podman import -q - localhost/debian-python:bookworm >/dev/null
    rm -rf "$WORK/rootfs"
  fi
  # The wheels for the base's Python (this machine's pip and its indexes).
  "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation . -w "$WORK/dist"
  wheel=$(ls "$WORK"/dist/digitrec-*.whl)
  "$PYTHON" -m pip wheel -q "digitrec[serve] @ file://$wheel" "setuptools>=77" -w "$WORK/wheelhouse"
  base=(--build-arg BASE=localhost/debian-python:bookworm
        --build-arg "PIP_OPTIONS=--no-index --find-links /wheelhouse"
        -v "$WORK/wheelhouse:/wheelhouse:ro")
fi

podman build -q --format docker --network host -t "$TAG" "${base[@]}" -f Containerfile . >/dev/null
echo "image $TAG: $(podman image inspect "$TAG" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}'),\
 user $(podman image inspect "$TAG" --format '{{.Config.User}}')"
podman run -d --name digitrec-check -p "127.0.0.1:$PORT:8000" "$TAG" --workers 1 >/dev/null
for _ in $(seq 60); do
  if ready=$(curl -sf "http://127.0.0.1:$PORT/readyz"); then
    echo "GET /readyz: $ready"
    answer=$(curl -sf -H 'content-type: image/png' --data-binary @benchmarks/canvas7.png \
      "http://127.0.0.1:$PORT/api/v1/predict")
    echo "POST /api/v1/predict (a drawn 7): digit $(echo "$answer" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["digit"])')"
    exit 0
  fi
  sleep 1
done
podman logs digitrec-check >&2
echo "the container did not answer /readyz in 60 s" >&2
exit 1
