#!/usr/bin/env bash
# Runs the whole test suite (installs what it needs first), spread over the CPU cores with
# pytest-xdist. Arguments go to pytest: `bash scripts/test.sh -m "not slow"` is the quick lane.
# --dist loadgroup keeps the tests of one xdist_group (servers, memory or wall-time figures)
# on one worker. A caller's own -n N wins (it comes later); -n 0, -p no:xdist, --pdb or --trace
# run in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
xdist=(-n auto --dist loadgroup)
prev=""
for a in "$@"; do
  case "$prev $a" in
    "-p no:xdist" | *" -pno:xdist" | *" --pdb" | *" --trace") xdist=() ;;
  esac
  prev="$a"
done
exec python3 -m pytest -q "${xdist[@]}" "$@"
