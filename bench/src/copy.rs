//! The yardsticks: a plain `copy_from_slice` and a non-temporal-store copy.

use crate::timing::{chunk_len, par_for};

/// Copies `src` into `dst` (same length) with `copy_from_slice`, split over `threads`.
pub fn copy(src: &[u8], dst: &mut [u8], threads: usize) {
    let c = chunk_len(src.len(), threads);
    let parts: Vec<_> = src.chunks(c).zip(dst.chunks_mut(c)).collect();
    par_for(parts, &|(s, d): (&[u8], &mut [u8])| d.copy_from_slice(s));
}

/// Whether [`nt_copy`] really uses non-temporal stores here.
pub const NT_AVAILABLE: bool = cfg!(target_arch = "x86_64");

/// Copies `src` into `dst` with non-temporal (streaming) 16-byte stores where the CPU has them
/// (x86-64: SSE2 `movntdq`, part of the baseline), split over `threads`; elsewhere a plain copy.
pub fn nt_copy(src: &[u8], dst: &mut [u8], threads: usize) {
    // Split on 64-byte multiples so every piece streams whole lines.
    let c = chunk_len(src.len(), threads).next_multiple_of(64);
    let parts: Vec<_> = src.chunks(c).zip(dst.chunks_mut(c)).collect();
    par_for(parts, &|(s, d): (&[u8], &mut [u8])| nt_copy_one(s, d));
}

#[cfg(target_arch = "x86_64")]
fn nt_copy_one(src: &[u8], dst: &mut [u8]) {
    use core::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
    assert_eq!(src.len(), dst.len());
    // Plain-copy the head up to a 16-byte-aligned destination, stream the middle, plain tail.
    let head = dst.as_ptr().align_offset(16).min(dst.len());
    dst[..head].copy_from_slice(&src[..head]);
    let body = (dst.len() - head) / 64 * 64;
    let (s, d) = (&src[head..head + body], &mut dst[head..head + body]);
    let (sp, dp) = (s.as_ptr(), d.as_mut_ptr());
    let mut i = 0;
    while i < body {
        // SAFETY: i + 64 <= body, so all four 16-byte loads and stores are in bounds; `dp + i`
        // is 16-byte aligned (head aligned it, i is a multiple of 64) as movntdq requires; SSE2
        // is part of the x86-64 baseline.
        unsafe {
            let a = _mm_loadu_si128(sp.add(i).cast::<__m128i>());
            let b = _mm_loadu_si128(sp.add(i + 16).cast::<__m128i>());
            let c = _mm_loadu_si128(sp.add(i + 32).cast::<__m128i>());
            let e = _mm_loadu_si128(sp.add(i + 48).cast::<__m128i>());
            _mm_stream_si128(dp.add(i).cast::<__m128i>(), a);
            _mm_stream_si128(dp.add(i + 16).cast::<__m128i>(), b);
            _mm_stream_si128(dp.add(i + 32).cast::<__m128i>(), c);
            _mm_stream_si128(dp.add(i + 48).cast::<__m128i>(), e);
        }
        i += 64;
    }
    // SAFETY: sfence has no memory-safety preconditions; it orders the streaming stores.
    unsafe { _mm_sfence() };
    let tail = head + body;
    dst[tail..].copy_from_slice(&src[tail..]);
}

#[cfg(not(target_arch = "x86_64"))]
fn nt_copy_one(src: &[u8], dst: &mut [u8]) {
    dst.copy_from_slice(src);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_exact_at_odd_offsets_and_lengths() {
        let src: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        for off in [0, 1, 5, 17] {
            for len in [0, 1, 63, 64, 65, 1000, 9000] {
                for threads in [1, 2, 3] {
                    let mut d1 = vec![0xAAu8; len + 40];
                    let mut d2 = vec![0xAAu8; len + 40];
                    copy(&src[off..off + len], &mut d1[off..off + len], threads);
                    nt_copy(&src[off..off + len], &mut d2[off..off + len], threads);
                    let mut want = vec![0xAAu8; len + 40];
                    want[off..off + len].copy_from_slice(&src[off..off + len]);
                    assert_eq!(d1, want, "copy off={off} len={len} t={threads}");
                    assert_eq!(d2, want, "nt_copy off={off} len={len} t={threads}");
                }
            }
        }
    }
}
