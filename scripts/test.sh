#!/usr/bin/env bash
# Sets up what is missing (ONNX Runtime, the Vulkan CPU driver), then runs every test of
# the workspace. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
hwnas_setup_all
# The end-to-end tests drive the built binary.
cargo build --quiet -p hwnas
cargo test --workspace "$@"
