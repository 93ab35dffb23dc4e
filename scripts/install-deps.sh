#!/usr/bin/env bash
# Installs everything gpusynth's tests and benchmarks need on a fresh Debian machine
# (idempotent: quick when everything is already there).
set -euo pipefail
APT_PKGS="fluidsynth timgm6mb-soundfont csound-soundfont libportaudio2 jackd2 libsndfile1"
missing=""
for p in $APT_PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
python3 -m pip install -q -e ".[test]"
