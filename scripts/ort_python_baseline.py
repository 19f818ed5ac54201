#!/usr/bin/env python3
"""A plain Python timing loop around the same ONNX Runtime version hwnas loads, for the
overhead comparison in docs/BENCHMARKS.md: one session, all graph optimisations, the given
intra-op threads, sequential execution, warm-up, then N timed runs; prints the median in ms.

Usage: python3 scripts/ort_python_baseline.py MODEL.onnx [--threads 1] [--runs 200] [--warmup 10]
Needs the `onnxruntime` and `numpy` Python packages.
"""
import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--runs", type=int, default=200)
parser.add_argument("--warmup", type=int, default=10)
args = parser.parse_args()

options = ort.SessionOptions()
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
options.intra_op_num_threads = args.threads
options.inter_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
inp = session.get_inputs()[0]
shape = [d if isinstance(d, int) else 1 for d in inp.shape]
x = np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32)
feed = {inp.name: x}
for _ in range(args.warmup):
    session.run(None, feed)
times = []
for _ in range(args.runs):
    start = time.perf_counter()
    session.run(None, feed)
    times.append((time.perf_counter() - start) * 1e3)
print(f"{statistics.median(times):.4f}")
