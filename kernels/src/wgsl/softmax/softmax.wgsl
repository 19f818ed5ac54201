// Row-wise softmax family over [rows, cols]: softmax of (x + noise) * scale (plain
// softmax: no noise, scale 1; Gumbel-softmax: Gumbel noise, scale 1/tau), log-softmax,
// their backward passes, cross-entropy against labels, and whether each row's largest logit
// is its label's. One invocation per row (forward, losses, hits) or per value (backward).

struct SoftmaxParams {
    rows: u32,
    cols: u32,
    // 0 softmax, 1 log-softmax.
    log: u32,
    // 1: add `noise` before scaling.
    noisy: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: SoftmaxParams;
// Logits, or a forward output (backward).
@group(0) @binding(1) var<storage, read> x: array<f32>;
// Gumbel noise (forward), the output gradient (backward).
@group(0) @binding(2) var<storage, read> aux: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// Class labels as f32 values (exact integers).
@group(0) @binding(4) var<storage, read> labels: array<f32>;

fn linear_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

fn input(at: u32) -> f32 {
    if (params.noisy == 1u) {
        return (x[at] + aux[at]) * params.scale;
    }
    return x[at] * params.scale;
}

// log(sum(exp(row))) of row `r` of the (noisy, scaled) input.
fn log_sum_exp(r: u32) -> f32 {
    var best = -3.4028235e38;
    for (var j = 0u; j < params.cols; j = j + 1u) {
        best = max(best, input(r * params.cols + j));
    }
    var total = 0.0;
    for (var j = 0u; j < params.cols; j = j + 1u) {
        total = total + exp(input(r * params.cols + j) - best);
    }
    return log(total) + best;
}

@compute @workgroup_size(64, 1, 1)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let r = linear_index(gid, groups);
    if (r >= params.rows) {
        return;
    }
    let lse = log_sum_exp(r);
    for (var j = 0u; j < params.cols; j = j + 1u) {
        let l = input(r * params.cols + j) - lse;
        if (params.log == 1u) {
            out[r * params.cols + j] = l;
        } else {
            out[r * params.cols + j] = exp(l);
        }
    }
}

// From the forward output y (x) and dy (aux): softmax p * (dy - <p, dy>) * scale;
// log-softmax dy - exp(y) * sum(dy).
@compute @workgroup_size(64, 1, 1)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = linear_index(gid, groups);
    if (index >= params.rows * params.cols) {
        return;
    }
    let r = index / params.cols;
    var acc = 0.0;
    for (var j = 0u; j < params.cols; j = j + 1u) {
        let at = r * params.cols + j;
        if (params.log == 1u) {
            acc = acc + aux[at];
        } else {
            acc = acc + x[at] * aux[at];
        }
    }
    if (params.log == 1u) {
        out[index] = aux[index] - exp(x[index]) * acc;
    } else {
        out[index] = x[index] * (aux[index] - acc) * params.scale;
    }
}

// out[r] = -log_softmax(x)[r, labels[r]].
@compute @workgroup_size(64, 1, 1)
fn cross_entropy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let r = linear_index(gid, groups);
    if (r >= params.rows) {
        return;
    }
    out[r] = log_sum_exp(r) - input(r * params.cols + u32(labels[r]));
}

// The mean cross-entropy's gradient (the host scales it by the loss's own gradient):
// (softmax - onehot) / rows.
@compute @workgroup_size(64, 1, 1)
fn cross_entropy_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = linear_index(gid, groups);
    if (index >= params.rows * params.cols) {
        return;
    }
    let r = index / params.cols;
    let j = index % params.cols;
    var p = exp(x[index] - log_sum_exp(r));
    if (u32(labels[r]) == j) {
        p = p - 1.0;
    }
    out[index] = p / f32(params.rows);
}

// out[r] = 1 when row r's largest logit (the last of equal maxima) is its label's, else 0.
@compute @workgroup_size(64, 1, 1)
fn hits(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let r = linear_index(gid, groups);
    if (r >= params.rows) {
        return;
    }
    // Through `input` as the losses read the logits (scale 1, no noise: the same values),
    // so that every labelled entry point shares one set of bindings.
    var best = input(r * params.cols);
    var at = 0u;
    for (var j = 1u; j < params.cols; j = j + 1u) {
        let v = input(r * params.cols + j);
        if (v >= best) {
            best = v;
            at = j;
        }
    }
    out[r] = select(0.0, 1.0, at == u32(labels[r]));
}
