// 2-D convolution, NCHW, with stride, padding, dilation and groups (so dense, depthwise
// and pointwise convolutions share it), forward and backward.
//
// Two paths:
// - `tiled`: the convolution as an implicit matrix product per group, 64 x 64 tiles staged
//   through workgroup memory, 4 x 4 per invocation. `mode` picks which product:
//     0 forward          y[co, p]   = sum_(ci,ky,kx)  w[co, (ci,ky,kx)] * im2col(x)[(ci,ky,kx), p]
//     1 input gradient   dx[ci, q]  = sum_(co,ky,kx)  w[co, (ci,ky,kx)] * col2im(dy)[(co,ky,kx), q]
//     2 weight gradient  dw[co, kk] = sum_p           dy[co, p]          * im2col(x)[kk, p]
//   with p running over (batch, output row, output column) and q over input positions.
// - direct kernels, for groups too narrow to fill a tile (depthwise): one invocation per
//   output or input value, and a 64-wide workgroup reduction per weight value.

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
    mode: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Conv2dParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;

const BLOCK: u32 = 4u;
const DEPTH: u32 = 16u;
const SIDE: u32 = 64u;

// tile_a[d * 16 + r] holds rows 4r .. 4r + 4 of the left factor at depth d, tile_b[d * 16 + q]
// columns 4q .. 4q + 4 of the right factor, relative to the tile's origin.
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;
var<workgroup> partial: array<f32, 64>;

fn cin_g() -> u32 {
    return params.cin / params.groups;
}

fn cout_g() -> u32 {
    return params.cout / params.groups;
}

// Input value (b, channel, iy, ix) with zero padding outside the image.
fn x_at(b: u32, channel: u32, iy: i32, ix: i32) -> f32 {
    if (iy < 0 || iy >= i32(params.h) || ix < 0 || ix >= i32(params.w)) {
        return 0.0;
    }
    return x[((b * params.cin + channel) * params.h + u32(iy)) * params.w + u32(ix)];
}

// Rows, columns and depth of the product each mode computes for one group.
fn product_shape() -> vec3<u32> {
    let kk = params.k * params.k;
    let positions = params.n * params.oh * params.ow;
    if (params.mode == 0u) {
        return vec3<u32>(cout_g(), positions, cin_g() * kk);
    }
    if (params.mode == 1u) {
        return vec3<u32>(cin_g(), params.n * params.h * params.w, cout_g() * kk);
    }
    return vec3<u32>(cout_g(), cin_g() * kk, positions);
}

// Element (row, depth) of the left factor.
fn left(g: u32, row: u32, depth: u32) -> f32 {
    let kk = params.k * params.k;
    if (params.mode == 0u) {
        return weight[(g * cout_g() + row) * cin_g() * kk + depth];
    }
    if (params.mode == 1u) {
        let co = depth / kk;
        let tap = depth % kk;
        return weight[((g * cout_g() + co) * cin_g() + row) * kk + tap];
    }
    let plane = params.oh * params.ow;
    let b = depth / plane;
    let at = depth % plane;
    return dy[(b * params.cout + g * cout_g() + row) * plane + at];
}

// The input value a tap of position p = (b, oy, ox) reads, for tap (ci, ky, kx).
fn im2col(g: u32, tap_index: u32, p: u32) -> f32 {
    let kk = params.k * params.k;
    let ci = tap_index / kk;
    let ky = (tap_index % kk) / params.k;
    let kx = tap_index % params.k;
    let plane = params.oh * params.ow;
    let b = p / plane;
    let oy = (p % plane) / params.ow;
    let ox = p % params.ow;
    let iy = i32(oy * params.stride + ky * params.dilation) - i32(params.padding);
    let ix = i32(ox * params.stride + kx * params.dilation) - i32(params.padding);
    return x_at(b, g * cin_g() + ci, iy, ix);
}

// Element (depth, column) of the right factor.
fn right(g: u32, depth: u32, column: u32) -> f32 {
    if (params.mode == 0u) {
        return im2col(g, depth, column);
    }
    if (params.mode == 2u) {
        return im2col(g, column, depth);
    }
    // The output gradient that input position q = column receives through tap (co, ky, kx).
    let kk = params.k * params.k;
    let co = depth / kk;
    let ky = (depth % kk) / params.k;
    let kx = depth % params.k;
    let image = params.h * params.w;
    let b = column / image;
    let iy = (column % image) / params.w;
    let ix = column % params.w;
    let ty = i32(iy + params.padding) - i32(ky * params.dilation);
    let tx = i32(ix + params.padding) - i32(kx * params.dilation);
    if (ty < 0 || tx < 0) {
        return 0.0;
    }
    if (u32(ty) % params.stride != 0u || u32(tx) % params.stride != 0u) {
        return 0.0;
    }
    let oy = u32(ty) / params.stride;
    let ox = u32(tx) / params.stride;
    if (oy >= params.oh || ox >= params.ow) {
        return 0.0;
    }
    return dy[((b * params.cout + g * cout_g() + co) * params.oh + oy) * params.ow + ox];
}

fn store(g: u32, row: u32, column: u32, value: f32) {
    if (params.mode == 0u) {
        let plane = params.oh * params.ow;
        let b = column / plane;
        y[(b * params.cout + g * cout_g() + row) * plane + column % plane] = value;
    } else if (params.mode == 1u) {
        let image = params.h * params.w;
        let b = column / image;
        y[(b * params.cin + g * cin_g() + row) * image + column % image] = value;
    } else {
        y[(g * cout_g() + row) * cin_g() * params.k * params.k + column] = value;
    }
}

// A 16 x 16 workgroup computes a 64 x 64 tile of the product, each invocation a 4 x 4 block,
// stepping through the depth 16 at a time (the same blocking as `matmul.wgsl`).
@compute @workgroup_size(16, 16, 1)
fn tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let shape = product_shape();
    let g = wid.z;
    let row0 = wid.y * SIDE;
    let col0 = wid.x * SIDE;
    let local = lid.y * 16u + lid.x;
    let a_depth = local % DEPTH;
    let a_rows = row0 + (local / DEPTH) * BLOCK;
    let b_depth = local / 16u;
    let b_cols = col0 + (local % 16u) * BLOCK;
    var acc: array<vec4<f32>, 4>;
    let steps = (shape.z + DEPTH - 1u) / DEPTH;
    for (var t = 0u; t < steps; t = t + 1u) {
        let da = t * DEPTH + a_depth;
        var av = vec4<f32>(0.0);
        if (da < shape.z) {
            for (var i = 0u; i < BLOCK; i = i + 1u) {
                if (a_rows + i < shape.x) {
                    av[i] = left(g, a_rows + i, da);
                }
            }
        }
        tile_a[a_depth * 16u + local / DEPTH] = av;
        let db = t * DEPTH + b_depth;
        var bv = vec4<f32>(0.0);
        if (db < shape.z) {
            for (var j = 0u; j < BLOCK; j = j + 1u) {
                if (b_cols + j < shape.y) {
                    bv[j] = right(g, db, b_cols + j);
                }
            }
        }
        tile_b[b_depth * 16u + local % 16u] = bv;
        workgroupBarrier();
        for (var i = 0u; i < DEPTH; i = i + 1u) {
            let a4 = tile_a[i * 16u + lid.y];
            let b4 = tile_b[i * 16u + lid.x];
            acc[0] = acc[0] + a4.x * b4;
            acc[1] = acc[1] + a4.y * b4;
            acc[2] = acc[2] + a4.z * b4;
            acc[3] = acc[3] + a4.w * b4;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < BLOCK; i = i + 1u) {
        let row = row0 + lid.y * BLOCK + i;
        if (row >= shape.x) {
            break;
        }
        for (var j = 0u; j < BLOCK; j = j + 1u) {
            let column = col0 + lid.x * BLOCK + j;
            if (column < shape.y) {
                store(g, row, column, acc[i][j]);
            }
        }
    }
}

fn linear_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = linear_index(gid, groups);
    let total = params.n * params.cout * params.oh * params.ow;
    if (index >= total) {
        return;
    }
    let ox = index % params.ow;
    let oy = (index / params.ow) % params.oh;
    let co = (index / (params.ow * params.oh)) % params.cout;
    let b = index / (params.ow * params.oh * params.cout);
    let g = co / cout_g();
    var acc = 0.0;
    for (var ci = 0u; ci < cin_g(); ci = ci + 1u) {
        for (var ky = 0u; ky < params.k; ky = ky + 1u) {
            let iy = i32(oy * params.stride + ky * params.dilation) - i32(params.padding);
            for (var kx = 0u; kx < params.k; kx = kx + 1u) {
                let ix = i32(ox * params.stride + kx * params.dilation) - i32(params.padding);
                let wv = weight[((co * cin_g() + ci) * params.k + ky) * params.k + kx];
                acc = acc + x_at(b, g * cin_g() + ci, iy, ix) * wv;
            }
        }
    }
    y[index] = acc;
}

// One invocation per input value: the sum over the output values that read it.
@compute @workgroup_size(64, 1, 1)
fn backward_input_direct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = linear_index(gid, groups);
    let image = params.h * params.w;
    if (index >= params.n * params.cin * image) {
        return;
    }
    let ix = index % params.w;
    let iy = (index / params.w) % params.h;
    let channel = (index / image) % params.cin;
    let b = index / (image * params.cin);
    let g = channel / cin_g();
    let ci = channel % cin_g();
    var acc = 0.0;
    for (var c = 0u; c < cout_g(); c = c + 1u) {
        let co = g * cout_g() + c;
        for (var ky = 0u; ky < params.k; ky = ky + 1u) {
            let ty = i32(iy + params.padding) - i32(ky * params.dilation);
            if (ty < 0 || u32(ty) % params.stride != 0u || u32(ty) / params.stride >= params.oh) {
                continue;
            }
            for (var kx = 0u; kx < params.k; kx = kx + 1u) {
                let tx = i32(ix + params.padding) - i32(kx * params.dilation);
                if (tx < 0 || u32(tx) % params.stride != 0u || u32(tx) / params.stride >= params.ow) {
                    continue;
                }
                let oy = u32(ty) / params.stride;
                let ox = u32(tx) / params.stride;
                let g_out = dy[((b * params.cout + co) * params.oh + oy) * params.ow + ox];
                acc = acc + g_out * weight[((co * cin_g() + ci) * params.k + ky) * params.k + kx];
            }
        }
    }
    y[index] = acc;
}

// One 64-wide workgroup per weight value, reducing over every output position.
@compute @workgroup_size(64, 1, 1)
fn backward_weight_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = wid.x + wid.y * groups.x;
    let kk = params.k * params.k;
    let total = params.cout * cin_g() * kk;
    // `index` is the same across the workgroup, so every invocation takes the same branch
    // and reaches the barriers below together.
    let valid = index < total;
    var acc = 0.0;
    if (valid) {
        let co = index / (cin_g() * kk);
        let tap = index % (cin_g() * kk);
        let g = co / cout_g();
        let positions = params.n * params.oh * params.ow;
        let plane = params.oh * params.ow;
        for (var p = lid.x; p < positions; p = p + 64u) {
            let b = p / plane;
            let g_out = dy[(b * params.cout + co) * plane + p % plane];
            acc = acc + g_out * im2col(g, tap, p);
        }
    }
    partial[lid.x] = acc;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride = stride / 2u) {
        if (lid.x < stride) {
            partial[lid.x] = partial[lid.x] + partial[lid.x + stride];
        }
        workgroupBarrier();
    }
    if (valid && lid.x == 0u) {
        y[index] = partial[0];
    }
}
