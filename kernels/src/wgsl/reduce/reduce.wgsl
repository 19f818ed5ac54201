// Weighted sums and dot products: the mixed op of differentiable NAS (a weighted sum of K
// candidates of one shape, stored one after another), its candidate gradients, and
// segment dot products (the mixed op's weight gradients; sums and means with `ones`), and
// per-channel sums of NCHW tensors (a convolution's bias gradient).

struct ReduceParams {
    // Values per segment (per candidate).
    len: u32,
    // Segments (candidates).
    segments: u32,
    // 1: the dot product's second factor is all ones (a plain sum).
    ones: u32,
    // Each reduction's result is multiplied by this (1 for a sum, 1 / count for a mean).
    scale: f32,
    // `channel_sum`: images in the batch (segments are channels, len the plane).
    batches: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: ReduceParams;
// The candidates (segments x len), or the values to reduce.
@group(0) @binding(1) var<storage, read> stacked: array<f32>;
// The weights (segments), or the second factor (len).
@group(0) @binding(2) var<storage, read> factor: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 256>;

// The sum of every invocation's `value` in a 256-wide workgroup (a tree over `partial`);
// every invocation calls it.
fn workgroup_sum(local: u32, value: f32) -> f32 {
    partial[local] = value;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride = stride / 2u) {
        if (local < stride) {
            partial[local] = partial[local] + partial[local + stride];
        }
        workgroupBarrier();
    }
    return partial[0];
}

fn linear_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

// out[i] = sum_k factor[k] * stacked[k, i].
@compute @workgroup_size(64, 1, 1)
fn weighted_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = linear_index(gid, groups);
    if (index >= params.len) {
        return;
    }
    var acc = 0.0;
    for (var k = 0u; k < params.segments; k = k + 1u) {
        acc = acc + factor[k] * stacked[k * params.len + index];
    }
    out[index] = acc;
}

// out[k, i] = factor[k] * stacked[i]: every candidate's gradient from dy.
@compute @workgroup_size(64, 1, 1)
fn spread(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = linear_index(gid, groups);
    if (index >= params.len * params.segments) {
        return;
    }
    out[index] = factor[index / params.len] * stacked[index % params.len];
}

// Workgroup k: out[k] = sum_i stacked[k, i] * factor[i] (or * 1).
@compute @workgroup_size(256, 1, 1)
fn segment_dot(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k = wid.x;
    var acc = 0.0;
    for (var i = lid.x; i < params.len; i = i + 256u) {
        var f = 1.0;
        if (params.ones == 0u) {
            f = factor[i];
        }
        acc = acc + stacked[k * params.len + i] * f;
    }
    let total = workgroup_sum(lid.x, acc);
    if (lid.x == 0u) {
        out[k] = total * params.scale;
    }
}

// Workgroup c: out[c] = sum over images b and plane positions i of stacked[b, c, i].
@compute @workgroup_size(256, 1, 1)
fn channel_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = wid.x;
    let per_channel = params.batches * params.len;
    var acc = 0.0;
    for (var j = lid.x; j < per_channel; j = j + 256u) {
        let b = j / params.len;
        let i = j % params.len;
        acc = acc + stacked[(b * params.segments + c) * params.len + i];
    }
    let total = workgroup_sum(lid.x, acc);
    if (lid.x == 0u) {
        out[c] = total * params.scale;
    }
}
