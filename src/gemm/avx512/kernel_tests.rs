//! Test support shared by the unit tests of the workspace kernels ([`super::decode`],
//! [`super::skinny`]): a seeded generator, FP8 codes, and one random strided case run against
//! the scalar reference bit for bit.

use super::super::{Problem, RawGemm, RawMatrix, scalar, validate};
use crate::dtype::DType;

/// Random bits from the library's counter-based generator: word `i` of stream `seed`.
pub(super) struct Rng(u64, u64);

impl Rng {
    /// A generator seeded from the clock; prints the seed under the test's name.
    pub(super) fn from_clock(test: &str) -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        eprintln!("{test}: seed {seed}");
        Rng(seed, 0)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.1 += 1;
        crate::rng::stochastic_bits(self.0, self.1) as u64
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A code of `t`: finite, or any code (NaN and Inf included) one time in 40 when `special`.
fn code(rng: &mut Rng, t: DType, special: bool) -> u8 {
    loop {
        let c = rng.next() as u8;
        let mag = c & 0x7F;
        let ok = match t {
            DType::E4M3 => mag != 0x7F,
            _ => mag < 0x7C,
        };
        if ok || (special && rng.below(40) == 0) {
            return c;
        }
    }
}

/// A workspace kernel under test.
pub(super) struct Kernel {
    /// Its name in failure messages.
    pub(super) name: &'static str,
    pub(super) fits: fn(&Problem) -> bool,
    pub(super) workspace_bytes: fn(usize) -> usize,
    /// # Safety
    /// A validated problem on live buffers, on a CPU with the kernel's features, and a
    /// workspace of `workspace_bytes(k)` bytes.
    pub(super) run: unsafe fn(&Problem, &mut [u8]),
}

/// One random case of `m × n × k` with `A: ta`, `B: tb` and `C: tc`: A row-major,
/// column-major or with padded rows; B's columns K-contiguous, padded, or in reverse order; C
/// row-major, padded, or with a column stride of 2; α one of 1, 1/16, −3 (by `case`); β 0 or
/// `beta` (always 0 for FP8 C), old C values near ±1 where β reads them, with some Inf and NaN
/// in one case of 7. `special` puts NaN and Inf codes into A and B. The kernel and the scalar reference run on the same validated
/// problem; C must match bit for bit over the whole buffer, with guard elements before and
/// after it, and the kernel's workspace is followed by guard bytes.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_case(
    rng: &mut Rng,
    kernel: &Kernel,
    case: usize,
    (m, n, k): (usize, usize, usize),
    (ta, tb, tc): (DType, DType, DType),
    beta: f32,
    special: bool,
) {
    let pad = 1 + rng.below(5);
    let (rsa, csa, alen) = match rng.below(3) {
        0 => (k as isize, 1, m * k),
        1 => (1, m as isize, m * k),
        _ => ((k + pad) as isize, 1, m * (k + pad)),
    };
    let ldb = (k + rng.below(2) * pad) as isize;
    let (b0, csb) = if rng.below(2) == 0 {
        (0, ldb)
    } else {
        ((n - 1) * ldb as usize, -ldb)
    };
    let blen = n * ldb as usize;
    let (rsc, csc) = match rng.below(3) {
        0 => (n as isize, 1),
        1 => ((n + pad) as isize, 1),
        _ => ((2 * n + pad) as isize, 2),
    };
    let clen = (m - 1) * rsc as usize + (n - 1) * csc as usize + 1 + 16;
    let a: Vec<u8> = (0..alen).map(|_| code(rng, ta, special)).collect();
    let b: Vec<u8> = (0..blen).map(|_| code(rng, tb, special)).collect();
    let mut c0: Vec<u8> = (0..clen * tc.size()).map(|_| rng.next() as u8).collect();
    let beta = if tc.fp8().is_some() || rng.below(2) == 0 {
        0.0
    } else {
        beta
    };
    if beta != 0.0 {
        // Old values where β reads them: bf16 or f32 bits of numbers of either sign near 1, so
        // that β·C does not swamp the product; in one case of 7 also an Inf or NaN in about one
        // element of 16, which β·C must carry into the result as the reference does.
        let top = tc.size() - 1;
        let special_c = case.is_multiple_of(7);
        for e in 0..clen {
            let x = &mut c0[e * tc.size()..(e + 1) * tc.size()];
            let sign = rng.next() as u8 & 0x80;
            if special_c && rng.below(16) == 0 {
                x[top] = 0x7F | sign;
                x[top - 1] |= 0x80;
            } else {
                x[top] = 0x3F | sign;
            }
        }
    }
    let (mut want, mut got) = (c0.clone(), c0);
    let g = |c: &mut Vec<u8>| RawGemm {
        m,
        n,
        k,
        alpha: [1.0, 0.0625, -3.0][case % 3],
        a: RawMatrix {
            ptr: a.as_ptr(),
            dtype: ta,
            row_stride: rsa,
            col_stride: csa,
        },
        b: RawMatrix {
            ptr: b.as_ptr().wrapping_add(b0),
            dtype: tb,
            row_stride: 1,
            col_stride: csb,
        },
        beta,
        c: RawMatrix {
            ptr: c.as_mut_ptr().wrapping_add(8 * tc.size()),
            dtype: tc,
            row_stride: rsc,
            col_stride: csc,
        },
    };
    let pw = validate(&g(&mut want)).unwrap().unwrap();
    let pg = validate(&g(&mut got)).unwrap().unwrap();
    let name = kernel.name;
    assert!((kernel.fits)(&pg), "m={m} n={n} k={k} must fit the {name}");
    let need = (kernel.workspace_bytes)(k);
    let mut ws: Vec<u8> = (0..need + 256).map(|_| rng.next() as u8).collect();
    let guard = ws[need..].to_vec();
    // SAFETY: validated problems on live buffers; the caller checked the CPU features; the
    // workspace holds workspace_bytes(k) bytes.
    unsafe {
        scalar::run(&pw);
        (kernel.run)(&pg, &mut ws[..need]);
    }
    assert_eq!(&ws[need..], &guard[..], "{name}: workspace overrun");
    if want != got {
        let at = want.iter().zip(&got).position(|(x, y)| x != y).unwrap();
        panic!(
            "{name}: m={m} n={n} k={k} {ta:?}·{tb:?}→{tc:?} beta={beta} special={special} \
             A({rsa},{csa}) B(1,{csb}) C({rsc},{csc}): first differing byte {at}: \
             want {:#x} got {:#x}",
            want[at], got[at]
        );
    }
}
