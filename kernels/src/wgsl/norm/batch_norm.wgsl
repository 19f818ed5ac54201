// Batch normalisation over NCHW, per channel: the batch statistics (one 64-wide workgroup
// per channel, mean then variance in two passes as the CPU reference does), the
// normalisation, the per-channel sums the backward needs, and the input gradient in
// training mode (statistics of the batch) or inference mode (fixed statistics).

struct NormParams {
    n: u32,
    c: u32,
    plane: u32,
    training: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: NormParams;
// Input x (statistics, normalise) or the output gradient dy (sums, input gradient).
@group(0) @binding(1) var<storage, read> values: array<f32>;
// Per channel: mean (0..c) and 1/sqrt(var + eps) (c..2c) for normalise; gamma (0..c) and
// beta (c..2c) for scale_shift; dgamma (0..c), dbeta (c..2c), gamma (2c..3c) and inv_std
// (3c..4c) for the input gradient.
@group(0) @binding(2) var<storage, read> channel: array<f32>;
// The normalised input (read by sums and the input gradient).
@group(0) @binding(3) var<storage, read> normalised: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 64>;

fn linear_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

fn channel_of(index: u32) -> u32 {
    return (index / params.plane) % params.c;
}

// The value at position i (0..n*plane) of channel ch.
fn value_at(ch: u32, i: u32) -> f32 {
    let b = i / params.plane;
    return values[(b * params.c + ch) * params.plane + i % params.plane];
}

fn reduce(lid: u32, value: f32) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            partial[lid] = partial[lid] + partial[lid + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

// Workgroup `ch`: out[ch] = mean, out[c + ch] = 1/sqrt(var + eps), out[2c + ch] = the
// biased variance.
@compute @workgroup_size(64, 1, 1)
fn stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let ch = wid.x;
    let count = params.n * params.plane;
    var acc = 0.0;
    for (var i = lid.x; i < count; i = i + 64u) {
        acc = acc + value_at(ch, i);
    }
    let mean = reduce(lid.x, acc) / f32(count);
    var sq = 0.0;
    for (var i = lid.x; i < count; i = i + 64u) {
        let d = value_at(ch, i) - mean;
        sq = sq + d * d;
    }
    let variance = reduce(lid.x, sq) / f32(count);
    if (lid.x == 0u) {
        out[ch] = mean;
        out[params.c + ch] = 1.0 / sqrt(variance + params.eps);
        out[2u * params.c + ch] = variance;
    }
}

// out = (x - mean) * inv_std: the normalised input (the output is gamma * it + beta,
// taken by `scale_shift`).
@compute @workgroup_size(64, 1, 1)
fn normalise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = linear_index(gid, groups);
    if (index >= params.n * params.c * params.plane) {
        return;
    }
    let ch = channel_of(index);
    out[index] = (values[index] - channel[ch]) * channel[params.c + ch];
}

// out = gamma * normalised + beta.
@compute @workgroup_size(64, 1, 1)
fn scale_shift(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = linear_index(gid, groups);
    if (index >= params.n * params.c * params.plane) {
        return;
    }
    let ch = channel_of(index);
    out[index] = channel[ch] * normalised[index] + channel[params.c + ch];
}

// Workgroup `ch`: out[ch] = sum(dy * normalised) (dgamma), out[c + ch] = sum(dy) (dbeta);
// the rest of `out` (gamma and inv_std, for the input gradient) is left as uploaded.
@compute @workgroup_size(64, 1, 1)
fn sums(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let ch = wid.x;
    let count = params.n * params.plane;
    var dot = 0.0;
    var total = 0.0;
    for (var i = lid.x; i < count; i = i + 64u) {
        let b = i / params.plane;
        let at = (b * params.c + ch) * params.plane + i % params.plane;
        dot = dot + values[at] * normalised[at];
        total = total + values[at];
    }
    let dgamma = reduce(lid.x, dot);
    let dbeta = reduce(lid.x, total);
    if (lid.x == 0u) {
        out[ch] = dgamma;
        out[params.c + ch] = dbeta;
    }
}

// The input gradient from dy (values), the normalised input and, per channel, the sums,
// gamma and inv_std (channel).
@compute @workgroup_size(64, 1, 1)
fn backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = linear_index(gid, groups);
    if (index >= params.n * params.c * params.plane) {
        return;
    }
    let ch = channel_of(index);
    let gamma = channel[2u * params.c + ch];
    let inv_std = channel[3u * params.c + ch];
    let g = values[index];
    if (params.training == 0u) {
        out[index] = g * gamma * inv_std;
        return;
    }
    let m = f32(params.n * params.plane);
    out[index] = inv_std / m
        * (m * g * gamma - gamma * channel[params.c + ch] - normalised[index] * gamma * channel[ch]);
}

// Inference mode's per-channel block from fixed statistics: channel = [mean, var];
// out[ch] = mean, out[c + ch] = 1/sqrt(var + eps) (what normalise reads).
@compute @workgroup_size(64, 1, 1)
fn fixed_stats(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let ch = linear_index(gid, groups);
    if (ch >= params.c) {
        return;
    }
    out[ch] = channel[ch];
    out[params.c + ch] = 1.0 / sqrt(channel[params.c + ch] + params.eps);
}
