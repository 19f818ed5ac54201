#!/usr/bin/env bash
# The CPU backend's supernet training step beside PyTorch eager on the same cores, in one
# run (docs/BENCHMARKS.md, issue: engine): NAS-Bench-201 reduced (8 channels, 1 cell per
# stage) and full (16 channels, 5 cells), dense and one sampled path, batch 64, 28x28x1,
# forward + backward + SGD, 2 threads each; rounds alternate the two so that the machine's
# drift falls on both alike, and the table shows each side's best round and the ratio.
# PyTorch is a yardstick outside the project: TORCH_PYTHON (default
# ~/.venvs/torch-ref/bin/python) must import torch.
# usage: bash scripts/bench_cpu_step.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds="${1:-3}"
python="${TORCH_PYTHON:-$HOME/.venvs/torch-ref/bin/python}"
"$python" -c "import torch" 2>/dev/null || {
    echo "no PyTorch at $python: python3 -m venv ~/.venvs/torch-ref && ~/.venvs/torch-ref/bin/pip install torch (or set TORCH_PYTHON)" >&2
    exit 1
}
cargo build --release --quiet -p hwnas-core --example supernet_step_time
out="$(mktemp -d)"
export RAYON_NUM_THREADS=2
for round in $(seq "$rounds"); do
    "$python" ../shared/bench/torch_nb201_step.py 8 1 64 28 2 --json > "$out/torch-reduced-$round.json"
    target/release/examples/supernet_step_time --json --backends cpu --cases nb201-reduced --repeats 10 > "$out/hwnas-reduced-$round.json"
done
"$python" ../shared/bench/torch_nb201_step.py 16 5 64 28 2 --repeats 3 --json > "$out/torch-full-1.json"
target/release/examples/supernet_step_time --json --backends cpu --cases nb201-full --repeats 3 > "$out/hwnas-full-1.json"
python3 - "$out" <<'PY'
import glob, json, sys
out = sys.argv[1]
best = {}
for path in glob.glob(f"{out}/*.json"):
    side, size = path.rsplit("/", 1)[1].split("-")[:2]
    for row in json.load(open(path)):
        key = (size, row["route"], side)
        best[key] = min(best.get(key, float("inf")), row["seconds_per_step"])
print("| NAS-Bench-201 supernet step | hwnas CPU s | PyTorch eager s | hwnas / PyTorch |")
print("|---|---|---|---|")
for size in ("reduced", "full"):
    for route in ("dense", "sampled"):
        h, t = best.get((size, route, "hwnas")), best.get((size, route, "torch"))
        if h and t:
            print(f"| {size}, {route} | {h:.4f} | {t:.4f} | {h / t:.2f} |")
PY
