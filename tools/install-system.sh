#!/usr/bin/env bash
# Debian packages the tests need: chromium (Playwright drives it), postgresql (the feedback
# store's PostgreSQL tests start a private server from its programs; tests/pg.py) and curl
# (a 413 read by curl; tests/serve/test_serve_hostile.py).
# Installs only what is missing; needs root (CI and the dev machines run as root).
set -euo pipefail
packages=(chromium postgresql curl)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "please install: ${missing[*]} (Debian: apt-get install -y ${missing[*]})" >&2
  exit 1
fi
echo "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
