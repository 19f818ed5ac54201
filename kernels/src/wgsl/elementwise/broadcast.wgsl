// Element-wise add, multiply, scaling and scaled sums with NumPy-style broadcasting over up to four axes
// (shapes padded on the left with ones), forward, and the gradient of one operand: the
// output gradient (times the other operand, for a product) summed over the axes the
// operand was broadcast along.

struct BroadcastParams {
    // Forward: the output's dims. Backward: the output's dims.
    out_dims: vec4<u32>,
    // Backward: the dims of the operand whose gradient is computed.
    target_dims: vec4<u32>,
    // Forward: strides of a into output coordinates (0 along broadcast axes).
    strides_a: vec4<u32>,
    // Forward: strides of b; backward: strides of the other operand.
    strides_b: vec4<u32>,
    // 0 add, 1 multiply, 2 (forward only) a times `factor`, b not read, 3 (forward only)
    // a times `factor` plus b times `factor_b`, 4 (forward only) `factor` everywhere, a and b
    // not read.
    op: u32,
    // Values to compute (output in forward, target in backward).
    len: u32,
    factor: f32,
    factor_b: f32,
}

@group(0) @binding(0) var<uniform> params: BroadcastParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn linear_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

fn coords(index: u32, dims: vec4<u32>) -> vec4<u32> {
    return vec4<u32>(
        index / (dims.y * dims.z * dims.w),
        (index / (dims.z * dims.w)) % dims.y,
        (index / dims.w) % dims.z,
        index % dims.w,
    );
}

@compute @workgroup_size(64, 1, 1)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = linear_index(gid, groups);
    if (index >= params.len) {
        return;
    }
    if (params.op == 4u) {
        out[index] = params.factor;
        return;
    }
    let at = coords(index, params.out_dims);
    let av = a[dot(at, params.strides_a)];
    if (params.op == 2u) {
        out[index] = av * params.factor;
        return;
    }
    let bv = b[dot(at, params.strides_b)];
    if (params.op == 3u) {
        out[index] = av * params.factor + bv * params.factor_b;
    } else if (params.op == 0u) {
        out[index] = av + bv;
    } else {
        out[index] = av * bv;
    }
}

// a = dy, b = the other operand; one invocation per value of the target operand.
@compute @workgroup_size(64, 1, 1)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = linear_index(gid, groups);
    if (index >= params.len) {
        return;
    }
    let t = params.target_dims;
    let o = params.out_dims;
    let base = coords(index, t);
    // Extents of the summed axes (1 where the target is not broadcast).
    let span = select(vec4<u32>(1u), o, (t == vec4<u32>(1u)) & (o != vec4<u32>(1u)));
    let count = span.x * span.y * span.z * span.w;
    var acc = 0.0;
    for (var j = 0u; j < count; j = j + 1u) {
        let offset = coords(j, span);
        let at = select(base, offset, span != vec4<u32>(1u));
        let flat = ((at.x * o.y + at.y) * o.z + at.z) * o.w + at.w;
        var g = a[flat];
        if (params.op == 1u) {
            g = g * b[dot(at, params.strides_b)];
        }
        acc = acc + g;
    }
    out[index] = acc;
}
