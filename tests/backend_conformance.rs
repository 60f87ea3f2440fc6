//! Conformance of every available SIMD back end (and each variant of it that this CPU supports)
//! with the scalar reference tables, kernel by kernel, bit for bit.
//!
//! Inputs are random (seeded from the clock; the seed is printed, and `UNITFP8_TEST_SEED`
//! replays it) with many special values: NaN payloads, ±Inf, ±0, f32 denormals, ties and
//! neighbours of ties at every target precision, overflow thresholds. Every length 0..=130 and
//! some large odd ones run with inputs and outputs misaligned by 0..3 bytes, outputs poisoned and
//! guard bytes around every buffer checked untouched, plus the in-place aliasing the contract
//! allows. The encoders also sweep ≥ 2^22 f32 patterns (a stride through all 2^32, every
//! rounding boundary of E4M3, E5M2, f16 and bf16), the decoders every 16-bit pattern and FP8
//! code, and everything runs again under the denormal modes (MXCSR DAZ/FTZ, FPCR.FZ). The public
//! drivers are also compared through [`Exec`] (every type pair, cast-transpose, residual mixes
//! with aliasing, 1–3 threads). Generic over back ends, so the same file checks NEON under qemu
//! (`scripts/test-aarch64.sh`, also on a baseline Cortex-A53).

use half::{bf16, f16};
use unitfp8::backend::{Backend, EncodeArgs, Kernels, scalar};
use unitfp8::rng::StreamKey;
use unitfp8::{CastParams, DType, E4M3, E5M2, Exec, Fp8Format, MixParams, Rounding};

// ---------------------------------------------------------------------------------------------
// Test infrastructure

mod common;
use common::{GuardBuf, Rng};

/// Every SIMD kernel table this machine can run: each available AVX-512 variant on x86-64, and
/// the table of every other available non-scalar back end.
fn simd_tables() -> Vec<(String, &'static Kernels)> {
    let mut v: Vec<(String, &'static Kernels)> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    for var in unitfp8::backend::avx512::variants() {
        if var.is_available() {
            v.push((format!("avx512/{}", var.name), var.kernels));
        }
    }
    for b in Backend::ALL {
        if b == Backend::Scalar || (cfg!(target_arch = "x86_64") && b == Backend::Avx512) {
            continue;
        }
        if let Ok(k) = b.kernels() {
            v.push((b.name().to_string(), k));
        }
    }
    if v.is_empty() {
        println!("WARNING: no SIMD back end is available on this machine; nothing to compare");
    } else {
        let names: Vec<&str> = v.iter().map(|(n, _)| n.as_str()).collect();
        println!("checking {names:?}");
    }
    v
}

/// Values that stress every rounding path. Returned as f32 bits.
fn interesting_bits(rng: &mut Rng) -> u32 {
    const SPECIAL: &[u32] = &[
        0x0000_0000,
        0x7F80_0000, // Inf
        0x7FC0_0000, // canonical NaN
        0x7F80_0001, // signalling NaN, low payload
        0x7FBF_FFFF, // signalling NaN, full payload
        0x7FFF_FFFF,
        0x7FA0_0000,
        0x7FC0_1234,
        0x0000_0001, // smallest denormal
        0x007F_FFFF, // largest denormal
        0x0040_0000,
        0x0080_0000, // MIN_POSITIVE
        0x7F7F_FFFF, // MAX
        0x3F80_0000, // 1
        0x43E0_0000, // 448
        0x43E8_0000, // 464
        0x43F0_0000, // 480
        0x4760_0000, // 57344
        0x4770_0000, // 61440
        0x4780_0000, // 65536
        0x477F_E000, // 65504
        0x477F_F000, // 65520
        0x3C80_0000, // 2^-6
        0x3B00_0000, // 2^-9
        0x3A80_0000, // 2^-10
        0x3880_0000, // 2^-14
        0x3780_0000, // 2^-16
        0x3700_0000, // 2^-17
        0x3380_0000, // 2^-24
        0x3300_0000, // 2^-25
        0x4380_0000, // 256
        0x4700_0000, // 32768
    ];
    let sign = if rng.u32() & 1 == 1 { 0x8000_0000 } else { 0 };
    let mag = match rng.below(12) {
        0 => return rng.u32(),
        1 | 2 => rng.pick(SPECIAL),
        3 => {
            // Near a special value.
            let b = rng.pick(SPECIAL) as i64 + rng.below(9) as i64 - 4;
            b.clamp(0, 0x7FFF_FFFF) as u32
        }
        4 | 5 => {
            // A tie (or a neighbour) at one of the target precisions: bf16, f16, E4M3, E5M2.
            let dropped = rng.pick(&[16u32, 13, 20, 21]);
            let exp = 127 - 30 + rng.below(48) as u32;
            let kept = rng.u32() & (0x7F_FFFF & !((1 << dropped) - 1));
            let tie = (exp << 23) | kept | (1 << (dropped - 1));
            (tie as i64 + rng.below(5) as i64 - 2) as u32 & 0x7FFF_FFFF
        }
        6 => {
            // A tie among FP8 / f16 subnormals: (2j + 1) · 2^-(unit + 1), or a neighbour.
            let unit_exp: i32 = rng.pick(&[-9, -16, -24]);
            let j = rng.below(16) as f32;
            let v = (2.0 * j + 1.0) * 2f32.powi(unit_exp - 1);
            (v.to_bits() as i64 + rng.below(5) as i64 - 2) as u32
        }
        7 => rng.u32() & 0x007F_FFFF, // denormal
        _ => {
            // A moderate value around the FP8 ranges.
            let exp = 127 - 28 + rng.below(48) as u32;
            (exp << 23) | (rng.u32() & 0x7F_FFFF)
        }
    };
    sign | mag
}

fn interesting_f32_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|_| interesting_bits(rng).to_le_bytes())
        .collect()
}

/// 16-bit patterns: random, or the top half of an interesting f32 (bf16), or around f16 specials.
fn u16_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|_| {
            let h: u16 = match rng.below(4) {
                0 => rng.u32() as u16,
                1 => (interesting_bits(rng) >> 16) as u16,
                2 => {
                    rng.pick(&[
                        0x0000u16, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0x7C01, 0x7DFF, 0x7E00,
                        0x7FFF, 0x7F80, 0x7F81, 0x7FC0,
                    ]) | (rng.u32() as u16 & 0x8000)
                }
                _ => (rng.u32() as u16) & 0x83FF, // f16 subnormals
            };
            h.to_le_bytes()
        })
        .collect()
}

fn random_scale(rng: &mut Rng) -> f32 {
    let s = match rng.below(8) {
        0 | 1 => 1.0,
        2 => 2f32.powi(rng.below(81) as i32 - 40),
        3 => rng.pick(&[
            0.0,
            -0.0,
            1e30,
            1e-30,
            f32::MAX,
            f32::MIN_POSITIVE,
            1e-40, // denormal
            3.0,
            0.1,
            65504.0,
            448.0,
            1.0 / 448.0,
        ]),
        _ => f32::from_bits(((127 - 12 + rng.below(25) as u32) << 23) | (rng.u32() & 0x7F_FFFF)),
    };
    if rng.below(4) == 0 { -s } else { s }
}

const ROUNDINGS: [Rounding; 3] = [
    Rounding::NearestSaturate,
    Rounding::Nearest,
    Rounding::StochasticSaturate,
];
const FORMATS: [Fp8Format; 2] = [Fp8Format::E4M3, Fp8Format::E5M2];

/// Lengths every kernel runs at.
fn lengths() -> Vec<usize> {
    let mut v: Vec<usize> = (0..=130).collect();
    v.extend([
        191, 255, 256, 257, 1001, 1023, 1025, 4097, 4099, 12345, 65_537,
    ]);
    v
}

/// A random `index_lo` for `n` elements, biased to the ends of the 32-bit range (no wrap).
fn random_index_lo(rng: &mut Rng, n: usize) -> u32 {
    let last = (1u64 << 32) - n as u64; // the largest start that does not wrap
    match rng.below(4) {
        0 => 0,
        1 => last as u32,
        2 => (last - rng.below(100).min(last as usize) as u64) as u32,
        _ => (rng.u64() % (last + 1)) as u32,
    }
}

/// A unary kernel invocation: input element size, output element size, and a caller.
#[derive(Clone, Copy, Debug)]
enum Unary {
    Bf16ToF32,
    F16ToF32,
    Fp8ToF32(Fp8Format),
    F32ToFp8(EncodeArgs),
    F32ToBf16(f32, bool),
    F32ToF16(f32, bool),
    F32ToF32(f32, bool),
    Bf16ToFp8(EncodeArgs),
    Fp8ToBf16(Fp8Format),
}

impl Unary {
    fn sizes(self) -> (usize, usize) {
        match self {
            Unary::Bf16ToF32 | Unary::F16ToF32 => (2, 4),
            Unary::Fp8ToF32(_) => (1, 4),
            Unary::F32ToFp8(_) => (4, 1),
            Unary::F32ToBf16(..) | Unary::F32ToF16(..) => (4, 2),
            Unary::F32ToF32(..) => (4, 4),
            Unary::Bf16ToFp8(_) => (2, 1),
            Unary::Fp8ToBf16(_) => (1, 2),
        }
    }

    fn input(self, rng: &mut Rng, n: usize) -> Vec<u8> {
        match self {
            Unary::Bf16ToF32 | Unary::F16ToF32 | Unary::Bf16ToFp8(_) => u16_bytes(rng, n),
            Unary::Fp8ToF32(_) | Unary::Fp8ToBf16(_) => (0..n).map(|_| rng.u32() as u8).collect(),
            _ => interesting_f32_bytes(rng, n),
        }
    }

    /// Runs the kernel; returns the amax bits where the kernel has one.
    ///
    /// # Safety
    /// `src`/`dst` valid for `n` elements of the input/output types (f32 outputs aligned when
    /// `k` is the scalar table, which writes them with aligned stores); distinct or, for
    /// `F32ToF32`, possibly equal.
    unsafe fn run(self, k: &Kernels, src: *const u8, dst: *mut u8, n: usize) -> Option<u32> {
        // SAFETY: forwarded to the caller.
        unsafe {
            match self {
                Unary::Bf16ToF32 => {
                    (k.bf16_to_f32)(src.cast(), dst.cast(), n);
                    None
                }
                Unary::F16ToF32 => {
                    (k.f16_to_f32)(src.cast(), dst.cast(), n);
                    None
                }
                Unary::Fp8ToF32(fmt) => {
                    (k.fp8_to_f32)(fmt, src, dst.cast(), n);
                    None
                }
                Unary::F32ToFp8(args) => Some((k.f32_to_fp8)(&args, src.cast(), dst, n)),
                Unary::F32ToBf16(s, sat) => {
                    Some((k.f32_to_bf16)(s, sat, src.cast(), dst.cast(), n))
                }
                Unary::F32ToF16(s, sat) => Some((k.f32_to_f16)(s, sat, src.cast(), dst.cast(), n)),
                Unary::F32ToF32(s, sat) => Some((k.f32_to_f32)(s, sat, src.cast(), dst.cast(), n)),
                Unary::Bf16ToFp8(args) => Some((k.bf16_to_fp8)(&args, src.cast(), dst, n)),
                Unary::Fp8ToBf16(fmt) => {
                    (k.fp8_to_bf16)(fmt, src, dst.cast(), n);
                    None
                }
            }
        }
    }

    fn random(rng: &mut Rng, which: usize) -> Unary {
        let sat = rng.below(2) == 0;
        match which {
            0 => Unary::Bf16ToF32,
            1 => Unary::F16ToF32,
            2 => Unary::Fp8ToF32(rng.pick(&FORMATS)),
            3 => Unary::F32ToFp8(EncodeArgs {
                format: rng.pick(&FORMATS),
                scale: random_scale(rng),
                rounding: rng.pick(&ROUNDINGS),
                key: StreamKey::new(rng.u64(), rng.u32()),
                index_lo: 0, // set per length
                stream: rng.below(2) == 0,
            }),
            4 => Unary::F32ToBf16(random_scale(rng), sat),
            5 => Unary::F32ToF16(random_scale(rng), sat),
            6 => Unary::F32ToF32(random_scale(rng), sat),
            7 => Unary::Bf16ToFp8(EncodeArgs {
                format: rng.pick(&FORMATS),
                // Half the cases at scale 1 (the 16-bit fast path of AVX-512).
                scale: if rng.below(2) == 0 {
                    1.0
                } else {
                    random_scale(rng)
                },
                rounding: rng.pick(&ROUNDINGS),
                key: StreamKey::new(rng.u64(), rng.u32()),
                index_lo: 0, // set per length
                stream: rng.below(2) == 0,
            }),
            _ => Unary::Fp8ToBf16(rng.pick(&FORMATS)),
        }
    }
}

/// The scalar result of `op` on `input` (computed in an 8-byte aligned buffer).
fn scalar_result(op: Unary, input: &[u8], n: usize) -> (Vec<u8>, Option<u32>) {
    let (si, so) = op.sizes();
    let mut src = vec![0u64; (n * si).div_ceil(8) + 1];
    let mut dst = vec![0u64; (n * so).div_ceil(8) + 1];
    // SAFETY: plain bytes into a buffer of at least that many bytes.
    unsafe { std::ptr::copy_nonoverlapping(input.as_ptr(), src.as_mut_ptr().cast(), n * si) };
    // SAFETY: both buffers hold n elements and are 8-byte aligned.
    let amax = unsafe {
        op.run(
            &scalar::KERNELS,
            src.as_ptr().cast(),
            dst.as_mut_ptr().cast(),
            n,
        )
    };
    // SAFETY: reading back n * so initialized bytes.
    let out = unsafe { std::slice::from_raw_parts(dst.as_ptr().cast::<u8>(), n * so) }.to_vec();
    (out, amax)
}

fn first_mismatch(a: &[u8], b: &[u8], size: usize) -> Option<usize> {
    (0..a.len() / size).find(|&i| a[i * size..(i + 1) * size] != b[i * size..(i + 1) * size])
}

fn describe(bytes: &[u8], i: usize, size: usize) -> String {
    let e = &bytes[i * size..(i + 1) * size];
    let mut v = 0u64;
    for (j, &b) in e.iter().enumerate() {
        v |= (b as u64) << (8 * j);
    }
    format!("0x{v:0width$x}", width = 2 * size)
}

/// Checks one unary case on one table, out of place and (for f32 → f32) in place.
fn check_unary(name: &str, k: &Kernels, op: Unary, input: &[u8], n: usize, rng: &mut Rng) {
    let (si, so) = op.sizes();
    let (want, want_amax) = scalar_result(op, input, n);
    let (mi, mo) = (rng.below(4), rng.below(4));
    let poison = rng.u32() as u8;
    let mut src = GuardBuf::with_data(input, mi, poison);
    let mut dst = GuardBuf::new(n * so, mo, poison ^ 0x5A);
    let sp = src.ptr();
    // SAFETY: buffers hold n elements of their types; distinct allocations.
    let amax = unsafe { op.run(k, sp, dst.ptr(), n) };
    let ctx = || format!("{name} {op:?} n={n} misalign=({mi},{mo})");
    if let Some(i) = first_mismatch(dst.data(), &want, so) {
        panic!(
            "{}: element {i}: input {} gave {}, scalar {}",
            ctx(),
            describe(input, i, si),
            describe(dst.data(), i, so),
            describe(&want, i, so)
        );
    }
    assert_eq!(amax, want_amax, "{}: amax", ctx());
    assert!(dst.guards_intact(), "{}: wrote outside the output", ctx());
    assert!(
        src.guards_intact() && src.data() == input,
        "{}: modified the input",
        ctx()
    );
    if let Unary::F32ToF32(..) = op {
        let mut buf = GuardBuf::with_data(input, mi, poison);
        let p = buf.ptr();
        // SAFETY: in place, as the contract allows for this kernel.
        let amax = unsafe { op.run(k, p, p, n) };
        assert!(
            buf.data() == &want[..] && amax == want_amax && buf.guards_intact(),
            "{} in place",
            ctx()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Kernel tests

#[test]
fn unary_kernels_all_lengths() {
    let mut rng = Rng::for_test("unary_kernels_all_lengths");
    for (name, k) in simd_tables() {
        for which in 0..9 {
            for n in lengths() {
                // Several random parameter sets per length for the encoders.
                let reps = if which >= 3 && n <= 130 { 3 } else { 1 };
                for _ in 0..reps {
                    let mut op = Unary::random(&mut rng, which);
                    if let Unary::F32ToFp8(args) | Unary::Bf16ToFp8(args) = &mut op {
                        args.index_lo = random_index_lo(&mut rng, n);
                    }
                    let input = op.input(&mut rng, n);
                    check_unary(&name, k, op, &input, n, &mut rng);
                }
            }
        }
    }
}

/// Every FP8 format × rounding mode on long random inputs (f32 and bf16 sources) with many scales.
#[test]
fn fp8_encode_modes_and_scales() {
    let mut rng = Rng::for_test("fp8_encode_modes_and_scales");
    for (name, k) in simd_tables() {
        for format in FORMATS {
            for rounding in ROUNDINGS {
                for rep in 0..80 {
                    let n = 2000 + rng.below(3000);
                    let args = EncodeArgs {
                        format,
                        scale: random_scale(&mut rng),
                        rounding,
                        key: StreamKey::new(rng.u64(), rng.u32()),
                        index_lo: random_index_lo(&mut rng, n),
                        stream: rep % 3 == 0,
                    };
                    // Odd repetitions: bf16 sources (every fourth at scale 1).
                    let op = match rep % 4 {
                        0 | 2 => Unary::F32ToFp8(args),
                        1 => Unary::Bf16ToFp8(args),
                        _ => Unary::Bf16ToFp8(EncodeArgs { scale: 1.0, ..args }),
                    };
                    let input = op.input(&mut rng, n);
                    check_unary(&name, k, op, &input, n, &mut rng);
                }
            }
        }
    }
}

/// Stochastic rounding: the result is one of the two neighbours and depends on the key and
/// index exactly as the scalar code says (checked above); here also check that SIMD and scalar
/// agree over a whole 2^32 index boundary's worth of keys for one value, and that the
/// rounding really is random (a test of the test data: neither neighbour dominates).
#[test]
fn stochastic_rounding_statistics() {
    let mut rng = Rng::for_test("stochastic_rounding_statistics");
    for (name, k) in simd_tables() {
        for format in FORMATS {
            // 1 + 3/4 ulp above 1.0 (E4M3 ulp at 1 = 1/8, E5M2 = 1/4).
            let ulp = if format == Fp8Format::E4M3 {
                0.125
            } else {
                0.25
            };
            let x = 1.0 + 0.75 * ulp;
            let n = 65536;
            let input: Vec<u8> = (0..n).flat_map(|_| f32::to_le_bytes(x)).collect();
            let op = Unary::F32ToFp8(EncodeArgs {
                format,
                scale: 1.0,
                rounding: Rounding::StochasticSaturate,
                key: StreamKey::new(rng.u64(), rng.u32()),
                index_lo: random_index_lo(&mut rng, n),
                stream: false,
            });
            check_unary(&name, k, op, &input, n, &mut rng);
            let (out, _) = scalar_result(op, &input, n);
            let up = out.iter().filter(|&&c| format.decode(c) > x).count();
            let frac = up as f64 / n as f64;
            assert!((0.73..0.77).contains(&frac), "{name} {format:?}: {frac}");
        }
    }
}

/// The mix kernels, out of place and with every aliasing the contract allows.
#[test]
fn mix_kernels() {
    let mut rng = Rng::for_test("mix_kernels");
    let tables = simd_tables();
    for n in lengths() {
        for (name, k) in &tables {
            let coef = |rng: &mut Rng| match rng.below(4) {
                0 => random_scale(rng),
                1 => rng.pick(&[0.0f32, 1.0, 0.5f32.sqrt(), 0.9f32.sqrt(), 0.1f32.sqrt()]),
                _ => f32::from_bits(0x3E00_0000 | (rng.u32() & 0x00FF_FFFF)),
            };
            let (a, b) = (coef(&mut rng), coef(&mut rng));
            let x = interesting_f32_bytes(&mut rng, n);
            let f = interesting_f32_bytes(&mut rng, n);
            let g = interesting_f32_bytes(&mut rng, n);
            let gx0 = interesting_f32_bytes(&mut rng, n);
            let to_f32 = |v: &[u8]| -> Vec<f32> {
                v.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect()
            };
            let (xs, fs, gs, gx0s) = (to_f32(&x), to_f32(&f), to_f32(&g), to_f32(&gx0));
            let bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|y| y.to_le_bytes()).collect() };

            // Scalar reference.
            let mut want = vec![0f32; n];
            // SAFETY: all buffers hold n f32.
            unsafe { (scalar::KERNELS.mix)(a, b, xs.as_ptr(), fs.as_ptr(), want.as_mut_ptr(), n) };
            let want = bytes(&want);
            let ctx = format!("{name} mix n={n} a={a:e} b={b:e}");
            let poison = rng.u32() as u8;
            let m = || rng_misalign(n);
            // Out of place.
            let (mut xb, mut fb) = (
                GuardBuf::with_data(&x, m(), poison),
                GuardBuf::with_data(&f, m(), poison),
            );
            let mut ob = GuardBuf::new(4 * n, m(), poison);
            let (xp, fp) = (xb.ptr(), fb.ptr());
            // SAFETY: distinct buffers of n f32.
            unsafe { (k.mix)(a, b, xp.cast(), fp.cast(), ob.ptr().cast(), n) };
            assert_same(&ctx, ob.data(), &want, &x, &f);
            assert!(
                ob.guards_intact() && xb.data() == &x[..] && fb.data() == &f[..],
                "{ctx}"
            );
            // out == x, out == f.
            for alias_x in [true, false] {
                let mut xb = GuardBuf::with_data(&x, m(), poison);
                let mut fb = GuardBuf::with_data(&f, m(), poison);
                let (xp, fp) = (xb.ptr(), fb.ptr());
                let out = if alias_x { xp } else { fp };
                // SAFETY: out is exactly x or f, as the contract allows.
                unsafe { (k.mix)(a, b, xp.cast(), fp.cast(), out.cast(), n) };
                let (ob, other) = if alias_x { (&xb, &fb) } else { (&fb, &xb) };
                assert_same(
                    &format!("{ctx} alias_x={alias_x}"),
                    ob.data(),
                    &want,
                    &x,
                    &f,
                );
                assert!(ob.guards_intact() && other.guards_intact(), "{ctx}");
            }

            for accumulate in [false, true] {
                let mut wx = gx0s.clone();
                let mut wf = vec![0f32; n];
                // SAFETY: all buffers hold n f32.
                unsafe {
                    (scalar::KERNELS.mix_backward)(
                        a,
                        b,
                        accumulate,
                        gs.as_ptr(),
                        wx.as_mut_ptr(),
                        wf.as_mut_ptr(),
                        n,
                    )
                };
                let (wx, wf) = (bytes(&wx), bytes(&wf));
                let ctx = format!("{ctx} backward accumulate={accumulate}");
                // 0: separate, 1: gx == g, 2: gf == g
                for alias in 0..3 {
                    let mut gb = GuardBuf::with_data(&g, m(), poison);
                    let mut gxb = if accumulate {
                        GuardBuf::with_data(&gx0, m(), poison)
                    } else {
                        GuardBuf::new(4 * n, m(), poison)
                    };
                    let mut gfb = GuardBuf::new(4 * n, m(), poison);
                    let gp = gb.ptr();
                    match alias {
                        1 => {
                            // gx == g: compare with the scalar code under the same aliasing.
                            let mut sx = gs.clone();
                            let mut sf = vec![0f32; n];
                            let sp = sx.as_mut_ptr();
                            // SAFETY: gx == g as the contract allows; n f32 each.
                            unsafe {
                                (scalar::KERNELS.mix_backward)(
                                    a,
                                    b,
                                    accumulate,
                                    sp,
                                    sp,
                                    sf.as_mut_ptr(),
                                    n,
                                );
                                (k.mix_backward)(
                                    a,
                                    b,
                                    accumulate,
                                    gp.cast(),
                                    gp.cast(),
                                    gfb.ptr().cast(),
                                    n,
                                );
                            }
                            assert_same(&format!("{ctx} gx==g"), gb.data(), &bytes(&sx), &g, &g);
                            assert_same(
                                &format!("{ctx} gx==g (gf)"),
                                gfb.data(),
                                &bytes(&sf),
                                &g,
                                &g,
                            );
                            assert!(gb.guards_intact() && gfb.guards_intact(), "{ctx}");
                        }
                        2 => {
                            // SAFETY: gf == g as the contract allows; n f32 each.
                            unsafe {
                                (k.mix_backward)(
                                    a,
                                    b,
                                    accumulate,
                                    gp.cast(),
                                    gxb.ptr().cast(),
                                    gp.cast(),
                                    n,
                                )
                            };
                            assert_same(&format!("{ctx} gf==g (gx)"), gxb.data(), &wx, &gx0, &g);
                            assert_same(&format!("{ctx} gf==g"), gb.data(), &wf, &g, &g);
                            assert!(gb.guards_intact() && gxb.guards_intact(), "{ctx}");
                        }
                        _ => {
                            // SAFETY: distinct buffers of n f32.
                            unsafe {
                                (k.mix_backward)(
                                    a,
                                    b,
                                    accumulate,
                                    gp.cast(),
                                    gxb.ptr().cast(),
                                    gfb.ptr().cast(),
                                    n,
                                )
                            };
                            assert_same(&format!("{ctx} (gx)"), gxb.data(), &wx, &gx0, &g);
                            assert_same(&format!("{ctx} (gf)"), gfb.data(), &wf, &g, &g);
                            assert!(
                                gb.guards_intact()
                                    && gxb.guards_intact()
                                    && gfb.guards_intact()
                                    && gb.data() == &g[..],
                                "{ctx}"
                            );
                        }
                    }
                }
            }
        }
    }

    fn rng_misalign(n: usize) -> usize {
        // Deterministic per length but covering 0..3.
        (n * 7 + 3) % 4
    }
}

/// The fused mixes with their FP8 copy (`mix_fp8`, `mix_backward_fp8`) against the scalar
/// table's, over f32, bf16 and f16: every length, every format and rounding mode (and no copy),
/// plain and streaming stores (the latter on 64-byte-aligned outputs), every allowed aliasing,
/// misaligned and guarded buffers, bit for bit (NaNs included); the codes are checked against
/// the scalar encode of the values the kernel itself stored.
#[test]
fn fused_mix_kernels() {
    let mut rng = Rng::for_test("fused_mix_kernels");
    for (name, k) in simd_tables() {
        for io in [DType::F32, DType::BF16, DType::F16] {
            for n in lengths() {
                fused_mix_case(&name, k, io, n, &mut rng);
            }
        }
    }
}

/// The values of `n` elements of `io` in `bytes`, as f32 (exact).
fn widen_io(io: DType, bytes: &[u8]) -> Vec<f32> {
    let n = bytes.len() / io.size();
    let mut out = vec![0f32; n];
    // SAFETY: bytes holds n elements of io, out n f32.
    unsafe {
        match io {
            DType::BF16 => {
                (scalar::KERNELS.bf16_to_f32)(bytes.as_ptr().cast(), out.as_mut_ptr(), n)
            }
            DType::F16 => (scalar::KERNELS.f16_to_f32)(bytes.as_ptr().cast(), out.as_mut_ptr(), n),
            _ => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = f32::from_le_bytes(c.try_into().unwrap());
                }
            }
        }
    }
    out
}

/// Element-wise bit equality of `io` outputs (NaNs included: every back end gives the same
/// NaN).
fn assert_same_io(ctx: &str, io: DType, got: &[u8], want: &[u8]) {
    let (g, w) = (widen_io(io, got), widen_io(io, want));
    let size = io.size();
    for i in 0..g.len() {
        if got[i * size..(i + 1) * size] != want[i * size..(i + 1) * size] {
            panic!("{ctx}: element {i}: got {:?}, scalar {:?}", g[i], w[i]);
        }
    }
}

fn fused_mix_case(name: &str, k: &Kernels, io: DType, n: usize, rng: &mut Rng) {
    let size = io.size();
    let input = |rng: &mut Rng| {
        if io == DType::F32 {
            interesting_f32_bytes(rng, n)
        } else {
            u16_bytes(rng, n)
        }
    };
    let (a, b) = (random_scale(rng).abs(), random_scale(rng).abs());
    let (x, f, gx0) = (input(rng), input(rng), input(rng));
    let poison = rng.u32() as u8;
    let mut modes: Vec<Option<(Fp8Format, Rounding)>> = vec![None];
    for format in FORMATS {
        for rounding in ROUNDINGS {
            modes.push(Some((format, rounding)));
        }
    }
    // The codes the scalar table gives for the stored values `stored`.
    let scalar_codes = |args: &EncodeArgs, stored: &[u8]| -> Vec<u8> {
        let v = widen_io(io, stored);
        let mut c = vec![0u8; n];
        // SAFETY: v and c hold n elements.
        unsafe { (scalar::KERNELS.f32_to_fp8)(args, v.as_ptr(), c.as_mut_ptr(), n) };
        c
    };
    for mode in modes {
        let args = EncodeArgs {
            format: mode.map_or(Fp8Format::E4M3, |m| m.0),
            scale: 1.0,
            rounding: mode.map_or(Rounding::NearestSaturate, |m| m.1),
            key: StreamKey::new(rng.u64(), rng.u32()),
            index_lo: random_index_lo(rng, n),
            stream: false,
        };
        let stream = rng.below(2) == 0;
        let alias = rng.below(3); // forward: 0 out separate, 1 out == x, 2 out == f
        let accumulate = rng.below(2) == 0;
        let ctx = format!("{name} {io:?} n={n} {mode:?} stream={stream} alias={alias}");
        // Streamed outputs are 64-byte aligned (the contract); the rest at any offset.
        let mut m = || rng.below(4);
        let out_m = if stream { 0 } else { m() };

        // Forward: the scalar table on plain separate buffers is the reference.
        let mut want = vec![0u8; n * size];
        // SAFETY: n elements each; no codes.
        unsafe {
            (scalar::KERNELS.mix_fp8)(
                io,
                a,
                b,
                x.as_ptr(),
                f.as_ptr(),
                want.as_mut_ptr(),
                core::ptr::null_mut(),
                &args,
                false,
                n,
            )
        };
        let mut xb = GuardBuf::with_data(&x, if alias == 1 { out_m } else { m() }, poison);
        let mut fb = GuardBuf::with_data(&f, if alias == 2 { out_m } else { m() }, poison);
        let mut ob = GuardBuf::new(n * size, out_m, poison);
        let mut qb = GuardBuf::new(n, m(), poison);
        let (xp, fp) = (xb.ptr(), fb.ptr());
        let op = match alias {
            1 => xp,
            2 => fp,
            _ => ob.ptr(),
        };
        let qp = if mode.is_some() {
            qb.ptr()
        } else {
            core::ptr::null_mut()
        };
        // SAFETY: n elements each; out is x, f or separate as the contract allows; streamed
        // outputs are 64-byte aligned.
        unsafe { (k.mix_fp8)(io, a, b, xp, fp, op, qp, &args, stream, n) };
        unitfp8::backend::store_fence();
        let got = match alias {
            1 => xb.data().to_vec(),
            2 => fb.data().to_vec(),
            _ => ob.data().to_vec(),
        };
        assert_same_io(&format!("{ctx} mix_fp8"), io, &got, &want);
        if mode.is_some() {
            assert_eq!(
                qb.data(),
                &scalar_codes(&args, &got)[..],
                "{ctx} mix_fp8 codes"
            );
        } else {
            assert!(qb.data().iter().all(|&c| c == poison), "{ctx} no codes");
        }
        assert!(
            xb.guards_intact() && fb.guards_intact() && ob.guards_intact() && qb.guards_intact(),
            "{ctx} mix_fp8 guards"
        );
        if alias != 1 {
            assert_eq!(xb.data(), &x[..], "{ctx} x untouched");
        }
        if alias != 2 {
            assert_eq!(fb.data(), &f[..], "{ctx} f untouched");
        }

        // Backward with g = x: 0 separate, 1 gx == g, 2 gf == g; the scalar table under the
        // same aliasing is the reference.
        let ctx = format!("{ctx} accumulate={accumulate} mix_backward_fp8");
        let (mut sg, mut sx, mut sf) = (
            x.clone(),
            if accumulate {
                gx0.clone()
            } else {
                vec![0u8; n * size]
            },
            vec![0u8; n * size],
        );
        let sgp = sg.as_mut_ptr();
        let (sxp, sfp) = match alias {
            1 => (sgp, sf.as_mut_ptr()),
            2 => (sx.as_mut_ptr(), sgp),
            _ => (sx.as_mut_ptr(), sf.as_mut_ptr()),
        };
        // SAFETY: n elements each, aliased as the contract allows; no codes.
        unsafe {
            (scalar::KERNELS.mix_backward_fp8)(
                io,
                a,
                b,
                accumulate,
                sgp,
                sxp,
                sfp,
                core::ptr::null_mut(),
                &args,
                false,
                n,
            )
        };
        let (want_x, want_f) = match alias {
            1 => (sg.clone(), sf),
            2 => (sx, sg.clone()),
            _ => (sx, sf),
        };
        let gx_m = if stream { 0 } else { m() };
        let mut gb = GuardBuf::with_data(&x, if alias == 1 { gx_m } else { m() }, poison);
        let mut gxb = if accumulate {
            GuardBuf::with_data(&gx0, gx_m, poison)
        } else {
            GuardBuf::new(n * size, gx_m, poison)
        };
        let mut gfb = GuardBuf::new(n * size, m(), poison);
        let mut qb = GuardBuf::new(n, m(), poison);
        let gp = gb.ptr();
        let (gxp, gfp) = match alias {
            1 => (gp, gfb.ptr()),
            2 => (gxb.ptr(), gp),
            _ => (gxb.ptr(), gfb.ptr()),
        };
        let qp = if mode.is_some() {
            qb.ptr()
        } else {
            core::ptr::null_mut()
        };
        // SAFETY: n elements each; gx or gf may be g; a streamed gx is 64-byte aligned.
        unsafe { (k.mix_backward_fp8)(io, a, b, accumulate, gp, gxp, gfp, qp, &args, stream, n) };
        unitfp8::backend::store_fence();
        let (got_x, got_f) = match alias {
            1 => (gb.data().to_vec(), gfb.data().to_vec()),
            2 => (gxb.data().to_vec(), gb.data().to_vec()),
            _ => (gxb.data().to_vec(), gfb.data().to_vec()),
        };
        assert_same_io(&format!("{ctx} gx"), io, &got_x, &want_x);
        assert_same_io(&format!("{ctx} gf"), io, &got_f, &want_f);
        if mode.is_some() {
            assert_eq!(qb.data(), &scalar_codes(&args, &got_f)[..], "{ctx} codes");
        } else {
            assert!(qb.data().iter().all(|&c| c == poison), "{ctx} no codes");
        }
        assert!(
            gb.guards_intact() && gxb.guards_intact() && gfb.guards_intact() && qb.guards_intact(),
            "{ctx} guards"
        );
    }
}

/// Byte equality of f32 outputs (NaNs included: every back end gives the same NaN), with the
/// inputs in the message.
fn assert_same(ctx: &str, got: &[u8], want: &[u8], in1: &[u8], in2: &[u8]) {
    let f = |v: &[u8], i: usize| f32::from_le_bytes(v[4 * i..4 * i + 4].try_into().unwrap());
    assert_eq!(got.len(), want.len());
    for i in 0..got.len() / 4 {
        let (g, w) = (f(got, i), f(want, i));
        if g.to_bits() != w.to_bits() {
            panic!(
                "{ctx}: element {i}: inputs {} {} gave {}, scalar {}",
                describe(in1, i, 4),
                describe(in2, i, 4),
                describe(got, i, 4),
                describe(want, i, 4)
            );
        }
    }
}

/// With the denormal modes set (x86-64: MXCSR.DAZ and FTZ; AArch64: FPCR.FZ), every SIMD
/// kernel still matches the scalar one run under the same mode, and the decoders (which the
/// scalar code makes mode-independent) match the scalar result computed in the default mode.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn denormal_modes_do_not_matter() {
    let mut rng = Rng::for_test("denormal_modes_do_not_matter");
    let n = 4099;
    for (name, k) in simd_tables() {
        for which in 0..7 {
            for _ in 0..6 {
                let mut op = Unary::random(&mut rng, which);
                if let Unary::F32ToFp8(args) = &mut op {
                    args.index_lo = random_index_lo(&mut rng, n);
                }
                let input = op.input(&mut rng, n);
                let (si, so) = op.sizes();
                let (default_mode, _) = scalar_result(op, &input, n);
                let mut src = vec![0u64; (n * si).div_ceil(8) + 1];
                let mut want = vec![0u64; (n * so).div_ceil(8) + 1];
                let mut got = vec![0u64; (n * so).div_ceil(8) + 1];
                // SAFETY: plain bytes into a large enough buffer.
                unsafe {
                    std::ptr::copy_nonoverlapping(input.as_ptr(), src.as_mut_ptr().cast(), n * si)
                };
                let (sp, wp, gp) = (
                    src.as_ptr().cast(),
                    want.as_mut_ptr().cast(),
                    got.as_mut_ptr().cast(),
                );
                let (wa, ga) = with_daz_ftz(|| {
                    // SAFETY: aligned buffers of n elements.
                    unsafe { (op.run(&scalar::KERNELS, sp, wp, n), op.run(k, sp, gp, n)) }
                });
                let bytes = |v: &[u64]| -> Vec<u8> {
                    v.iter()
                        .flat_map(|w| w.to_le_bytes())
                        .take(n * so)
                        .collect()
                };
                let (want, got) = (bytes(&want), bytes(&got));
                assert!(got == want && wa == ga, "{name} {op:?} under DAZ/FTZ");
                if which < 3 {
                    assert!(
                        got == default_mode,
                        "{name} {op:?}: decoding depends on DAZ/FTZ"
                    );
                }
            }
        }
    }
}

/// Runs `f` with MXCSR.DAZ and MXCSR.FTZ set, then restores MXCSR.
#[cfg(target_arch = "x86_64")]
fn with_daz_ftz<R>(f: impl FnOnce() -> R) -> R {
    let mut old: u32 = 0;
    let new: u32;
    // SAFETY: stmxcsr/ldmxcsr only read/write MXCSR and the given stack slot. Running float
    // code with DAZ/FTZ set is outside the default floating-point environment that Rust assumes;
    // only the opaque kernel calls (through function pointers) run in between, and the previous
    // state is restored right after.
    unsafe {
        core::arch::asm!("stmxcsr [{}]", in(reg) &mut old, options(nostack));
        new = old | 0x8040;
        core::arch::asm!("ldmxcsr [{}]", in(reg) &new, options(nostack));
    }
    let r = f();
    // SAFETY: as above; restores the saved state.
    unsafe { core::arch::asm!("ldmxcsr [{}]", in(reg) &old, options(nostack)) };
    r
}

/// Runs `f` with FPCR.FZ (flush denormals to zero) set on this thread, then restores FPCR.
#[cfg(target_arch = "aarch64")]
fn with_daz_ftz<R>(f: impl FnOnce() -> R) -> R {
    let old: u64;
    // SAFETY: reading and writing FPCR affects only this thread's floating-point behaviour;
    // only the opaque kernel calls (through function pointers) run in between, and the previous
    // value is restored right after.
    unsafe {
        core::arch::asm!("mrs {}, fpcr", out(reg) old);
        core::arch::asm!("msr fpcr, {}", in(reg) old | 1 << 24);
    }
    let r = f();
    // SAFETY: as above; restores the saved value.
    unsafe { core::arch::asm!("msr fpcr, {}", in(reg) old) };
    r
}

/// On AArch64 the SIMD encoders and decoders give under FPCR.FZ exactly what the scalar code
/// gives in the default mode (their conversions are integer work): f32 → FP8 in every format
/// and rounding mode over 2^20 patterns rich in denormals, and every bf16, f16 and FP8 pattern
/// widened.
#[cfg(target_arch = "aarch64")]
#[test]
fn results_do_not_depend_on_flush_to_zero() {
    let mut rng = Rng::for_test("results_do_not_depend_on_flush_to_zero");
    let mut input = f32_patterns(&mut rng);
    input.truncate(1 << 20);
    // Make sure denormal inputs are well represented.
    for x in input.iter_mut().step_by(7) {
        *x = f32::from_bits(x.to_bits() & 0x807F_FFFF);
    }
    let halves: Vec<u16> = (0..=u16::MAX).collect();
    let codes: Vec<u8> = (0..=255u8).collect();
    let n = input.len();
    let mut want_fp8 = Vec::new();
    for fmt in FORMATS {
        for rounding in ROUNDINGS {
            let args = EncodeArgs {
                format: fmt,
                scale: 1.0,
                rounding,
                key: StreamKey::new(7, 0),
                index_lo: 0,
                stream: false,
            };
            let mut out = vec![0u8; n];
            // SAFETY: n elements.
            let am =
                unsafe { (scalar::KERNELS.f32_to_fp8)(&args, input.as_ptr(), out.as_mut_ptr(), n) };
            want_fp8.push((args, out, am));
        }
    }
    let widen = |k: &Kernels| {
        let mut out = vec![0f32; 2 * halves.len() + 2 * 256];
        let (a, rest) = out.split_at_mut(halves.len());
        let (b, rest) = rest.split_at_mut(halves.len());
        let (c, d) = rest.split_at_mut(256);
        // SAFETY: each part holds its element count.
        unsafe {
            (k.bf16_to_f32)(halves.as_ptr(), a.as_mut_ptr(), halves.len());
            (k.f16_to_f32)(halves.as_ptr(), b.as_mut_ptr(), halves.len());
            (k.fp8_to_f32)(Fp8Format::E4M3, codes.as_ptr(), c.as_mut_ptr(), 256);
            (k.fp8_to_f32)(Fp8Format::E5M2, codes.as_ptr(), d.as_mut_ptr(), 256);
        }
        f32_bits(&out)
    };
    let want_widen = widen(&scalar::KERNELS);
    for (name, k) in simd_tables() {
        with_daz_ftz(|| {
            // The mode is really on: a denormal product flushes.
            let tiny = std::hint::black_box(f32::from_bits(0x0000_1000));
            assert_eq!(
                (tiny * std::hint::black_box(1.0f32)).to_bits(),
                0,
                "FPCR.FZ not in effect"
            );
            for (args, want, am) in &want_fp8 {
                let mut out = vec![0xA5u8; n];
                // SAFETY: n elements.
                let got = unsafe { (k.f32_to_fp8)(args, input.as_ptr(), out.as_mut_ptr(), n) };
                if let Some(i) = first_difference(&out, want) {
                    panic!(
                        "{name} f32_to_fp8 {:?} {:?} under FZ: x = {:#010x}: {:#04x}, scalar \
                         without FZ {:#04x}",
                        args.format,
                        args.rounding,
                        input[i].to_bits(),
                        out[i],
                        want[i]
                    );
                }
                assert_eq!(got, *am, "{name} amax under FZ");
            }
            let got = widen(k);
            assert_eq!(
                first_difference(&got, &want_widen),
                None,
                "{name} widening under FZ"
            );
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Driver integration: Exec with each SIMD back end against Exec with the scalar one.

fn simd_backends() -> Vec<Backend> {
    Backend::ALL
        .into_iter()
        .filter(|&b| b != Backend::Scalar && b.is_available())
        .collect()
}

fn elems_from_f32<T: unitfp8::Element>(v: &[f32], rng: &mut Rng) -> Vec<T> {
    // Build source data of any type from interesting f32 values (or random codes).
    let bytes: Vec<u8> = match T::DTYPE {
        DType::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        DType::BF16 => v
            .iter()
            .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
            .collect(),
        DType::F16 => v
            .iter()
            .flat_map(|x| f16::from_f32(*x).to_bits().to_le_bytes())
            .collect(),
        DType::E4M3 | DType::E5M2 => v.iter().map(|_| rng.u32() as u8).collect(),
    };
    let n = v.len();
    let mut out = Vec::<T>::with_capacity(n);
    // SAFETY: every T is plain old data of DTYPE.size() bytes; n elements are initialized.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            out.as_mut_ptr().cast::<u8>(),
            n * T::DTYPE.size(),
        );
        out.set_len(n);
    }
    out
}

fn as_bytes<T: unitfp8::Element>(v: &[T]) -> &[u8] {
    // SAFETY: plain old data without padding.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), std::mem::size_of_val(v)) }
}

fn poisoned<T: unitfp8::Element>(n: usize, byte: u8) -> Vec<T> {
    let bytes = vec![byte; n * T::DTYPE.size()];
    let mut out = Vec::<T>::with_capacity(n);
    // SAFETY: every bit pattern is a valid T (plain old data).
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), bytes.len());
        out.set_len(n);
    }
    out
}

fn check_cast_pair<S: unitfp8::Element, D: unitfp8::Element>(rng: &mut Rng, backend: Backend) {
    // 2^18 + 77 elements cross blocks and, on several threads, split.
    let n = rng.pick(&[1usize, 17, 1000, 1024, 3001, (1 << 18) + 77, 300_007]);
    let vals: Vec<f32> = (0..n)
        .map(|_| f32::from_bits(interesting_bits(rng)))
        .collect();
    let src: Vec<S> = elems_from_f32(&vals, rng);
    let rounding = if D::DTYPE.fp8().is_some() {
        rng.pick(&ROUNDINGS)
    } else {
        rng.pick(&ROUNDINGS[..2])
    };
    // The public casts take any finite, nonzero scale (the kernels, checked above, also 0).
    let scale = loop {
        let s = random_scale(rng);
        if s != 0.0 {
            break s;
        }
    };
    let params = CastParams {
        scale,
        rounding,
        seed: rng.u64(),
    };
    let threads = 1 + rng.below(3);
    let simd = Exec::new(backend).unwrap().with_threads(threads);
    let reference = Exec::new(Backend::Scalar).unwrap();
    let mut a: Vec<D> = poisoned(n, 0xA5);
    let mut b: Vec<D> = poisoned(n, 0x5A);
    let ra = simd.cast(&src, &mut a, &params).unwrap();
    let rb = reference.cast(&src, &mut b, &params).unwrap();
    let ctx = format!(
        "{backend:?} cast {:?} -> {:?} n={n} threads={threads} {params:?}",
        S::DTYPE,
        D::DTYPE
    );
    assert_eq!(ra.to_bits(), rb.to_bits(), "{ctx}: amax");
    assert!(as_bytes(&a) == as_bytes(&b), "{ctx}");

    // Cast-transpose of a random shape with padded leading dimensions.
    let (rows, cols) = if rng.below(2) == 0 {
        (1 + rng.below(70), 1 + rng.below(150))
    } else {
        rng.pick(&[(37usize, 70usize), (3, 1001), (130, 5), (64, 64)])
    };
    let (ld_src, ld_dst, ld_t) = (
        cols + rng.below(5),
        cols + rng.below(5),
        rows + rng.below(5),
    );
    let m = (rows - 1) * ld_src + cols;
    let vals: Vec<f32> = (0..m)
        .map(|_| f32::from_bits(interesting_bits(rng)))
        .collect();
    let src: Vec<S> = elems_from_f32(&vals, rng);
    let nd = (rows - 1) * ld_dst + cols;
    let nt = (cols - 1) * ld_t + rows;
    let (mut d1, mut t1): (Vec<D>, Vec<D>) = (poisoned(nd, 0xA5), poisoned(nt, 0xA5));
    let (mut d2, mut t2): (Vec<D>, Vec<D>) = (poisoned(nd, 0xA5), poisoned(nt, 0xA5));
    let ra = simd
        .cast_transpose(
            &src,
            rows,
            cols,
            ld_src,
            Some(&mut d1),
            ld_dst,
            Some(&mut t1),
            ld_t,
            &params,
        )
        .unwrap();
    let rb = reference
        .cast_transpose(
            &src,
            rows,
            cols,
            ld_src,
            Some(&mut d2),
            ld_dst,
            Some(&mut t2),
            ld_t,
            &params,
        )
        .unwrap();
    let ctx = format!("{ctx} transpose {rows}x{cols}");
    assert_eq!(ra.to_bits(), rb.to_bits(), "{ctx}: amax");
    assert!(
        as_bytes(&d1) == as_bytes(&d2) && as_bytes(&t1) == as_bytes(&t2),
        "{ctx}"
    );
}

#[test]
fn exec_drivers_match_scalar() {
    let mut rng = Rng::for_test("exec_drivers_match_scalar");
    let backends = simd_backends();
    if backends.is_empty() {
        println!("WARNING: no SIMD back end available");
    }
    for backend in backends {
        for _ in 0..3 {
            macro_rules! all_dst {
                ($s:ty) => {
                    check_cast_pair::<$s, f32>(&mut rng, backend);
                    check_cast_pair::<$s, bf16>(&mut rng, backend);
                    check_cast_pair::<$s, f16>(&mut rng, backend);
                    check_cast_pair::<$s, E4M3>(&mut rng, backend);
                    check_cast_pair::<$s, E5M2>(&mut rng, backend);
                };
            }
            all_dst!(f32);
            all_dst!(bf16);
            all_dst!(f16);
            all_dst!(E4M3);
            all_dst!(E5M2);
        }

        // Residual mix (f32 in/out with an FP8 copy) forward and backward.
        for _ in 0..6 {
            let n = rng.pick(&[5usize, 1000, 5003, 300_001]);
            let params = MixParams {
                tau: rng.pick(&[0.1f32, 0.4, 0.25, 1.0, 0.0]),
                rounding: rng.pick(&ROUNDINGS),
                seed: rng.u64(),
            };
            let threads = 1 + rng.below(2);
            let simd = Exec::new(backend).unwrap().with_threads(threads);
            let reference = Exec::new(Backend::Scalar).unwrap();
            // NaNs and infinities in both summands included: every back end gives the same NaN.
            let x = interesting_f32_bytes(&mut rng, n);
            let f = interesting_f32_bytes(&mut rng, n);
            let run = |e: &Exec| {
                let mut out = vec![0xA5u8; 4 * n];
                let mut q = vec![0x5Au8; n];
                // SAFETY: buffers of n elements of their types, no overlap.
                unsafe {
                    e.residual_mix_raw(
                        x.as_ptr(),
                        f.as_ptr(),
                        out.as_mut_ptr(),
                        DType::F32,
                        n,
                        q.as_mut_ptr(),
                        DType::E5M2,
                        &params,
                    )
                    .unwrap()
                };
                let mut gx = x.clone();
                let mut gf = vec![0xA5u8; 4 * n];
                // SAFETY: as above.
                unsafe {
                    e.residual_mix_backward_raw(
                        f.as_ptr(),
                        gx.as_mut_ptr(),
                        gf.as_mut_ptr(),
                        DType::F32,
                        n,
                        true,
                        std::ptr::null_mut(),
                        DType::E4M3,
                        &params,
                    )
                    .unwrap()
                };
                (out, q, gx, gf)
            };
            assert!(
                run(&simd) == run(&reference),
                "{backend:?} residual mix n={n} {params:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Large pattern sweeps: millions of f32 patterns, every 16-bit pattern and every FP8 code.

/// Every SIMD table really is another implementation (guards against checking the reference
/// against itself), and on AArch64 NEON is among them (it is always available there).
#[test]
fn simd_tables_are_not_the_scalar_one() {
    let tables = simd_tables();
    if cfg!(target_arch = "aarch64") {
        assert!(
            tables.iter().any(|(name, _)| name == "neon"),
            "NEON missing"
        );
    }
    let s = &scalar::KERNELS;
    for (name, k) in tables {
        assert_ne!(k.f32_to_fp8 as usize, s.f32_to_fp8 as usize, "{name}");
        assert_ne!(k.fp8_to_f32 as usize, s.fp8_to_f32 as usize, "{name}");
        assert_ne!(k.f16_to_f32 as usize, s.f16_to_f32 as usize, "{name}");
        assert_ne!(k.mix as usize, s.mix as usize, "{name}");
    }
}

/// Pushes `bits`, its neighbours within ±2 ulp, and the negatives of all of them.
fn push_around(v: &mut Vec<u32>, bits: u32) {
    for d in -2i64..=2 {
        let b = (bits as i64 + d).clamp(0, u32::MAX as i64) as u32;
        v.push(b);
        v.push(b ^ 0x8000_0000);
    }
}

/// Every rounding boundary the encoders have: each representable value of E4M3, E5M2 and f16
/// and each midpoint between neighbours (± ulps), the overflow thresholds, bf16 ties for
/// every upper half, each f32 exponent with edge mantissas, and the specials.
fn boundary_patterns() -> Vec<u32> {
    let mut v = Vec::new();
    for fmt in FORMATS {
        let values: Vec<f64> = (0u8..0x80)
            .map(|c| fmt.decode(c))
            .filter(|x| x.is_finite())
            .map(f64::from)
            .collect();
        for w in values.windows(2) {
            push_around(&mut v, (w[0] as f32).to_bits());
            push_around(&mut v, (((w[0] + w[1]) / 2.0) as f32).to_bits());
        }
        let max = *values.last().unwrap_or(&0.0);
        let ulp = max - values[values.len() - 2];
        for k in [0.5, 1.0, 1.5, 2.0] {
            push_around(&mut v, ((max + k * ulp) as f32).to_bits());
        }
    }
    for h in 0u16..0x7C00 {
        let a = f16::from_bits(h).to_f32() as f64;
        let b = f16::from_bits(h + 1).to_f32() as f64;
        push_around(&mut v, (a as f32).to_bits());
        push_around(&mut v, (((a + b) / 2.0) as f32).to_bits());
    }
    for hi in 0u32..0x1_0000 {
        for lo in [0x7FFF, 0x8000, 0x8001] {
            v.push(hi << 16 | lo);
        }
    }
    for field in 0u32..256 {
        let mut mants = vec![0u32, 0x7F_FFFF];
        for k in 0..23 {
            let p = 1u32 << k;
            mants.extend([
                p,
                p - 1,
                p + 1,
                p | (p >> 1),
                0x7F_FFFF ^ p,
                0x7F_FFFF & !(p - 1),
            ]);
        }
        for m in mants {
            let b = field << 23 | (m & 0x7F_FFFF);
            v.push(b);
            v.push(b | 0x8000_0000);
        }
    }
    for b in [
        0x7F80_0000u32,
        0x7F80_0001,
        0x7FA0_0000,
        0x7FC0_0000,
        0x7FC0_0001,
        0x7FFF_FFFF,
        0,
        1,
        0x7F_FFFF,
        0x80_0000,
        0x7F7F_FFFF,
    ] {
        v.push(b);
        v.push(b | 0x8000_0000);
    }
    v
}

/// ≥ 2^22 f32 bit patterns: a stride through all 2^32 (random start), uniformly random
/// patterns, random values with exponents near the FP8/f16 ranges, and all boundaries, shuffled
/// so that every SIMD lane and tail position sees every kind of value.
fn f32_patterns(rng: &mut Rng) -> Vec<f32> {
    let mut v: Vec<u32> = Vec::with_capacity(8 << 20);
    let mut p = rng.u32();
    for _ in 0..(1 << 22) {
        v.push(p);
        p = p.wrapping_add(1025);
    }
    for _ in 0..(1 << 21) {
        v.push(rng.u32());
    }
    for _ in 0..(1 << 20) {
        let field = 95 + rng.below(56) as u32; // 2^-32 .. 2^23
        v.push((rng.u32() & 0x807F_FFFF) | field << 23);
    }
    v.extend(boundary_patterns());
    rng.shuffle(&mut v);
    v.into_iter().map(f32::from_bits).collect()
}

fn first_difference<T: PartialEq>(a: &[T], b: &[T]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

fn f32_bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// Block length for the sweeps: odd, so chunks and tails land everywhere.
const SWEEP_BLOCK: usize = 4093;

/// `f32_to_fp8` of table `k` against the scalar table over `input`, in blocks of
/// [`SWEEP_BLOCK`] with consecutive stochastic-rounding indices.
fn sweep_fp8(
    name: &str,
    k: &Kernels,
    input: &[f32],
    fmt: Fp8Format,
    rounding: Rounding,
    scale: f32,
    seed: u64,
) {
    let mut a = vec![0u8; SWEEP_BLOCK];
    let mut b = vec![0u8; SWEEP_BLOCK];
    let key = StreamKey::new(seed, (seed >> 40) as u32);
    // The blocks' indices run from `base` without wrapping the low 32 bits.
    let base = (seed as u32) % (u32::MAX - input.len() as u32);
    for (blk, chunk) in input.chunks(SWEEP_BLOCK).enumerate() {
        let n = chunk.len();
        let args = EncodeArgs {
            format: fmt,
            scale,
            rounding,
            key,
            index_lo: base + (blk * SWEEP_BLOCK) as u32,
            stream: false,
        };
        a[..n].fill(0xA5);
        b[..n].fill(0x5A);
        // SAFETY: buffers hold n elements and do not overlap.
        let (am_k, am_s) = unsafe {
            (
                (k.f32_to_fp8)(&args, chunk.as_ptr(), a.as_mut_ptr(), n),
                (scalar::KERNELS.f32_to_fp8)(&args, chunk.as_ptr(), b.as_mut_ptr(), n),
            )
        };
        if let Some(i) = first_difference(&a[..n], &b[..n]) {
            panic!(
                "{name} f32_to_fp8 {fmt:?} {rounding:?} scale {scale:e} seed {seed}: x = {:#010x} \
                 ({:e}) index {}: {:#04x}, scalar {:#04x}",
                chunk[i].to_bits(),
                chunk[i],
                args.index_lo + i as u32,
                a[i],
                b[i]
            );
        }
        assert_eq!(am_k, am_s, "{name} f32_to_fp8 amax, block {blk}");
    }
}

/// `f32_to_bf16` (`bf`) or `f32_to_f16` of table `k` against the scalar table over `input`.
fn sweep_16(name: &str, k: &Kernels, input: &[f32], bf: bool, saturate: bool, scale: f32) {
    let mut a = vec![0u16; SWEEP_BLOCK];
    let mut b = vec![0u16; SWEEP_BLOCK];
    let s = &scalar::KERNELS;
    let (fk, fs) = if bf {
        (k.f32_to_bf16, s.f32_to_bf16)
    } else {
        (k.f32_to_f16, s.f32_to_f16)
    };
    for chunk in input.chunks(SWEEP_BLOCK) {
        let n = chunk.len();
        a[..n].fill(0xA5A5);
        b[..n].fill(0x5A5A);
        // SAFETY: buffers hold n elements and do not overlap.
        let (am_k, am_s) = unsafe {
            (
                fk(scale, saturate, chunk.as_ptr(), a.as_mut_ptr(), n),
                fs(scale, saturate, chunk.as_ptr(), b.as_mut_ptr(), n),
            )
        };
        if let Some(i) = first_difference(&a[..n], &b[..n]) {
            panic!(
                "{name} f32_to_{} saturate {saturate} scale {scale:e}: x = {:#010x}: {:#06x}, \
                 scalar {:#06x}",
                if bf { "bf16" } else { "f16" },
                chunk[i].to_bits(),
                a[i],
                b[i]
            );
        }
        assert_eq!(am_k, am_s, "{name} amax");
    }
}

/// `f32_to_f32` of table `k` against the scalar table over `input`.
fn sweep_f32(name: &str, k: &Kernels, input: &[f32], saturate: bool, scale: f32) {
    let mut a = vec![0f32; SWEEP_BLOCK];
    let mut b = vec![0f32; SWEEP_BLOCK];
    for chunk in input.chunks(SWEEP_BLOCK) {
        let n = chunk.len();
        a[..n].fill(f32::from_bits(0xA5A5_A5A5));
        b[..n].fill(f32::from_bits(0x5A5A_5A5A));
        // SAFETY: buffers hold n elements and do not overlap.
        let (am_k, am_s) = unsafe {
            (
                (k.f32_to_f32)(scale, saturate, chunk.as_ptr(), a.as_mut_ptr(), n),
                (scalar::KERNELS.f32_to_f32)(scale, saturate, chunk.as_ptr(), b.as_mut_ptr(), n),
            )
        };
        let (ab, bb) = (f32_bits(&a[..n]), f32_bits(&b[..n]));
        if let Some(i) = first_difference(&ab, &bb) {
            panic!(
                "{name} f32_to_f32 saturate {saturate} scale {scale:e}: x = {:#010x}: {:#010x}, \
                 scalar {:#010x}",
                chunk[i].to_bits(),
                ab[i],
                bb[i]
            );
        }
        assert_eq!(am_k, am_s, "{name} amax");
    }
}

/// `f32_to_fp8`, every format and rounding mode, over ≥ 2^22 patterns; more stochastic seeds
/// and other scales over part of them.
#[test]
fn f32_to_fp8_pattern_sweep() {
    let mut rng = Rng::for_test("f32_to_fp8_pattern_sweep");
    let input = f32_patterns(&mut rng);
    assert!(input.len() >= 1 << 22);
    for (name, k) in simd_tables() {
        for fmt in FORMATS {
            for rounding in ROUNDINGS {
                sweep_fp8(&name, k, &input, fmt, rounding, 1.0, rng.u64());
            }
        }
        let part = &input[..1 << 19];
        for fmt in FORMATS {
            for _ in 0..3 {
                let seed = rng.u64();
                sweep_fp8(&name, k, part, fmt, Rounding::StochasticSaturate, 1.0, seed);
            }
            for scale in [0.125f32, 3.7, 1e-30, 1e30, -2.5, f32::MIN_POSITIVE] {
                for rounding in ROUNDINGS {
                    sweep_fp8(&name, k, &part[..1 << 16], fmt, rounding, scale, rng.u64());
                }
            }
        }
    }
}

/// A value between two E4M3 codes rounds both ways under stochastic rounding, in the expected
/// proportion (a kernel that ignored the random bits would fail the sweeps as well).
#[test]
fn stochastic_rounding_uses_the_randomness() {
    // 1.0625 lies halfway between 1.0 (0x38) and 1.125 (0x39).
    let x = vec![1.0625f32; 4096];
    for (name, k) in simd_tables() {
        let mut out = vec![0u8; x.len()];
        let args = EncodeArgs {
            format: Fp8Format::E4M3,
            scale: 1.0,
            rounding: Rounding::StochasticSaturate,
            key: StreamKey::new(42, 0),
            index_lo: 0,
            stream: false,
        };
        // SAFETY: buffers hold x.len() elements.
        unsafe { (k.f32_to_fp8)(&args, x.as_ptr(), out.as_mut_ptr(), x.len()) };
        let ups = out.iter().filter(|&&c| c == 0x39).count();
        assert!(out.iter().all(|&c| c == 0x38 || c == 0x39), "{name}");
        assert!(
            (1500..2600).contains(&ups),
            "{name}: {ups} of 4096 rounded up"
        );
    }
}

/// `f32_to_bf16`, `f32_to_f16` and `f32_to_f32`, saturating or not, over ≥ 2^22 patterns at
/// scale 1 and over part of them at other scales.
#[test]
fn f32_to_16bit_and_f32_pattern_sweep() {
    let mut rng = Rng::for_test("f32_to_16bit_and_f32_pattern_sweep");
    let input = f32_patterns(&mut rng);
    for (name, k) in simd_tables() {
        for bf in [false, true] {
            for saturate in [false, true] {
                sweep_16(&name, k, &input, bf, saturate, 1.0);
                for scale in [0.5f32, 3.7, 1e-30, 1e30, -1.0] {
                    sweep_16(&name, k, &input[..1 << 16], bf, saturate, scale);
                }
            }
        }
        for saturate in [false, true] {
            sweep_f32(&name, k, &input, saturate, 1.0);
            for scale in [0.5f32, 3.7, 1e-30, 1e30, -1.0, f32::MAX] {
                sweep_f32(&name, k, &input[..1 << 16], saturate, scale);
            }
        }
    }
}

/// Every bf16 and f16 pattern widens as the scalar code does (each in a random lane), and an
/// f16 NaN keeps its sign and payload and becomes quiet.
#[test]
fn all_half_patterns_widen() {
    let mut rng = Rng::for_test("all_half_patterns_widen");
    for (name, k) in simd_tables() {
        let mut input: Vec<u16> = (0..=u16::MAX).collect();
        input.rotate_left(rng.below(1 << 16));
        for (what, fk, fs) in [
            ("bf16_to_f32", k.bf16_to_f32, scalar::KERNELS.bf16_to_f32),
            ("f16_to_f32", k.f16_to_f32, scalar::KERNELS.f16_to_f32),
        ] {
            let mut a = vec![f32::from_bits(0xA5A5_A5A5); input.len()];
            let mut b = vec![f32::from_bits(0x5A5A_5A5A); input.len()];
            // SAFETY: buffers hold input.len() elements.
            unsafe {
                fk(input.as_ptr(), a.as_mut_ptr(), input.len());
                fs(input.as_ptr(), b.as_mut_ptr(), input.len());
            }
            let (ab, bb) = (f32_bits(&a), f32_bits(&b));
            if let Some(i) = first_difference(&ab, &bb) {
                panic!(
                    "{name} {what}: h = {:#06x}: {:#010x}, scalar {:#010x}",
                    input[i], ab[i], bb[i]
                );
            }
        }
        let mut out = [0f32; 1];
        // SAFETY: one element.
        unsafe { (k.f16_to_f32)([0xFC01u16].as_ptr(), out.as_mut_ptr(), 1) };
        assert_eq!(out[0].to_bits(), 0xFFC0_2000, "{name}: f16 NaN");
    }
}

/// All 256 codes of each FP8 format decode as the scalar code does, in order and shuffled.
#[test]
fn all_fp8_codes_decode() {
    let mut rng = Rng::for_test("all_fp8_codes_decode");
    for (name, k) in simd_tables() {
        for fmt in FORMATS {
            for rep in 0..8 {
                let mut codes: Vec<u8> = (0..=255u8).collect();
                if rep > 0 {
                    rng.shuffle(&mut codes);
                }
                let mut a = vec![f32::from_bits(0xA5A5_A5A5); 256];
                let mut b = vec![f32::from_bits(0x5A5A_5A5A); 256];
                // SAFETY: 256 elements each.
                unsafe {
                    (k.fp8_to_f32)(fmt, codes.as_ptr(), a.as_mut_ptr(), 256);
                    (scalar::KERNELS.fp8_to_f32)(fmt, codes.as_ptr(), b.as_mut_ptr(), 256);
                }
                let (ab, bb) = (f32_bits(&a), f32_bits(&b));
                if let Some(i) = first_difference(&ab, &bb) {
                    panic!(
                        "{name} fp8_to_f32 {fmt:?}: code {:#04x}: {:#010x}, scalar {:#010x}",
                        codes[i], ab[i], bb[i]
                    );
                }
            }
        }
    }
}

/// The residual mix through [`Exec`] on every SIMD back end against the scalar one, for f32,
/// bf16 and f16 inputs: 1 to 3 threads, lengths up to 2^18 + 3 (several blocks), with and
/// without the FP8 copy, forward with `out` separate or exactly `x` or `f`, backward with
/// `grad_x` / `grad_f` separate or one of them exactly `grad_out`, accumulating or not.
#[test]
fn exec_residual_mix_types_and_aliasing() {
    let mut rng = Rng::for_test("exec_residual_mix_types_and_aliasing");
    for backend in simd_backends() {
        for io in [DType::F32, DType::BF16, DType::F16] {
            for case in 0..12 {
                exec_mix_case(&mut rng, backend, io, case);
            }
        }
    }
}

fn exec_mix_case(rng: &mut Rng, backend: Backend, io: DType, case: usize) {
    let execs = [
        Exec::new(backend).unwrap().with_threads(1 + rng.below(3)),
        Exec::new(Backend::Scalar).unwrap(),
    ];
    let n = rng.pick(&[1usize, 70, 1025, (1 << 18) + 3]);
    let size = io.size();
    let fp8_type = rng.pick(&[DType::E4M3, DType::E5M2]);
    let with_fp8 = !case.is_multiple_of(3);
    let params = MixParams {
        tau: rng.pick(&[0.0f32, 0.1, 0.4, 1.0]),
        rounding: rng.pick(&ROUNDINGS),
        seed: rng.u64(),
    };
    let ctx = format!("{backend:?} {io:?} n={n} case {case} {params:?} {fp8_type:?}");
    let values = |rng: &mut Rng| {
        if io == DType::F32 {
            interesting_f32_bytes(rng, n)
        } else {
            u16_bytes(rng, n)
        }
    };
    // NaNs and infinities in both summands included: every back end gives the same NaN.
    let (x, f) = (values(rng), values(rng));
    let poison = rng.bytes(n * size);
    let poison_fp8 = rng.bytes(n);

    // Forward: out separate, or in place on x / f.
    let forward = |e: &Exec| {
        let (mut xs, mut fs, mut out, mut q) =
            (x.clone(), f.clone(), poison.clone(), poison_fp8.clone());
        let qp = if with_fp8 {
            q.as_mut_ptr()
        } else {
            std::ptr::null_mut()
        };
        let out_ptr = match case % 4 {
            0 => xs.as_mut_ptr(),
            1 => fs.as_mut_ptr(),
            _ => out.as_mut_ptr(),
        };
        // SAFETY: buffers hold n elements; out is exactly x or f, or separate.
        unsafe {
            e.residual_mix_raw(
                xs.as_ptr(),
                fs.as_ptr(),
                out_ptr,
                io,
                n,
                qp,
                fp8_type,
                &params,
            )
        }
        .unwrap();
        (xs, fs, out, q)
    };
    assert!(
        forward(&execs[0]) == forward(&execs[1]),
        "residual_mix {ctx}"
    );

    // Backward: grad_x / grad_f separate, or one of them exactly grad_out.
    let accumulate = rng.below(2) == 1;
    let backward = |e: &Exec| {
        let (mut g, mut gx, mut gf, mut q) =
            (x.clone(), f.clone(), poison.clone(), poison_fp8.clone());
        let qp = if with_fp8 {
            q.as_mut_ptr()
        } else {
            std::ptr::null_mut()
        };
        let (gxp, gfp) = match case % 3 {
            0 => (g.as_mut_ptr(), gf.as_mut_ptr()),
            1 => (gx.as_mut_ptr(), g.as_mut_ptr()),
            _ => (gx.as_mut_ptr(), gf.as_mut_ptr()),
        };
        // SAFETY: buffers hold n elements; aliasing as the contract allows.
        unsafe {
            e.residual_mix_backward_raw(
                g.as_ptr(),
                gxp,
                gfp,
                io,
                n,
                accumulate,
                qp,
                fp8_type,
                &params,
            )
        }
        .unwrap();
        (g, gx, gf, q)
    };
    assert!(
        backward(&execs[0]) == backward(&execs[1]),
        "residual_mix_backward {ctx} accumulate {accumulate}"
    );
}
