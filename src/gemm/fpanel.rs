//! The blocked GEMM driver for f32 FMA micro-kernels over FP8 → f32 panels (AVX2+FMA, NEON).
//!
//! Panels hold f32 values (every FP8 value is exactly an f32), K padded to an even length with
//! `+0`, rows (A) and columns (B) past the edge padded with `+0`. A micro-kernel computes a full
//! `MR × NR` tile over one K block of at most [`KB`] pairs, from zero, and per pair runs
//! `acc = fma(a[2p+1], b[2p+1], acc)` then `acc = fma(a[2p], b[2p], acc)`: the products are
//! exact, so each fused step rounds exactly as the reference's `even + (odd + acc)` does; the
//! padding adds `(+0)·(+0) = +0`, as the reference's missing odd term. The first block's sums
//! are stored into the tile, later ones added (`total + s_j`), so the result is bit-identical to
//! [`super::scalar::dot`] for any blocking.
//!
//! Layout: a K chunk is `2·KB` f32 rows (`k` values). A packed B column block is a sequence of
//! micro-panels, each `[kpad][NR]` (chunks consecutive); a packed A row block is
//! `[chunk][panel][k in chunk][MR]`, so that one sweep over the row panels of a chunk reads one
//! contiguous stream.

use super::registry::{F32_PANEL_BLOCKING, MC_MAX_PANELS};
use super::{KB, Problem, scalar};

/// K values per chunk.
const KCH: usize = 2 * KB;

/// A micro-kernel: one K block of `kp ≤ KB` pairs over a full `MR × NR` tile at `a` (`[2kp][MR]`)
/// and `b` (`[2kp][NR]`), stored into `tile[i·NR + j]` (or added to it when `add`).
pub(crate) type Micro =
    unsafe fn(kp: usize, a: *const f32, b: *const f32, tile: *mut f32, add: bool);

/// Row and column block sizes `(mc, nc)` (multiples of `MR` and `NR`): a packed row (column)
/// holds K padded to whole chunks, one f32 per element ([`F32_PANEL_BLOCKING`]).
pub(crate) fn blocking<const MR: usize, const NR: usize>(
    m: usize,
    n: usize,
    k: usize,
) -> (usize, usize) {
    let kpad = k.div_ceil(KCH).max(1) * KCH;
    F32_PANEL_BLOCKING.block_sizes(MR, NR, 4 * kpad, m, n)
}

/// Workspace bytes for a problem of this size (any orientation: `m` and `n` are bounded by
/// their maximum).
pub(crate) fn workspace_size<const MR: usize, const NR: usize>(
    m: usize,
    n: usize,
    k: usize,
) -> usize {
    let (mc, nc) = blocking::<MR, NR>(m.max(n), m.max(n), k);
    let kpad = k.div_ceil(KCH).max(1) * KCH;
    (mc + nc)
        .saturating_mul(kpad)
        .saturating_mul(4)
        .saturating_add(MC_MAX_PANELS * MR * NR * 4 + 64)
}

/// Packs `wn ≤ width` rows (A: rows; B: columns) of `k` FP8 codes, element `(w, t)` at
/// `src + w·ws + t·ks`, into f32 rows of `width` values per `t`, chunk `c` at `dst + c·cstride`
/// and row `t` of a chunk at `(t mod KCH)·width`; `t` runs to `kpad` (even), padding with `+0`.
///
/// # Safety
/// Every `(w, t)` with `w < wn`, `t < k` is readable; `dst` is writable for the panel.
#[allow(clippy::too_many_arguments)]
unsafe fn pack(
    src: *const u8,
    ws: isize,
    ks: isize,
    wn: usize,
    width: usize,
    k: usize,
    lut: &[f32; 256],
    dst: *mut f32,
    cstride: usize,
) {
    let kpad = k.div_ceil(2) * 2;
    for t in 0..kpad {
        // SAFETY: the row lies inside the panel (caller's contract).
        let row = unsafe { dst.add((t / KCH) * cstride + (t % KCH) * width) };
        for w in 0..width {
            let x = if w < wn && t < k {
                // SAFETY: (w, t) is readable (caller's contract).
                lut[unsafe { *src.offset(w as isize * ws + t as isize * ks) } as usize]
            } else {
                0.0
            };
            // SAFETY: w < width, inside the row.
            unsafe { *row.add(w) = x };
        }
    }
}

/// The blocked GEMM of a validated problem with `k > 0` on the calling thread.
///
/// # Safety
/// `p` validated; `micro` runnable on this CPU; `ws` holds at least
/// `workspace_size::<MR, NR>(p.m, p.n, p.k)` bytes.
pub(crate) unsafe fn run<const MR: usize, const NR: usize>(
    p: &Problem,
    ws: &mut [u8],
    micro: Micro,
) {
    let (m, n, k) = (p.m, p.n, p.k);
    let kp = k.div_ceil(2);
    let kpad = 2 * kp;
    let chunks = kpad.div_ceil(KCH);
    let (mc, nc) = blocking::<MR, NR>(m, n, k);
    let base = ws.as_mut_ptr();
    // A block: chunks of (panels · KCH · MR) floats.
    let a_cstride = mc.div_ceil(MR) * KCH * MR;
    let a_floats = chunks * a_cstride;
    // SAFETY: the workspace holds 64 alignment bytes, the tiles and both packed blocks
    // (caller's contract; see workspace_size).
    let (tiles, apack, bpack) = unsafe {
        let tiles = base.add(base.align_offset(64)).cast::<f32>();
        let apack = tiles.add(MC_MAX_PANELS * MR * NR);
        (tiles, apack, apack.add(a_floats))
    };
    debug_assert!(
        ws.len() >= base.align_offset(64) + (MC_MAX_PANELS * MR * NR + a_floats + nc * kpad) * 4
    );
    let (la, lb) = (scalar::f32_lut(p.a_fmt), scalar::f32_lut(p.b_fmt));
    for jc in (0..n).step_by(nc) {
        let ncur = nc.min(n - jc);
        for jr in (0..ncur).step_by(NR) {
            // SAFETY: columns jc + jr .. of B are inside the validated B; the panel (kpad·NR
            // floats, chunks KCH·NR apart) fits in the packed block.
            unsafe {
                pack(
                    p.b.wrapping_offset((jc + jr) as isize * p.csb),
                    p.csb,
                    p.rsb,
                    NR.min(ncur - jr),
                    NR,
                    k,
                    lb,
                    bpack.add(jr * kpad),
                    KCH * NR,
                );
            }
        }
        for ic in (0..m).step_by(mc) {
            let mcur = mc.min(m - ic);
            for ir in (0..mcur).step_by(MR) {
                // SAFETY: as for B; panel ir/MR of each chunk.
                unsafe {
                    pack(
                        p.a.wrapping_offset((ic + ir) as isize * p.rsa),
                        p.rsa,
                        p.csa,
                        MR.min(mcur - ir),
                        MR,
                        k,
                        la,
                        apack.add(ir * KCH),
                        a_cstride,
                    );
                }
            }
            for jr in (0..ncur).step_by(NR) {
                let cols = NR.min(ncur - jr);
                for c in 0..chunks {
                    let kb = KB.min(kp - c * KB);
                    for ir in (0..mcur).step_by(MR) {
                        // SAFETY: chunk c of both packed panels; tile ir/MR.
                        unsafe {
                            micro(
                                kb,
                                apack.add(c * a_cstride + ir * KCH),
                                bpack.add(jr * kpad + c * KCH * NR),
                                tiles.add(ir * NR),
                                c > 0,
                            );
                        }
                        if c + 1 == chunks {
                            // SAFETY: the tile's block of C is inside the validated C.
                            unsafe {
                                let t = core::slice::from_raw_parts(tiles.add(ir * NR), MR * NR);
                                let rows = MR.min(mcur - ir);
                                scalar::write_tile(p, t, NR, ic + ir, jc + jr, rows, cols);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The portable model of the micro-kernels (same operations, scalar fused multiply-adds); used by tests of
/// the driver on any target.
///
/// # Safety
/// As [`Micro`].
#[cfg(test)]
pub(crate) unsafe fn micro_model<const MR: usize, const NR: usize>(
    kp: usize,
    a: *const f32,
    b: *const f32,
    tile: *mut f32,
    add: bool,
) {
    for i in 0..MR {
        for j in 0..NR {
            let mut acc = 0.0f32;
            for q in 0..kp {
                // SAFETY: inside the panels (caller's contract).
                unsafe {
                    let (ao, bo) = (*a.add((2 * q + 1) * MR + i), *b.add((2 * q + 1) * NR + j));
                    let (ae, be) = (*a.add(2 * q * MR + i), *b.add(2 * q * NR + j));
                    acc = libm::fmaf(ao, bo, acc);
                    acc = libm::fmaf(ae, be, acc);
                }
            }
            // SAFETY: inside the tile.
            unsafe {
                let t = tile.add(i * NR + j);
                *t = if add { *t + acc } else { acc };
            }
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::fp8::Fp8Format;

    /// The driver with the portable model kernel against the reference, bit for bit, on shapes
    /// that cut every block (several chunks, row and column blocks, edge panels) and on
    /// strided (transposed) operands.
    #[test]
    fn driver_with_model_kernel_matches_reference() {
        let mut s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        println!("seed {s}");
        let mut next = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as u32
        };
        for &(m, n, k, t) in &[
            (1, 1, 1, false),
            (7, 17, 3, true),
            (13, 33, 513, false),
            (100, 70, 1100, true),
            (9, 300, 2600, false),
        ] {
            let a: Vec<u8> = (0..m * k).map(|_| next() as u8 & 0x7E).collect();
            let b: Vec<u8> = (0..k * n).map(|_| next() as u8 & 0xFB).collect();
            let mut got = vec![f32::NAN; m * n];
            let mut want = vec![f32::NAN; m * n];
            let problem = |c: &mut Vec<f32>| Problem {
                m,
                n,
                k,
                alpha: 0.75,
                beta: 0.0,
                a: a.as_ptr(),
                a_fmt: Fp8Format::E4M3,
                rsa: if t { 1 } else { k as isize },
                csa: if t { m as isize } else { 1 },
                b: b.as_ptr(),
                b_fmt: Fp8Format::E5M2,
                rsb: if t { 1 } else { n as isize },
                csb: if t { k as isize } else { 1 },
                c: c.as_mut_ptr().cast(),
                c_type: DType::F32,
                rsc: n as isize,
                csc: 1,
            };
            let mut ws = vec![0u8; workspace_size::<5, 7>(m, n, k)];
            // SAFETY: the views lie inside their buffers; the workspace is sized for them.
            unsafe {
                run::<5, 7>(&problem(&mut got), &mut ws, micro_model::<5, 7>);
                scalar::run(&problem(&mut want));
            }
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "{m}x{n}x{k} t={t} element {i}");
            }
        }
    }
}
