#!/usr/bin/env bash
# Sets up what is missing (ONNX Runtime, the Vulkan CPU driver), builds hwnas in release
# mode and runs the main job. Extra arguments go to the `hwnas` command line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
hwnas_setup_all
cargo build --quiet --release -p hwnas
if [ "$#" -eq 0 ]; then
    # A new run directory each time, so the command can be run again.
    set -- search --out "hwnas-runs/$(date +%Y%m%d-%H%M%S)"
fi
exec target/release/hwnas "$@"
