//! Data movement: the streaming copy used for outputs larger than the caches, and the byte
//! transpose of cast-transpose tiles: 16 rows at a time, as four 16×16 blocks side by side
//! in the 128-bit lanes of 16 zmm registers, through four rounds of unpack (8, 16, 32, 64 bits),
//! staged through an aligned 64 × 64 tile so that output rows leave as whole lines.

use core::arch::x86_64::*;

/// One 16 × 64 byte band: `v[i]` holds row `i`; on return `v[c]` holds, in lane `l`, column
/// `16·l + c` (16 bytes, one per row).
#[inline(always)]
fn transpose_band(v: &mut [__m512i; 16]) {
    // SAFETY: all intrinsics below are register-only AVX-512 F/BW operations; the enclosing
    // function enables those features.
    unsafe {
        // Round 1 (bytes): t[2p + h] pairs rows 2p, 2p+1 for columns 8h..8h+8.
        let mut t = [_mm512_setzero_si512(); 16];
        for p in 0..8 {
            t[2 * p] = _mm512_unpacklo_epi8(v[2 * p], v[2 * p + 1]);
            t[2 * p + 1] = _mm512_unpackhi_epi8(v[2 * p], v[2 * p + 1]);
        }
        // Round 2 (16-bit): u[4q + 2h + g] holds rows 4q..4q+4 of columns 8h + 4g + (0..4).
        let mut u = [_mm512_setzero_si512(); 16];
        for q in 0..4 {
            for h in 0..2 {
                let (a, b) = (t[2 * (2 * q) + h], t[2 * (2 * q + 1) + h]);
                u[4 * q + 2 * h] = _mm512_unpacklo_epi16(a, b);
                u[4 * q + 2 * h + 1] = _mm512_unpackhi_epi16(a, b);
            }
        }
        // Round 3 (32-bit): w[8s + 4h + 2g + e] holds rows 8s..8s+8 of columns 8h+4g+2e+(0..2).
        let mut w = [_mm512_setzero_si512(); 16];
        for s in 0..2 {
            for hg in 0..4 {
                let (a, b) = (u[4 * (2 * s) + hg], u[4 * (2 * s + 1) + hg]);
                w[8 * s + 2 * hg] = _mm512_unpacklo_epi32(a, b);
                w[8 * s + 2 * hg + 1] = _mm512_unpackhi_epi32(a, b);
            }
        }
        // Round 4 (64-bit): column 8h + 4g + 2e + x, all 16 rows.
        for hge in 0..8 {
            let (a, b) = (w[hge], w[8 + hge]);
            v[2 * hge] = _mm512_unpacklo_epi64(a, b);
            v[2 * hge + 1] = _mm512_unpackhi_epi64(a, b);
        }
    }
}

/// Transposes one whole 64 × 64 byte tile (`src` rows `ld_src` apart) into `dst` (rows
/// `ld_dst` apart); `stream` allows streaming stores. Each 16-row band is transposed in registers and parked whole in `tile`
/// (band `b`, register `c` at line `16·b + c`); then, for each `c`, the four bands' registers
/// swap 128-bit lanes (a 4 × 4 transpose of lanes) into the four output rows `16·l + c`, each
/// written with one 64-byte store: streaming when allowed and it is a whole aligned line.
///
/// # Safety
/// `src` valid for 64 rows of 64 bytes, `dst` for 64 rows of 64 bytes; `tile` 64-byte aligned
/// and valid for 4096 bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn transpose_tile_64(
    src: *const u8,
    ld_src: usize,
    dst: *mut u8,
    ld_dst: usize,
    tile: *mut u8,
    stream: bool,
) {
    for b in 0..4 {
        // SAFETY: rows 16·b + i < 64 of the source tile (contract).
        let mut v: [__m512i; 16] = core::array::from_fn(|i| unsafe {
            _mm512_loadu_si512(src.add((16 * b + i) * ld_src).cast())
        });
        transpose_band(&mut v);
        for (c, col) in v.iter().enumerate() {
            // SAFETY: line 16·b + c < 64 of the aligned tile.
            unsafe { _mm512_store_si512(tile.add((16 * b + c) * 64).cast(), *col) };
        }
    }
    let nt = stream && (dst as usize).is_multiple_of(64) && ld_dst.is_multiple_of(64);
    for c in 0..16 {
        // SAFETY: lines c, 16 + c, 32 + c, 48 + c of the aligned tile.
        let [a0, a1, a2, a3]: [__m512i; 4] = core::array::from_fn(|b| unsafe {
            _mm512_load_si512(tile.add((16 * b + c) * 64).cast())
        });
        // Lane l of band b's register holds column 16·l + c for rows 16·b..16·b + 16.
        let t0 = _mm512_shuffle_i64x2::<0b01_00_01_00>(a0, a1);
        let t1 = _mm512_shuffle_i64x2::<0b01_00_01_00>(a2, a3);
        let t2 = _mm512_shuffle_i64x2::<0b11_10_11_10>(a0, a1);
        let t3 = _mm512_shuffle_i64x2::<0b11_10_11_10>(a2, a3);
        let rows = [
            _mm512_shuffle_i64x2::<0b10_00_10_00>(t0, t1),
            _mm512_shuffle_i64x2::<0b11_01_11_01>(t0, t1),
            _mm512_shuffle_i64x2::<0b10_00_10_00>(t2, t3),
            _mm512_shuffle_i64x2::<0b11_01_11_01>(t2, t3),
        ];
        for (l, row) in rows.into_iter().enumerate() {
            // SAFETY: output row 16·l + c < 64, 64 bytes (contract); aligned when streamed.
            unsafe {
                let d = dst.add((16 * l + c) * ld_dst);
                if nt {
                    _mm512_stream_si512(d.cast(), row);
                } else {
                    _mm512_storeu_si512(d.cast(), row);
                }
            }
        }
    }
}

/// A 64 × 64 byte staging tile, aligned so its rows are whole cache lines (used only through
/// raw pointers).
#[repr(align(64))]
struct Tile(#[allow(dead_code)] [u8; 64 * 64]);

/// See [`crate::backend::Kernels::transpose_u8`]. Works on 64 × 64 tiles: four 16-row bands
/// are transposed in registers into an aligned staging tile, then each output row segment is
/// written with one 64-byte store (with `stream`, a streaming store when it is a whole aligned
/// line, so the scattered output lines need no read-for-ownership).
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn transpose_u8(
    src: *const u8,
    ld_src: usize,
    rows: usize,
    cols: usize,
    dst: *mut u8,
    ld_dst: usize,
    stream: bool,
) {
    // Whole tiles write every line of the staging tile before reading it; partial tiles read
    // whole lines of which they wrote only some bytes, so the tile is cleared before the first
    // partial one (clearing it up front measured ~10% of a 64 × 64 cast-transpose).
    let mut tile = core::mem::MaybeUninit::<Tile>::uninit();
    let t = tile.as_mut_ptr().cast::<u8>();
    let mut cleared = false;
    let mut r0 = 0;
    while r0 < rows {
        let rh = (rows - r0).min(64);
        let row_mask: __mmask64 = if rh == 64 { u64::MAX } else { (1u64 << rh) - 1 };
        let mut c0 = 0;
        while c0 < cols {
            let width = (cols - c0).min(64);
            if rh == 64 && width == 64 {
                // SAFETY: a whole tile: source rows r0..r0 + 64, bytes c0..c0 + 64; output rows
                // c0..c0 + 64, bytes r0..r0 + 64 (contract); the staging tile is aligned.
                unsafe {
                    transpose_tile_64(
                        src.add(r0 * ld_src + c0),
                        ld_src,
                        dst.add(c0 * ld_dst + r0),
                        ld_dst,
                        t,
                        stream,
                    )
                };
                c0 += 64;
                continue;
            }
            let load_mask: __mmask64 = if width == 64 {
                u64::MAX
            } else {
                (1u64 << width) - 1
            };
            if !cleared {
                // SAFETY: the tile holds 4096 bytes.
                unsafe { core::ptr::write_bytes(t, 0, 64 * 64) };
                cleared = true;
            }
            let mut rb = 0;
            while rb < rh {
                let band = (rh - rb).min(16);
                let mut v = [_mm512_setzero_si512(); 16];
                for (i, row) in v.iter_mut().enumerate().take(band) {
                    // SAFETY: row r0 + rb + i < rows, bytes c0..c0 + width < cols (masked load).
                    *row = unsafe {
                        _mm512_maskz_loadu_epi8(
                            load_mask,
                            src.add((r0 + rb + i) * ld_src + c0).cast(),
                        )
                    };
                }
                transpose_band(&mut v);
                for (c, col) in v.iter().enumerate() {
                    let lanes = [
                        _mm512_castsi512_si128(*col),
                        _mm512_extracti32x4_epi32::<1>(*col),
                        _mm512_extracti32x4_epi32::<2>(*col),
                        _mm512_extracti32x4_epi32::<3>(*col),
                    ];
                    for (l, lane) in lanes.into_iter().enumerate() {
                        // SAFETY: staging row 16·l + c < 64, bytes rb..rb + 16 <= 64 (aligned).
                        unsafe { _mm_store_si128(t.add((16 * l + c) * 64 + rb).cast(), lane) };
                    }
                }
                rb += band;
            }
            for out_row in 0..width {
                // SAFETY: staging row out_row is 64-byte aligned; the output row c0 + out_row <
                // cols receives bytes r0..r0 + rh < rows.
                unsafe {
                    let line = _mm512_load_si512(t.add(out_row * 64).cast());
                    let d = dst.add((c0 + out_row) * ld_dst + r0);
                    if stream && rh == 64 && (d as usize).is_multiple_of(64) {
                        _mm512_stream_si512(d.cast(), line);
                    } else {
                        _mm512_mask_storeu_epi8(d.cast(), row_mask, line);
                    }
                }
            }
            c0 += width;
        }
        r0 += rh;
    }
}

/// See [`crate::backend::Kernels::stream_copy`]: plain stores up to the first 64-byte boundary
/// of `dst`, `vmovntdq` for the whole 64-byte lines, a masked store for the rest.
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn stream_copy(src: *const u8, dst: *mut u8, bytes: usize) {
    let head = (dst as usize).wrapping_neg() & 63;
    if bytes < head + 64 {
        // SAFETY: both ranges valid and disjoint (contract).
        unsafe { core::ptr::copy_nonoverlapping(src, dst, bytes) };
        return;
    }
    // SAFETY: head < bytes; both ranges valid and disjoint (contract).
    unsafe { core::ptr::copy_nonoverlapping(src, dst, head) };
    let mut i = head;
    while i + 64 <= bytes {
        // SAFETY: [i, i + 64) is in bounds and dst + i is 64-byte aligned.
        unsafe { _mm512_stream_si512(dst.add(i).cast(), _mm512_loadu_si512(src.add(i).cast())) };
        i += 64;
    }
    if i < bytes {
        let mask: __mmask64 = (1u64 << (bytes - i)) - 1;
        // SAFETY: masked lanes [i, bytes) are in bounds.
        unsafe {
            _mm512_mask_storeu_epi8(
                dst.add(i).cast(),
                mask,
                _mm512_maskz_loadu_epi8(mask, src.add(i).cast()),
            )
        };
    }
}
