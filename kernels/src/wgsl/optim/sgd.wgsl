// SGD with momentum, Nesterov momentum and L2 weight decay (PyTorch's formulation), with
// gradient-norm clipping, on the device: the squared norm of each gradient into its slot,
// the clipping factor from the slots, then each parameter's update into fresh buffers
// (weights and velocity), so nothing is read back between steps. A step uploads only its
// hyperparameters (32 bytes): the per-dispatch blocks hold shapes, which repeat.

// Per dispatch, the shape only: the same for every step, so each block is uploaded once.
struct SgdParams {
    // Values of this parameter (update, square_sum) or slots (clip_scale).
    len: u32,
    // square_sum: the slot written.
    slot: u32,
    _pad0: u32,
    _pad1: u32,
}

// Per step: the hyperparameters (the learning rate moves every step), one block shared by
// every dispatch of the step.
struct SgdStep {
    // 1: Nesterov momentum.
    nesterov: u32,
    // 1: scale the gradient by `scale[0]` (clipping); 0: do not read it.
    clipped: u32,
    learning_rate: f32,
    momentum: f32,
    weight_decay: f32,
    // clip_scale: the largest global gradient norm kept.
    max_norm: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: SgdParams;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
// The gradient (update, square_sum) or the squared norms (clip_scale).
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> velocity: array<f32>;
@group(0) @binding(5) var<storage, read_write> out_velocity: array<f32>;
@group(0) @binding(6) var<storage, read> scale: array<f32>;
@group(0) @binding(7) var<storage, read> hyper: SgdStep;

var<workgroup> partial: array<f32, 256>;

fn linear_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

// One workgroup: out[slot] = sum of grads[i]^2.
@compute @workgroup_size(256, 1, 1)
fn square_sum(@builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = 0.0;
    for (var i = lid.x; i < params.len; i = i + 256u) {
        acc = acc + grads[i] * grads[i];
    }
    partial[lid.x] = acc;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride = stride / 2u) {
        if (lid.x < stride) {
            partial[lid.x] = partial[lid.x] + partial[lid.x + stride];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        out[params.slot] = partial[0];
    }
}

// One invocation: out[0] = max_norm / norm when the global norm exceeds max_norm, else 1.
@compute @workgroup_size(1, 1, 1)
fn clip_scale() {
    var total = 0.0;
    for (var i = 0u; i < params.len; i = i + 1u) {
        total = total + grads[i];
    }
    let norm = sqrt(total);
    var s = 1.0;
    if (norm > hyper.max_norm && norm > 0.0) {
        s = hyper.max_norm / norm;
    }
    out[0] = s;
}

// One invocation per value: the new weight into `out`, the new velocity into `out_velocity`.
@compute @workgroup_size(64, 1, 1)
fn update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if (i >= params.len) {
        return;
    }
    var g = grads[i];
    if (hyper.clipped != 0u) {
        g = g * scale[0];
    }
    let w = weights[i];
    let d = g + hyper.weight_decay * w;
    let v = hyper.momentum * velocity[i] + d;
    var step = v;
    if (hyper.nesterov != 0u) {
        step = d + hyper.momentum * v;
    }
    out[i] = w - hyper.learning_rate * step;
    out_velocity[i] = v;
}
