// Activations forward (y = f(x)) and backward (dx = dy * f'(x)); `kind` selects the
// function: 0 relu, 1 relu6, 2 h-swish, 3 h-sigmoid, 4 sigmoid, 5 tanh (Activation::code).

struct ActivationParams {
    len: u32,
    kind: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: ActivationParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn forward(v: f32, kind: u32) -> f32 {
    switch kind {
        case 0u: { return max(v, 0.0); }
        case 1u: { return clamp(v, 0.0, 6.0); }
        case 2u: { return v * clamp(v + 3.0, 0.0, 6.0) / 6.0; }
        case 3u: { return clamp(v + 3.0, 0.0, 6.0) / 6.0; }
        case 4u: { return 1.0 / (1.0 + exp(-v)); }
        // Clamped: some drivers compute tanh through exp, which overflows to NaN.
        default: { return tanh(clamp(v, -15.0, 15.0)); }
    }
}

fn derivative(v: f32, kind: u32) -> f32 {
    switch kind {
        case 0u: { return select(0.0, 1.0, v > 0.0); }
        case 1u: { return select(0.0, 1.0, v > 0.0 && v < 6.0); }
        case 2u: {
            if (v <= -3.0) { return 0.0; }
            if (v >= 3.0) { return 1.0; }
            return (2.0 * v + 3.0) / 6.0;
        }
        case 3u: { return select(0.0, 1.0 / 6.0, v > -3.0 && v < 3.0); }
        case 4u: {
            let s = 1.0 / (1.0 + exp(-v));
            return s * (1.0 - s);
        }
        default: {
            let t = tanh(clamp(v, -15.0, 15.0));
            return 1.0 - t * t;
        }
    }
}

@compute @workgroup_size(256, 1, 1)
fn activation_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    if (i < params.len) {
        out[i] = forward(x[i], params.kind);
    }
}

@compute @workgroup_size(256, 1, 1)
fn activation_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    if (i < params.len) {
        out[i] = dy[i] * derivative(x[i], params.kind);
    }
}
