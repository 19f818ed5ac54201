#!/usr/bin/env bash
# Sets up what is missing (ONNX Runtime, the Vulkan CPU driver, a one-node Slurm cluster for
# the executor's test), then runs every test of the workspace. Extra arguments go to
# `cargo test`. A cluster this script started is stopped when it ends.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
hwnas_setup_all
# The cluster the executor's end-to-end test submits to (installed where missing and
# possible; where not, that test skips, or fails under HWNAS_REQUIRE=slurm or all).
if ! bash scripts/slurm.sh status >/dev/null 2>&1; then
    # Stopped at the end whatever happens, a start that failed half-way included.
    trap 'bash scripts/slurm.sh stop >/dev/null 2>&1' EXIT
    if conf="$(bash scripts/slurm.sh start)"; then
        eval "$conf"
    fi
else
    eval "$(bash scripts/slurm.sh status | grep '^export SLURM_CONF=')"
fi
# The end-to-end tests drive the built binary.
cargo build --quiet -p hwnas
cargo test --workspace "$@"
