// Direct 2-D convolution, NCHW, with stride, padding, dilation and groups (so dense,
// depthwise and pointwise convolutions share it). One invocation per output value.

struct Conv2dParams {
    n: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    k: u32,
    oh: u32,
    ow: u32,
    stride: u32,
    padding: u32,
    dilation: u32,
    groups: u32,
}

@group(0) @binding(0) var<uniform> params: Conv2dParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * 64u;
    let total = params.n * params.cout * params.oh * params.ow;
    if (index >= total) {
        return;
    }
    let ox = index % params.ow;
    let oy = (index / params.ow) % params.oh;
    let co = (index / (params.ow * params.oh)) % params.cout;
    let b = index / (params.ow * params.oh * params.cout);
    let cin_g = params.cin / params.groups;
    let cout_g = params.cout / params.groups;
    let g = co / cout_g;
    var acc = 0.0;
    for (var ci = 0u; ci < cin_g; ci = ci + 1u) {
        let channel = g * cin_g + ci;
        for (var ky = 0u; ky < params.k; ky = ky + 1u) {
            let iy = i32(oy * params.stride + ky * params.dilation) - i32(params.padding);
            if (iy < 0 || iy >= i32(params.h)) {
                continue;
            }
            for (var kx = 0u; kx < params.k; kx = kx + 1u) {
                let ix = i32(ox * params.stride + kx * params.dilation) - i32(params.padding);
                if (ix < 0 || ix >= i32(params.w)) {
                    continue;
                }
                let xv = x[((b * params.cin + channel) * params.h + u32(iy)) * params.w + u32(ix)];
                let wv = weight[((co * cin_g + ci) * params.k + ky) * params.k + kx];
                acc = acc + xv * wv;
            }
        }
    }
    y[index] = acc;
}
