#!/usr/bin/env bash
# Installs what is missing (Debian 12), configures and builds brine.
# usage: scripts/build.sh [BUILD_DIR] [extra cmake arguments...]     (default BUILD_DIR: build)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-"$root/build"}
shift || true

bash "$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"
