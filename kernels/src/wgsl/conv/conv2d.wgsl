// 2-D convolution, NCHW, with stride, padding, dilation and groups (so dense, depthwise
// and pointwise convolutions share it), forward and backward.
//
// Two paths:
// - `tiled`: the convolution as an implicit matrix product per group, 64 x 128 tiles staged
//   through workgroup memory, 4 x 8 per invocation. `mode` picks which product:
//     0 forward          y[co, p]   = sum_(ci,ky,kx)  w[co, (ci,ky,kx)] * im2col(x)[(ci,ky,kx), p]
//     1 input gradient   dx[ci, q]  = sum_(co,ky,kx)  w[co, (ci,ky,kx)] * col2im(dy)[(co,ky,kx), q]
//     2 weight gradient  dw[co, kk] = sum_p           dy[co, p]          * im2col(x)[kk, p]
//   with p running over (batch, output row, output column) and q over input positions.
// - depthwise kernels (one input channel per group): a 16 x 16 tile of one plane per
//   workgroup, the window it reads staged once in workgroup memory (`depthwise` forward,
//   `depthwise_backward_input` for the input gradient).
// - direct kernels, for other narrow groups and windows too big to stage: one invocation per
//   output or input value, and a 64-wide workgroup reduction per weight value.
// - `depthwise_backward_weight`: one 256-wide workgroup per output channel of a depthwise
//   convolution, reducing each tap over the output rows.

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

const DEPTH: u32 = 8u;
const ROWS: u32 = 64u;
const COLUMNS: u32 = 128u;
const ROW_QUADS: u32 = 16u;
const COLUMN_QUADS: u32 = 32u;

// tile_a[d * 16 + r] holds rows 4r .. 4r + 4 of the left factor at depth d, tile_b[d * 32 + q]
// columns 4q .. 4q + 4 of the right factor, relative to the tile's origin.
var<workgroup> tile_a: array<vec4<f32>, 128>;
var<workgroup> tile_b: array<vec4<f32>, 256>;
var<workgroup> partial: array<f32, 256>;
// The input (forward) or output-gradient (input gradient) window of one depthwise tile.
const PATCH: u32 = 2304u;
var<workgroup> staged: array<f32, 2304>;
// The kernel taps of the channel a depthwise tile works on (at most 16 x 16).
var<workgroup> taps: array<f32, 256>;

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

// Four consecutive columns of the right factor, decoded once per invocation (they stay the
// same through the depth loop): for each, an element offset and a row and column origin.
//   mode 0 (column = output position b, oy, ox): offset of (b, group's first input channel),
//          origin (oy * stride - padding, ox * stride - padding);
//   mode 1 (column = input position b, iy, ix): offset of (b, group's first output channel)
//          in dy, origin (iy + padding, ix + padding);
//   mode 2 (column = tap ci, ky, kx): offset of input channel ci of the group, origin
//          (ky * dilation - padding, kx * dilation - padding).
struct Columns {
    offset: vec4<u32>,
    origin_y: vec4<i32>,
    origin_x: vec4<i32>,
    count: u32,
}

fn columns_of(g: u32, first: u32, count: u32) -> Columns {
    var out: Columns;
    out.count = count;
    let kk = params.k * params.k;
    let pad = i32(params.padding);
    for (var j = 0u; j < count; j = j + 1u) {
        let column = first + j;
        if (params.mode == 0u) {
            let plane = params.oh * params.ow;
            let b = column / plane;
            let at = column % plane;
            out.offset[j] = (b * params.cin + g * cin_g()) * params.h * params.w;
            out.origin_y[j] = i32((at / params.ow) * params.stride) - pad;
            out.origin_x[j] = i32((at % params.ow) * params.stride) - pad;
        } else if (params.mode == 1u) {
            let image = params.h * params.w;
            let b = column / image;
            let at = column % image;
            out.offset[j] = (b * params.cout + g * cout_g()) * params.oh * params.ow;
            out.origin_y[j] = i32(at / params.w) + pad;
            out.origin_x[j] = i32(at % params.w) + pad;
        } else {
            let ci = column / kk;
            let tap = column % kk;
            out.offset[j] = (g * cin_g() + ci) * params.h * params.w;
            out.origin_y[j] = i32((tap / params.k) * params.dilation) - pad;
            out.origin_x[j] = i32((tap % params.k) * params.dilation) - pad;
        }
    }
    return out;
}

fn inside(iy: i32, ix: i32) -> bool {
    return iy >= 0 && iy < i32(params.h) && ix >= 0 && ix < i32(params.w);
}

// The right factor at one depth for the four columns of `cols` (zero past the last one).
fn right4(depth: u32, cols: Columns) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    let kk = params.k * params.k;
    if (params.mode == 0u) {
        // depth = tap (ci, ky, kx) of the input patch.
        let tap = depth % kk;
        let channel = (depth / kk) * params.h * params.w;
        let off_y = i32((tap / params.k) * params.dilation);
        let off_x = i32((tap % params.k) * params.dilation);
        for (var j = 0u; j < cols.count; j = j + 1u) {
            let iy = cols.origin_y[j] + off_y;
            let ix = cols.origin_x[j] + off_x;
            if (inside(iy, ix)) {
                v[j] = x[cols.offset[j] + channel + u32(iy) * params.w + u32(ix)];
            }
        }
    } else if (params.mode == 2u) {
        // depth = output position (b, oy, ox).
        let plane = params.oh * params.ow;
        let b = depth / plane;
        let at = depth % plane;
        let base = b * params.cin * params.h * params.w;
        let oy = i32((at / params.ow) * params.stride);
        let ox = i32((at % params.ow) * params.stride);
        for (var j = 0u; j < cols.count; j = j + 1u) {
            let iy = oy + cols.origin_y[j];
            let ix = ox + cols.origin_x[j];
            if (inside(iy, ix)) {
                v[j] = x[base + cols.offset[j] + u32(iy) * params.w + u32(ix)];
            }
        }
    } else {
        // depth = (co, ky, kx): the output gradient the column's input position receives
        // through that tap.
        let co = depth / kk;
        let tap = depth % kk;
        let channel = co * params.oh * params.ow;
        let ky = i32((tap / params.k) * params.dilation);
        let kx = i32((tap % params.k) * params.dilation);
        let stride = i32(params.stride);
        for (var j = 0u; j < cols.count; j = j + 1u) {
            let ty = cols.origin_y[j] - ky;
            let tx = cols.origin_x[j] - kx;
            if (ty < 0 || tx < 0 || ty % stride != 0 || tx % stride != 0) {
                continue;
            }
            let oy = u32(ty / stride);
            let ox = u32(tx / stride);
            if (oy < params.oh && ox < params.ow) {
                v[j] = dy[cols.offset[j] + channel + oy * params.ow + ox];
            }
        }
    }
    return v;
}

// The left factor at one depth for rows first .. first + count (zero past the last one).
fn left4(g: u32, first: u32, count: u32, depth: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    let kk = params.k * params.k;
    if (params.mode == 0u) {
        let row_len = cin_g() * kk;
        let base = (g * cout_g() + first) * row_len + depth;
        for (var i = 0u; i < count; i = i + 1u) {
            v[i] = weight[base + i * row_len];
        }
    } else if (params.mode == 1u) {
        let co = depth / kk;
        let tap = depth % kk;
        let base = ((g * cout_g() + co) * cin_g() + first) * kk + tap;
        for (var i = 0u; i < count; i = i + 1u) {
            v[i] = weight[base + i * kk];
        }
    } else {
        let plane = params.oh * params.ow;
        let b = depth / plane;
        let at = depth % plane;
        let base = (b * params.cout + g * cout_g() + first) * plane + at;
        for (var i = 0u; i < count; i = i + 1u) {
            v[i] = dy[base + i * plane];
        }
    }
    return v;
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

// A 16 x 16 workgroup computes a 64 x 128 tile of the product (rows x columns), each
// invocation a 4 x 8 block, stepping through the depth 8 at a time.
@compute @workgroup_size(16, 16, 1)
fn tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let shape = product_shape();
    let g = wid.z;
    let local = lid.y * 16u + lid.x;
    // The first 128 invocations each fill one slot of tile_a per step, all 256 one of tile_b.
    let a_depth = local % DEPTH;
    let a_rows = wid.y * ROWS + (local / DEPTH) * 4u;
    let a_count = min(4u, max(shape.x, a_rows) - a_rows);
    let b_depth = local / COLUMN_QUADS;
    let b_cols = wid.x * COLUMNS + (local % COLUMN_QUADS) * 4u;
    let cols = columns_of(g, b_cols, min(4u, max(shape.y, b_cols) - b_cols));
    // acc[2 i + h] holds row i of the block, columns 4h .. 4h + 4.
    var acc: array<vec4<f32>, 8>;
    let steps = (shape.z + DEPTH - 1u) / DEPTH;
    for (var t = 0u; t < steps; t = t + 1u) {
        if (local < ROW_QUADS * DEPTH) {
            let da = t * DEPTH + a_depth;
            var av = vec4<f32>(0.0);
            if (da < shape.z) {
                av = left4(g, a_rows, a_count, da);
            }
            tile_a[a_depth * ROW_QUADS + local / DEPTH] = av;
        }
        let db = t * DEPTH + b_depth;
        var bv = vec4<f32>(0.0);
        if (db < shape.z) {
            bv = right4(db, cols);
        }
        tile_b[b_depth * COLUMN_QUADS + local % COLUMN_QUADS] = bv;
        workgroupBarrier();
        for (var i = 0u; i < DEPTH; i = i + 1u) {
            let a4 = tile_a[i * ROW_QUADS + lid.y];
            let b0 = tile_b[i * COLUMN_QUADS + lid.x * 2u];
            let b1 = tile_b[i * COLUMN_QUADS + lid.x * 2u + 1u];
            acc[0] += a4.x * b0;
            acc[1] += a4.x * b1;
            acc[2] += a4.y * b0;
            acc[3] += a4.y * b1;
            acc[4] += a4.z * b0;
            acc[5] += a4.z * b1;
            acc[6] += a4.w * b0;
            acc[7] += a4.w * b1;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = wid.y * ROWS + lid.y * 4u + i;
        if (row >= shape.x) {
            break;
        }
        for (var j = 0u; j < 8u; j = j + 1u) {
            let column = wid.x * COLUMNS + lid.x * 8u + j;
            if (column < shape.y) {
                store(g, row, column, acc[2u * i + j / 4u][j % 4u]);
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

// The plane (batch, channel) a depthwise workgroup works on; planes past 65,535 continue in z.
fn depthwise_plane(wid: vec3<u32>) -> u32 {
    return wid.y + wid.z * 65535u;
}

// (row, column) of the first value of the 16 x 16 tile workgroup x covers, in a plane
// `width` wide.
fn tile_origin(wid: vec3<u32>, width: u32) -> vec2<u32> {
    let tiles_x = (width + 15u) / 16u;
    return vec2<u32>((wid.x / tiles_x) * 16u, (wid.x % tiles_x) * 16u);
}

// Forward depthwise convolution (cin_g = 1): output tile 16 x 16 of plane (b, co); its input
// window, (15 stride + (k - 1) dilation + 1) squared values of input channel co / cout_g,
// is read once into `staged`. The host checks that the window fits.
@compute @workgroup_size(16, 16, 1)
fn depthwise(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let plane = depthwise_plane(wid);
    // Uniform across the workgroup, like everything the barrier depends on below.
    let valid = plane < params.n * params.cout;
    let origin = tile_origin(wid, params.ow);
    let oy0 = origin.x;
    let ox0 = origin.y;
    let b = plane / params.cout;
    let co = plane % params.cout;
    let span = 15u * params.stride + (params.k - 1u) * params.dilation + 1u;
    let iy0 = i32(oy0 * params.stride) - i32(params.padding);
    let ix0 = i32(ox0 * params.stride) - i32(params.padding);
    let kk = params.k * params.k;
    let local = lid.y * 16u + lid.x;
    if (valid) {
        for (var i = local; i < span * span; i = i + 256u) {
            staged[i] = x_at(b, co / cout_g(), iy0 + i32(i / span), ix0 + i32(i % span));
        }
        if (local < kk) {
            taps[local] = weight[co * kk + local];
        }
    }
    workgroupBarrier();
    let oy = oy0 + lid.y;
    let ox = ox0 + lid.x;
    if (!valid || oy >= params.oh || ox >= params.ow) {
        return;
    }
    var acc = 0.0;
    for (var ky = 0u; ky < params.k; ky = ky + 1u) {
        let row = (lid.y * params.stride + ky * params.dilation) * span + lid.x * params.stride;
        for (var kx = 0u; kx < params.k; kx = kx + 1u) {
            acc = acc + staged[row + kx * params.dilation] * taps[ky * params.k + kx];
        }
    }
    y[(plane * params.oh + oy) * params.ow + ox] = acc;
}

// First output row (or column) whose window reaches input row `i0` of a tile: the smallest
// o with o stride >= i0 + padding - (k - 1) dilation, and not below 0.
fn first_reaching(i0: u32) -> u32 {
    let t = i32(i0 + params.padding) - i32((params.k - 1u) * params.dilation);
    if (t <= 0) {
        return 0u;
    }
    return (u32(t) + params.stride - 1u) / params.stride;
}

// Input gradient of a depthwise convolution (cin_g = 1): input tile 16 x 16 of plane (b, ci);
// for each of the group's cout_g output channels, the window of dy the tile receives from,
// ((15 + (k - 1) dilation) / stride + 2) squared values, is staged in `staged`.
@compute @workgroup_size(16, 16, 1)
fn depthwise_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let plane = depthwise_plane(wid);
    let valid = plane < params.n * params.cin;
    let origin = tile_origin(wid, params.w);
    let iy0 = origin.x;
    let ix0 = origin.y;
    let b = plane / params.cin;
    let ci = plane % params.cin;
    let span = (15u + (params.k - 1u) * params.dilation) / params.stride + 2u;
    let oy_lo = first_reaching(iy0);
    let ox_lo = first_reaching(ix0);
    let iy = iy0 + lid.y;
    let ix = ix0 + lid.x;
    let kk = params.k * params.k;
    let stride = i32(params.stride);
    let dilation = i32(params.dilation);
    // dilation = step stride + rest.
    let step = dilation / stride;
    let rest = dilation % stride;
    let local = lid.y * 16u + lid.x;
    var acc = 0.0;
    for (var c = 0u; c < cout_g(); c = c + 1u) {
        let co = ci * cout_g() + c;
        let base = (b * params.cout + co) * params.oh * params.ow;
        workgroupBarrier();
        if (valid) {
            if (local < kk) {
                taps[local] = weight[co * kk + local];
            }
            for (var i = local; i < span * span; i = i + 256u) {
                let oy = oy_lo + i / span;
                let ox = ox_lo + i % span;
                var v = 0.0;
                if (oy < params.oh && ox < params.ow) {
                    v = dy[base + oy * params.ow + ox];
                }
                staged[i] = v;
            }
        }
        workgroupBarrier();
        if (valid && iy < params.h && ix < params.w) {
            // ty = iy + padding - ky dilation = oy stride + ry with 0 <= ry < stride, tracked
            // as ky grows without dividing (and likewise tx for kx): only taps with ry = 0
            // (and rx = 0) reach an output.
            var ty = i32(iy + params.padding);
            var oy = ty / stride;
            var ry = ty % stride;
            for (var ky = 0u; ky < params.k; ky = ky + 1u) {
                if (ty >= 0 && ry == 0) {
                    let row = u32(oy - i32(oy_lo)) * span;
                    var tx = i32(ix + params.padding);
                    var ox = tx / stride;
                    var rx = tx % stride;
                    for (var kx = 0u; kx < params.k; kx = kx + 1u) {
                        if (tx >= 0 && rx == 0) {
                            acc = acc + staged[row + u32(ox - i32(ox_lo))] * taps[ky * params.k + kx];
                        }
                        tx = tx - dilation;
                        ox = ox - step;
                        rx = rx - rest;
                        if (rx < 0) {
                            rx = rx + stride;
                            ox = ox - 1;
                        }
                    }
                }
                ty = ty - dilation;
                oy = oy - step;
                ry = ry - rest;
                if (ry < 0) {
                    ry = ry + stride;
                    oy = oy - 1;
                }
            }
        }
    }
    if (valid && iy < params.h && ix < params.w) {
        y[(plane * params.h + iy) * params.w + ix] = acc;
    }
}

// Weight gradient of a depthwise convolution (cin_g = 1): one workgroup per output channel.
// For each tap, the invocations split the output rows (b, oy) between them, walk each row's
// columns without any division, and the workgroup sums their shares.
@compute @workgroup_size(256, 1, 1)
fn depthwise_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let co = depthwise_plane(wid);
    let valid = co < params.cout;
    let kk = params.k * params.k;
    let channel = co / cout_g();
    let rows = params.n * params.oh;
    let pad = i32(params.padding);
    for (var tap = 0u; tap < kk; tap = tap + 1u) {
        let ky = i32((tap / params.k) * params.dilation) - pad;
        let kx = i32((tap % params.k) * params.dilation) - pad;
        var acc = 0.0;
        if (valid) {
            for (var r = lid.x; r < rows; r = r + 256u) {
                let b = r / params.oh;
                let oy = r % params.oh;
                let iy = i32(oy * params.stride) + ky;
                if (iy < 0 || iy >= i32(params.h)) {
                    continue;
                }
                let dy_row = ((b * params.cout + co) * params.oh + oy) * params.ow;
                let x_row = ((b * params.cin + channel) * params.h + u32(iy)) * params.w;
                for (var ox = 0u; ox < params.ow; ox = ox + 1u) {
                    let ix = i32(ox * params.stride) + kx;
                    if (ix >= 0 && ix < i32(params.w)) {
                        acc = acc + dy[dy_row + ox] * x[x_row + u32(ix)];
                    }
                }
            }
        }
        partial[lid.x] = acc;
        workgroupBarrier();
        for (var stride = 128u; stride > 0u; stride = stride / 2u) {
            if (lid.x < stride) {
                partial[lid.x] = partial[lid.x] + partial[lid.x + stride];
            }
            workgroupBarrier();
        }
        if (valid && lid.x == 0u) {
            y[co * kk + tap] = partial[0];
        }
        workgroupBarrier();
    }
}
