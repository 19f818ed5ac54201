// C[M, N] = A[M, K] x B[K, N], row-major (either operand may be stored transposed: the
// backward products dA = dC B^T and dB = A^T dC read their operands in place), tiled through workgroup memory with register
// blocking: a 16 x 16 workgroup computes a 64 x 64 tile of C, each invocation a 4 x 4 block
// of it, stepping through K 16 at a time. The tiles hold vec4s so that one invocation reads
// its four rows of A and four columns of B for a depth step in two loads.

struct MatmulParams {
    m: u32,
    k: u32,
    n: u32,
    // Bit 0: A is stored as [K, M]; bit 1: B is stored as [N, K].
    transposed: u32,
}

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

const DEPTH: u32 = 8u;
const SIDE: u32 = 128u;
// vec4s across a tile's side.
const QUADS: u32 = 32u;

// tile_a[d * 32 + r] = A[4r .. 4r + 4, d] and tile_b[d * 32 + q] = B[d, 4q .. 4q + 4],
// relative to the tile's origin.
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

fn a_at(row: u32, depth: u32) -> f32 {
    if (row < params.m && depth < params.k) {
        if ((params.transposed & 1u) != 0u) {
            return a[depth * params.m + row];
        }
        return a[row * params.k + depth];
    }
    return 0.0;
}

fn b_at(depth: u32, column: u32) -> f32 {
    if (depth < params.k && column < params.n) {
        if ((params.transposed & 2u) != 0u) {
            return b[column * params.k + depth];
        }
        return b[depth * params.n + column];
    }
    return 0.0;
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * SIDE;
    let col0 = wid.x * SIDE;
    let local = lid.y * 16u + lid.x;
    // The slot this invocation fills in each tile.
    let a_depth = local % DEPTH;
    let a_quad = local / DEPTH;
    let b_depth = local / QUADS;
    let b_quad = local % QUADS;
    // Rows 8 ly .. 8 ly + 8 by columns 8 lx .. 8 lx + 8: acc[2 i + h] holds row i, columns
    // 4h .. 4h + 4 of the block.
    var acc: array<vec4<f32>, 16>;
    let steps = (params.k + DEPTH - 1u) / DEPTH;
    for (var t = 0u; t < steps; t = t + 1u) {
        let d = t * DEPTH;
        let r = row0 + a_quad * 4u;
        tile_a[a_depth * QUADS + a_quad] = vec4<f32>(
            a_at(r, d + a_depth),
            a_at(r + 1u, d + a_depth),
            a_at(r + 2u, d + a_depth),
            a_at(r + 3u, d + a_depth),
        );
        let q = col0 + b_quad * 4u;
        tile_b[b_depth * QUADS + b_quad] = vec4<f32>(
            b_at(d + b_depth, q),
            b_at(d + b_depth, q + 1u),
            b_at(d + b_depth, q + 2u),
            b_at(d + b_depth, q + 3u),
        );
        workgroupBarrier();
        for (var i = 0u; i < DEPTH; i = i + 1u) {
            let a0 = tile_a[i * QUADS + lid.y * 2u];
            let a1 = tile_a[i * QUADS + lid.y * 2u + 1u];
            let b0 = tile_b[i * QUADS + lid.x * 2u];
            let b1 = tile_b[i * QUADS + lid.x * 2u + 1u];
            acc[0] += a0.x * b0;
            acc[1] += a0.x * b1;
            acc[2] += a0.y * b0;
            acc[3] += a0.y * b1;
            acc[4] += a0.z * b0;
            acc[5] += a0.z * b1;
            acc[6] += a0.w * b0;
            acc[7] += a0.w * b1;
            acc[8] += a1.x * b0;
            acc[9] += a1.x * b1;
            acc[10] += a1.y * b0;
            acc[11] += a1.y * b1;
            acc[12] += a1.z * b0;
            acc[13] += a1.z * b1;
            acc[14] += a1.w * b0;
            acc[15] += a1.w * b1;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 8u; i = i + 1u) {
        let row = row0 + lid.y * 8u + i;
        if (row >= params.m) {
            break;
        }
        for (var j = 0u; j < 8u; j = j + 1u) {
            let column = col0 + lid.x * 8u + j;
            if (column < params.n) {
                c[row * params.n + column] = acc[2u * i + j / 4u][j % 4u];
            }
        }
    }
}
