#!/usr/bin/env bash
# The whole-space zero-cost search beside the PyTorch reference's synflow, in one run
# (docs/BENCHMARKS.md, issue: zero-cost): `hwnas proxies --samples 0 --whole-space` three
# times (synflow with periodic padding, in closed form, on all 15,625 NAS-Bench-201 cells),
# then `../shared/bench/torch_nb201_synflow.py` on 200 cells (the reference's zero-padded
# network in float64, 2 threads), then the ratio per cell. PyTorch is a yardstick outside
# the project: TORCH_PYTHON (default ~/.venvs/torch-ref/bin/python) must import torch.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="${TORCH_PYTHON:-$HOME/.venvs/torch-ref/bin/python}"
"$python" -c "import torch, numpy" 2>/dev/null || {
    echo "no PyTorch at $python: python3 -m venv ~/.venvs/torch-ref && ~/.venvs/torch-ref/bin/pip install torch numpy (or set TORCH_PYTHON)" >&2
    exit 1
}
data="${HWNAS_DATA_DIR:-$PWD/../shared/data}"
table="${HWNAS_NB201_TABLE:-$data/nas-bench-201/nb201_cifar10.csv.gz}"
[[ -f "$table" ]] || { echo "no NAS-Bench-201 table at $table (set HWNAS_NB201_TABLE or HWNAS_DATA_DIR)" >&2; exit 1; }
cargo build --release --quiet -p hwnas
out="$(mktemp -d)"
for i in 1 2 3; do
    target/release/hwnas proxies --table "$table" --samples 0 --whole-space --json > "$out/ours$i.json"
done
"$python" ../shared/bench/torch_nb201_synflow.py "$table" --cells 200 --threads 2 --json > "$out/torch.json"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
ours = [json.load(open(f"{out}/ours{i}.json"))["whole_space"] for i in (1, 2, 3)]
torch = json.load(open(f"{out}/torch.json"))
best = min(o["seconds"] for o in ours)
per_cell = best / ours[0]["cells"]
print("| computation | seconds per cell | whole space (15,625 cells) s | Spearman with test |")
print("|---|---|---|---|")
print(f"| hwnas, synflow with periodic padding, closed form (runs: "
      + ", ".join(f"{o['seconds']:.3f}" for o in ours) + f" s) | {per_cell * 1e3:.4f} ms | {best:.3f} | "
      f"{ours[0]['spearman_test']:.3f} (all cells) |")
print(f"| PyTorch reference ({torch['framework']}, float64, {torch['threads']} threads, "
      f"{torch['cells']} cells) | {torch['seconds_per_cell'] * 1e3:.2f} ms | "
      f"{torch['whole_space_seconds']:.1f} (extrapolated) | {torch['spearman_test']:.3f} ({torch['cells']} cells) |")
print(f"\nreference / hwnas per cell: {torch['seconds_per_cell'] / per_cell:.0f}x; "
      f"chosen cell {ours[0]['arch']}, test {ours[0]['test_accuracy']:.2f} "
      f"(table optimum {ours[0]['table_optimum']:.2f})")
PY
