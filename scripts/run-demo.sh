#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the heat2d demo end
# to end (a run killed with SIGKILL resumes and ends bit-identical to an
# uninterrupted one; then Python draws the field).
# usage: scripts/run-demo.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-"$root/build"}

bash "$root/scripts/build.sh" "$build"
bash "$root/scripts/demo.sh" "$build"
