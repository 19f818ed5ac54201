#!/usr/bin/env bash
# The supernet training step on a GPU through wgpu's Vulkan backend, beside PyTorch eager
# CUDA on the same GPU (docs/BENCHMARKS.md, issue: engine). Two halves, because a GPU
# machine lent for a few minutes has no Rust toolchain and reaches no network:
#
#   bash scripts/gpu-bench.sh prepare   # here: builds the step example (release, stripped),
#                                       # fetches the Vulkan loader packages, copies the
#                                       # PyTorch reference script; all into .gpu/ (ignored)
#   bash scripts/gpu-bench.sh run       # there (carry .gpu): both sides, a table of ratios,
#                                       # and the raw JSON in $OUT (or .gpu/out) when set
#
# On a machine with its own Vulkan loader and Rust, `run` alone works after `prepare`.
# A step is forward, backward and SGD, batch 64, 28x28x1; the wgpu side's byte and submit
# counts come with its times. PyTorch must be importable with CUDA on the GPU machine
# (TORCH_PYTHON, default python3); without it the wgpu side runs alone. HWNAS_GPU_CASES and
# HWNAS_GPU_REPEATS narrow a trial run (lavapipe takes seconds per step).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir=.gpu
mode="${1:-}"

prepare() {
    mkdir -p "$dir/gl"
    cargo build --release --quiet -p hwnas-core --example supernet_step_time
    strip -o "$dir/supernet_step_time" target/release/examples/supernet_step_time
    cp ../shared/bench/torch_nb201_step.py "$dir/"
    # The Vulkan loader (and GL/EGL dispatch) for a machine that has a driver but no loader.
    local lists=/tmp/hwnas-gpu-apt
    mkdir -p "$lists/partial"
    local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
    apt-get "${o[@]}" update -qq
    (cd "$dir/gl" && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 >/dev/null)
    du -sh "$dir"
    echo "prepared $dir: on the GPU machine run 'bash scripts/gpu-bench.sh run' carrying $dir"
}

run() {
    [ -x "$dir/supernet_step_time" ] || { echo "no $dir/supernet_step_time: run 'bash scripts/gpu-bench.sh prepare' first" >&2; exit 1; }
    if ! ldconfig -p | grep -q libvulkan; then
        for f in "$dir"/gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; fi
    export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
    chmod 700 "$XDG_RUNTIME_DIR"
    local out="${OUT:-$dir/out}"
    mkdir -p "$out"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
    "$dir/supernet_step_time" --json --backends wgpu \
        --cases "${HWNAS_GPU_CASES:-nb201-reduced,nb201-full,darts,ofa}" \
        --repeats "${HWNAS_GPU_REPEATS:-20}" > "$out/hwnas-wgpu.json"
    local python="${TORCH_PYTHON:-python3}"
    if "$python" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
        "$python" "$dir/torch_nb201_step.py" 8 1 64 28 --device cuda --repeats 50 --json > "$out/torch-reduced.json"
        "$python" "$dir/torch_nb201_step.py" 16 5 64 28 --device cuda --repeats 20 --json > "$out/torch-full.json"
    else
        echo "no PyTorch with CUDA at $python: the wgpu side only" >&2
        echo "[]" > "$out/torch-reduced.json"
        echo "[]" > "$out/torch-full.json"
    fi
    python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
hw = json.load(open(f"{out}/hwnas-wgpu.json"))
torch = {("reduced", r["route"]): r["seconds_per_step"] for r in json.load(open(f"{out}/torch-reduced.json"))}
torch.update({("full", r["route"]): r["seconds_per_step"] for r in json.load(open(f"{out}/torch-full.json"))})
print("| supernet step | adapter | hwnas wgpu s | up / back B, submits | PyTorch CUDA s | hwnas / PyTorch |")
print("|---|---|---|---|---|---|")
for r in hw:
    t = torch.get((r["size"], r["route"])) if r["supernet"] == "nb201" else None
    ratio = f"{r['seconds_per_step'] / t:.2f}" if t else "-"
    ts = f"{t:.5f}" if t else "-"
    print(f"| {r['supernet']} {r['size']} {r['route']} | {r['adapter']} | {r['seconds_per_step']:.5f} | "
          f"{r['uploaded_bytes_per_step']} / {r['read_back_bytes_per_step']}, {r['submits_per_step']} | {ts} | {ratio} |")
PY
}

case "$mode" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: bash scripts/gpu-bench.sh prepare|run" >&2; exit 2 ;;
esac
