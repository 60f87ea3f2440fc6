//! Exhaustive checks of the SIMD back ends against the scalar reference tables.
//!
//! On x86-64: every one of the 2^32 f32 bit patterns through `f32_to_fp8` (E4M3 and E5M2,
//! `NearestSaturate` and `Nearest`, scale 1), `f32_to_bf16` and `f32_to_f16`, split over all
//! CPUs, and a sixteenth of them (every binade) through stochastic rounding. Elsewhere (e.g. NEON under qemu) a strided sample of 2^22 patterns plus every pattern
//! near a rounding boundary. Everywhere: all 2^16 bf16 and f16 patterns through widening and
//! every encoder (stochastic rounding with several seeds), and all 256 codes of both FP8 formats
//! through decoding. Run in release (`cargo test --release --test backend_exhaustive`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use unitfp8::backend::{Backend, EncodeArgs, Kernels, scalar};
use unitfp8::rng::StreamKey;
use unitfp8::{Fp8Format, Rounding};

/// Every SIMD kernel table this machine can run (each available AVX-512 variant on x86-64, and
/// every other available non-scalar back end).
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
    }
    v
}

/// Tables whose `f32_to_fp8`/`f32_to_bf16`/`f32_to_f16` entries differ (variants often share
/// encoders; checking the same function twice over 2^32 inputs would only cost time).
fn distinct_encoders(tables: &[(String, &'static Kernels)]) -> Vec<(String, &'static Kernels)> {
    let mut seen: Vec<[usize; 3]> = Vec::new();
    let mut out = Vec::new();
    for (name, k) in tables {
        let key = [
            k.f32_to_fp8 as usize,
            k.f32_to_bf16 as usize,
            k.f32_to_f16 as usize,
        ];
        if !seen.contains(&key) {
            seen.push(key);
            out.push((name.clone(), *k));
        }
    }
    out
}

const CHUNK: usize = 1 << 16;

/// The magnitudes checked (each with both signs): chunk `c` holds `[c · CHUNK, (c + 1) · CHUNK)`
/// on x86-64 (all 2^31), elsewhere a sample.
struct Patterns {
    chunks: usize,
    sample: Option<Vec<u32>>,
}

impl Patterns {
    fn new() -> Patterns {
        if cfg!(target_arch = "x86_64") {
            Patterns {
                chunks: (1usize << 31) / CHUNK,
                sample: None,
            }
        } else {
            let s = sample_magnitudes();
            Patterns {
                chunks: s.len().div_ceil(CHUNK),
                sample: Some(s),
            }
        }
    }

    fn count(&self) -> u64 {
        2 * self.sample.as_ref().map_or(1u64 << 31, |s| s.len() as u64)
    }

    fn chunk(&self, c: usize, out: &mut Vec<u32>) {
        out.clear();
        match &self.sample {
            None => out.extend((0..CHUNK).map(|i| (c * CHUNK + i) as u32)),
            Some(s) => out.extend_from_slice(&s[c * CHUNK..((c + 1) * CHUNK).min(s.len())]),
        }
    }
}

/// 2^22 magnitudes spread over the whole space (an odd stride visits every residue class),
/// plus every magnitude within 300 of a rounding boundary of any target.
fn sample_magnitudes() -> Vec<u32> {
    let mut v: Vec<u32> = (0..1u32 << 22)
        .map(|i| i.wrapping_mul(0x9E37_79B1) & 0x7FFF_FFFF)
        .collect();
    let mut centres: Vec<u32> = vec![0, 0x7F80_0000, 0x7FC0_0000, 0x0080_0000, 0x7F7F_FFFF];
    // Every binade start, and every E4M3/E5M2/f16 value and tie in their ranges.
    for e in 0..255u32 {
        centres.push(e << 23);
    }
    for e in 100..150u32 {
        for m in 0..16u32 {
            centres.push((e << 23) | (m << 19));
        }
        for m in 0..64u32 {
            centres.push((e << 23) | (m << 17) | (1 << 12));
        }
    }
    for c in centres {
        for d in -300i64..=300 {
            v.push((c as i64 + d).clamp(0, 0x7FFF_FFFF) as u32);
        }
    }
    v
}

/// Runs `check` over every chunk of magnitudes on all CPUs; panics with the first failure.
fn for_all_chunks(p: &Patterns, check: impl Fn(&[u32]) -> Result<(), String> + Sync) {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = Vec::with_capacity(CHUNK);
                while !stop.load(Ordering::Relaxed) {
                    let c = next.fetch_add(1, Ordering::Relaxed);
                    if c >= p.chunks {
                        break;
                    }
                    p.chunk(c, &mut buf);
                    if let Err(e) = check(&buf) {
                        stop.store(true, Ordering::Relaxed);
                        failure.lock().unwrap().get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap() {
        panic!("{e}");
    }
}

fn first_diff<T: PartialEq + Copy + std::fmt::LowerHex>(
    x: &[f32],
    got: &[T],
    want: &[T],
) -> Option<String> {
    got.iter().zip(want).position(|(a, b)| a != b).map(|i| {
        format!(
            "input 0x{:08x}: got 0x{:x}, scalar 0x{:x}",
            x[i].to_bits(),
            got[i],
            want[i]
        )
    })
}

/// One encoder under test: its scalar reference for a single value, the sign bit it ORs in,
/// and how to call a table's kernel on a block.
#[derive(Clone, Copy)]
enum Enc {
    Fp8(Fp8Format, Rounding),
    Bf16(bool),
    F16(bool),
}

impl Enc {
    fn all() -> Vec<Enc> {
        let mut v = Vec::new();
        for f in [Fp8Format::E4M3, Fp8Format::E5M2] {
            v.push(Enc::Fp8(f, Rounding::NearestSaturate));
            v.push(Enc::Fp8(f, Rounding::Nearest));
        }
        for sat in [false, true] {
            v.push(Enc::Bf16(sat));
            v.push(Enc::F16(sat));
        }
        v
    }

    fn name(self) -> String {
        match self {
            Enc::Fp8(f, r) => format!("f32->{f:?} {r:?}"),
            Enc::Bf16(s) => format!("f32->bf16 saturate={s}"),
            Enc::F16(s) => format!("f32->f16 saturate={s}"),
        }
    }

    /// The reference function of `fp8.rs` (what the scalar kernel computes at scale 1).
    fn reference(self, x: f32) -> u16 {
        match self {
            Enc::Fp8(f, r) => f.encode(x, r, 0) as u16,
            Enc::Bf16(s) => unitfp8::fp8::f32_to_bf16_bits(x, s),
            Enc::F16(s) => unitfp8::fp8::f32_to_f16_bits(x, s),
        }
    }

    fn sign(self) -> u16 {
        match self {
            Enc::Fp8(..) => 0x80,
            _ => 0x8000,
        }
    }

    /// Runs `k`'s kernel at scale 1; returns the codes widened to u16 and the amax bits.
    fn run(self, k: &Kernels, x: &[f32], out: &mut [u16], tmp: &mut [u8]) -> u32 {
        let n = x.len();
        assert!(out.len() >= n && tmp.len() >= n);
        // SAFETY: x, out and tmp hold at least n elements.
        unsafe {
            match self {
                Enc::Fp8(format, rounding) => {
                    let args = EncodeArgs {
                        format,
                        scale: 1.0,
                        rounding,
                        key: StreamKey::new(0, 0),
                        index_lo: 0,
                        stream: true,
                    };
                    tmp[..n].fill(0xA5);
                    let a = (k.f32_to_fp8)(&args, x.as_ptr(), tmp.as_mut_ptr(), n);
                    for i in 0..n {
                        out[i] = tmp[i] as u16;
                    }
                    a
                }
                Enc::Bf16(s) => {
                    out[..n].fill(0xA5A5);
                    (k.f32_to_bf16)(1.0, s, x.as_ptr(), out.as_mut_ptr(), n)
                }
                Enc::F16(s) => {
                    out[..n].fill(0xA5A5);
                    (k.f32_to_f16)(1.0, s, x.as_ptr(), out.as_mut_ptr(), n)
                }
            }
        }
    }
}

/// Every f32 bit pattern (a sample off x86-64) through `f32_to_fp8` (both formats, both
/// round-to-nearest modes), `f32_to_bf16` and `f32_to_f16` (saturating or not), scale 1.
///
/// The reference for a chunk of magnitudes is the `fp8.rs` function (what the scalar kernel
/// runs per element), and for the negated chunk the same code with the sign bit set (every
/// path of those functions ORs the sign in); both facts are re-checked in every chunk by
/// running the scalar kernel itself on a strided subset of both signs. The SIMD kernels see all
/// patterns, and their amax is compared with the exact maximum of the chunk.
#[test]
fn all_f32_patterns() {
    let start = std::time::Instant::now();
    let tables = distinct_encoders(&simd_tables());
    let p = Patterns::new();
    let encs = Enc::all();
    for_all_chunks(&p, |mags| {
        let n = mags.len();
        let pos: Vec<f32> = mags.iter().map(|&b| f32::from_bits(b)).collect();
        let neg: Vec<f32> = mags
            .iter()
            .map(|&b| f32::from_bits(b | 0x8000_0000))
            .collect();
        let amax = mags.iter().copied().max().unwrap_or(0);
        // A strided subset of both signs for the scalar-kernel cross-check.
        let sub: Vec<f32> = (0..n).step_by(61).flat_map(|i| [pos[i], neg[i]]).collect();
        let (mut want, mut got) = (vec![0u16; n], vec![0u16; n]);
        let mut tmp = vec![0u8; n];
        for &e in &encs {
            for (i, &x) in pos.iter().enumerate() {
                want[i] = e.reference(x);
            }
            // Cross-check reference and symmetry against the scalar kernel.
            let mut sw = vec![0u16; sub.len()];
            let mut stmp = vec![0u8; sub.len()];
            e.run(&scalar::KERNELS, &sub, &mut sw, &mut stmp);
            for (j, &w) in sw.iter().enumerate() {
                let r = want[(j / 2) * 61] | if j % 2 == 1 { e.sign() } else { 0 };
                if w != r {
                    return Err(format!(
                        "{}: scalar kernel 0x{w:x} vs reference 0x{r:x} for 0x{:08x}",
                        e.name(),
                        sub[j].to_bits()
                    ));
                }
            }
            for (name, k) in &tables {
                for negative in [false, true] {
                    let x = if negative { &neg } else { &pos };
                    let ga = e.run(k, x, &mut got, &mut tmp);
                    if negative {
                        for w in want.iter_mut() {
                            *w |= e.sign();
                        }
                    }
                    let r = first_diff(x, &got, &want);
                    if negative {
                        for w in want.iter_mut() {
                            *w &= !e.sign();
                        }
                    }
                    if let Some(d) = r {
                        return Err(format!("{name} {}: {d}", e.name()));
                    }
                    if ga != amax {
                        return Err(format!("{name} {}: amax 0x{ga:x} vs 0x{amax:x}", e.name()));
                    }
                }
            }
        }
        // Stochastic rounding on a sixteenth of the chunk (every mantissa pattern of some
        // binades, all binades over the whole run), keys and stream positions varying by chunk.
        let c = (mags[0] as usize / CHUNK) as u64;
        let len = n.min(CHUNK / 16);
        let off = ((c * 40503) as usize % (CHUNK / len)) * len % n.max(1);
        let len = len.min(n - off);
        let key = StreamKey::new(c.wrapping_mul(0x9E37_79B9_7F4A_7C15), c as u32);
        let index_lo = (c as u32).wrapping_mul(0x0101_0101) % (u32::MAX - len as u32);
        for format in [Fp8Format::E4M3, Fp8Format::E5M2] {
            let args = EncodeArgs {
                format,
                scale: 1.0,
                rounding: Rounding::StochasticSaturate,
                key,
                index_lo,
                stream: false,
            };
            for negative in [false, true] {
                let x = if negative {
                    &neg[off..off + len]
                } else {
                    &pos[off..off + len]
                };
                let want: Vec<u8> = x
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        format.encode(
                            v,
                            Rounding::StochasticSaturate,
                            key.bits(index_lo + i as u32),
                        )
                    })
                    .collect();
                for (name, k) in &tables {
                    tmp[..len].fill(0xA5);
                    // SAFETY: x and tmp hold at least len elements.
                    unsafe { (k.f32_to_fp8)(&args, x.as_ptr(), tmp.as_mut_ptr(), len) };
                    if let Some(d) = first_diff(x, &tmp[..len], &want) {
                        return Err(format!(
                            "{name} f32->{format:?} stochastic {key:?} {index_lo}: {d}"
                        ));
                    }
                }
            }
        }
        Ok(())
    });
    println!(
        "all_f32_patterns: {} patterns x {} encoders, {:.1} s",
        p.count(),
        encs.len(),
        start.elapsed().as_secs_f64()
    );
}

/// All 2^16 bf16 and f16 patterns: widening, then every encoder and rounding mode (stochastic
/// with several seeds and stream positions, including the top of the 32-bit index range), with
/// a few scales.
#[test]
fn all_16_bit_patterns_widen_and_encode() {
    let tables = simd_tables();
    let patterns: Vec<u16> = (0..=u16::MAX).collect();
    let n = patterns.len();
    for (name, k) in &tables {
        for (what, widen_scalar, widen) in [
            ("bf16", scalar::KERNELS.bf16_to_f32, k.bf16_to_f32),
            ("f16", scalar::KERNELS.f16_to_f32, k.f16_to_f32),
        ] {
            let (mut want, mut got) = (vec![0f32; n], vec![f32::from_bits(0xA5A5_A5A5); n]);
            // SAFETY: all buffers hold n elements.
            unsafe {
                widen_scalar(patterns.as_ptr(), want.as_mut_ptr(), n);
                widen(patterns.as_ptr(), got.as_mut_ptr(), n);
            }
            for i in 0..n {
                assert_eq!(
                    got[i].to_bits(),
                    want[i].to_bits(),
                    "{name} {what}->f32 of 0x{:04x}",
                    patterns[i]
                );
            }
            let x = want;
            for scale in [1.0f32, 0.375, -4096.0, 3.0e-5] {
                for format in [Fp8Format::E4M3, Fp8Format::E5M2] {
                    for rounding in [
                        Rounding::NearestSaturate,
                        Rounding::Nearest,
                        Rounding::StochasticSaturate,
                    ] {
                        let seeds: &[(u64, u32, u32)] = if rounding == Rounding::StochasticSaturate
                        {
                            &[
                                (0, 0, 0),
                                (1, 0, 12345),
                                (0xDEAD_BEEF_0123_4567, 7, u32::MAX - n as u32 + 1),
                                (u64::MAX, u32::MAX, 1 << 31),
                            ]
                        } else {
                            &[(0, 0, 0)]
                        };
                        for &(seed, hi, index_lo) in seeds {
                            let args = EncodeArgs {
                                format,
                                scale,
                                rounding,
                                key: StreamKey::new(seed, hi),
                                index_lo,
                                stream: true,
                            };
                            let (mut w, mut g) = (vec![0u8; n], vec![0xA5u8; n]);
                            // SAFETY: all buffers hold n elements.
                            let (wa, ga) = unsafe {
                                (
                                    (scalar::KERNELS.f32_to_fp8)(
                                        &args,
                                        x.as_ptr(),
                                        w.as_mut_ptr(),
                                        n,
                                    ),
                                    (k.f32_to_fp8)(&args, x.as_ptr(), g.as_mut_ptr(), n),
                                )
                            };
                            if let Some(d) = first_diff(&x, &g, &w) {
                                panic!(
                                    "{name} {what}->{format:?} {rounding:?} scale {scale} seed {seed}: {d}"
                                );
                            }
                            assert_eq!(wa, ga, "{name} amax");
                        }
                    }
                }
                for saturate in [false, true] {
                    for (to, fs, fk) in [
                        ("bf16", scalar::KERNELS.f32_to_bf16, k.f32_to_bf16),
                        ("f16", scalar::KERNELS.f32_to_f16, k.f32_to_f16),
                    ] {
                        let (mut w, mut g) = (vec![0u16; n], vec![0xA5A5u16; n]);
                        // SAFETY: all buffers hold n elements.
                        let (wa, ga) = unsafe {
                            (
                                fs(scale, saturate, x.as_ptr(), w.as_mut_ptr(), n),
                                fk(scale, saturate, x.as_ptr(), g.as_mut_ptr(), n),
                            )
                        };
                        if let Some(d) = first_diff(&x, &g, &w) {
                            panic!("{name} {what}->{to} scale {scale} saturate {saturate}: {d}");
                        }
                        assert_eq!(wa, ga, "{name} amax");
                    }
                    let (mut w, mut g) = (vec![0f32; n], vec![0f32; n]);
                    // SAFETY: all buffers hold n elements.
                    let (wa, ga) = unsafe {
                        (
                            (scalar::KERNELS.f32_to_f32)(
                                scale,
                                saturate,
                                x.as_ptr(),
                                w.as_mut_ptr(),
                                n,
                            ),
                            (k.f32_to_f32)(scale, saturate, x.as_ptr(), g.as_mut_ptr(), n),
                        )
                    };
                    let (w, g): (Vec<u32>, Vec<u32>) = (
                        w.iter().map(|v| v.to_bits()).collect(),
                        g.iter().map(|v| v.to_bits()).collect(),
                    );
                    if let Some(d) = first_diff(&x, &g, &w) {
                        panic!("{name} {what}->f32 scale {scale} saturate {saturate}: {d}");
                    }
                    assert_eq!(wa, ga, "{name} amax");
                }
            }
        }
    }
}

/// All 256 codes of both FP8 formats decode exactly as the scalar reference (and as
/// [`Fp8Format::decode`]), at every offset within a 64-code block.
#[test]
fn all_fp8_codes_decode() {
    for (name, k) in simd_tables() {
        for format in [Fp8Format::E4M3, Fp8Format::E5M2] {
            for rot in [0usize, 1, 17, 63, 100, 255] {
                let codes: Vec<u8> = (0..256).map(|c| ((c + rot) % 256) as u8).collect();
                for n in [256usize, 255, 64, 63, 1] {
                    let mut got = vec![f32::from_bits(0xA5A5_A5A5); n + 1];
                    // SAFETY: codes holds at least n, got n + 1 elements.
                    unsafe { (k.fp8_to_f32)(format, codes.as_ptr(), got.as_mut_ptr(), n) };
                    for i in 0..n {
                        assert_eq!(
                            got[i].to_bits(),
                            format.decode(codes[i]).to_bits(),
                            "{name} {format:?} code 0x{:02x}",
                            codes[i]
                        );
                    }
                    assert_eq!(got[n].to_bits(), 0xA5A5_A5A5, "{name}: wrote past the end");
                }
            }
        }
    }
}

/// All 2^16 bf16 patterns straight to FP8 (`bf16_to_fp8`) in every table, the scalar one
/// included: both formats, every rounding mode, scales 1 (the 16-bit path of AVX-512), −1,
/// powers of two and non-powers of two, several stochastic keys and stream positions (the top
/// of the 32-bit index range too). The reference is the contract itself: the scalar
/// `f32_to_fp8` on the exactly widened values, amax included. Each case also runs on a
/// misaligned odd-length slice with poisoned outputs and a guard byte.
#[test]
fn all_bf16_patterns_to_fp8() {
    let mut tables = simd_tables();
    tables.push(("scalar".to_string(), &scalar::KERNELS));
    let patterns: Vec<u16> = (0..=u16::MAX).collect();
    let n = patterns.len();
    let widened: Vec<f32> = patterns
        .iter()
        .map(|&h| f32::from_bits((h as u32) << 16))
        .collect();
    for (name, k) in &tables {
        for scale in [1.0f32, -1.0, 0.375, 2.0, -4096.0, 3.0e-5, 1.1, 448.0 / 3.0] {
            for format in [Fp8Format::E4M3, Fp8Format::E5M2] {
                for rounding in [
                    Rounding::NearestSaturate,
                    Rounding::Nearest,
                    Rounding::StochasticSaturate,
                ] {
                    let seeds: &[(u64, u32, u32)] = if rounding == Rounding::StochasticSaturate {
                        &[
                            (0, 0, 0),
                            (1, 0, 12345),
                            (0xDEAD_BEEF_0123_4567, 7, u32::MAX - n as u32 + 1),
                            (u64::MAX, u32::MAX, 1 << 31),
                        ]
                    } else {
                        &[(0, 0, 0), (3, 1, 77)]
                    };
                    for &(seed, hi, index_lo) in seeds {
                        let args = EncodeArgs {
                            format,
                            scale,
                            rounding,
                            key: StreamKey::new(seed, hi),
                            index_lo,
                            stream: false,
                        };
                        let ctx = format!(
                            "{name} bf16->{format:?} {rounding:?} scale {scale} seed {seed} {index_lo}"
                        );
                        let mut want = vec![0u8; n];
                        let mut got = vec![0xA5u8; n + 1];
                        // SAFETY: all buffers hold at least n elements.
                        let (wa, ga) = unsafe {
                            (
                                (scalar::KERNELS.f32_to_fp8)(
                                    &args,
                                    widened.as_ptr(),
                                    want.as_mut_ptr(),
                                    n,
                                ),
                                (k.bf16_to_fp8)(&args, patterns.as_ptr(), got.as_mut_ptr(), n),
                            )
                        };
                        if let Some(d) = first_diff(&widened, &got[..n], &want) {
                            panic!("{ctx}: {d}");
                        }
                        assert_eq!(ga, wa, "{ctx}: amax");
                        assert_eq!(got[n], 0xA5, "{ctx}: wrote past the end");
                        // A misaligned odd-length piece: elements [off, off + m), index_lo moved.
                        let (off, m) = (1 + (seed as usize % 7), n - 1000 - 3);
                        let sub = EncodeArgs {
                            index_lo: index_lo.wrapping_add(off as u32),
                            ..args
                        };
                        let mut got = vec![0x5Au8; m + 2];
                        // SAFETY: patterns holds off + m elements, got m + 2.
                        let ga = unsafe {
                            (k.bf16_to_fp8)(
                                &sub,
                                patterns[off..].as_ptr(),
                                got[1..].as_mut_ptr(),
                                m,
                            )
                        };
                        if let Some(d) =
                            first_diff(&widened[off..], &got[1..m + 1], &want[off..off + m])
                        {
                            panic!("{ctx} piece at {off}: {d}");
                        }
                        let wa = widened[off..off + m]
                            .iter()
                            .map(|x| x.to_bits() & 0x7FFF_FFFF)
                            .max()
                            .unwrap_or(0);
                        assert_eq!(ga, wa, "{ctx} piece: amax");
                        assert!(
                            got[0] == 0x5A && got[m + 1] == 0x5A,
                            "{ctx} piece: wrote outside"
                        );
                    }
                }
            }
        }
    }
}

/// All 256 codes of both FP8 formats through `fp8_to_bf16` in every table, at every offset
/// within a 64-code block and several lengths, against the high half of [`Fp8Format::decode`]
/// (which `f32_to_bf16_bits` reproduces exactly, NaN canonical with its sign).
#[test]
fn all_fp8_codes_to_bf16() {
    let mut tables = simd_tables();
    tables.push(("scalar".to_string(), &scalar::KERNELS));
    for (name, k) in tables {
        for format in [Fp8Format::E4M3, Fp8Format::E5M2] {
            for rot in [0usize, 1, 17, 31, 63, 100, 255] {
                let codes: Vec<u8> = (0..256).map(|c| ((c + rot) % 256) as u8).collect();
                for n in [256usize, 255, 129, 64, 63, 33, 32, 31, 1, 0] {
                    let mut got = vec![0xA5A5u16; n + 1];
                    // SAFETY: codes holds at least n, got n + 1 elements.
                    unsafe { (k.fp8_to_bf16)(format, codes.as_ptr(), got.as_mut_ptr(), n) };
                    for i in 0..n {
                        let f = format.decode(codes[i]);
                        let want = unitfp8::fp8::f32_to_bf16_bits(f, false);
                        let expect = if f.is_nan() {
                            0x7FC0 | ((codes[i] as u16 & 0x80) << 8)
                        } else {
                            (f.to_bits() >> 16) as u16
                        };
                        assert_eq!(want, expect, "reference of 0x{:02x}", codes[i]);
                        assert_eq!(
                            got[i], want,
                            "{name} {format:?} code 0x{:02x}: got 0x{:04x}",
                            codes[i], got[i]
                        );
                    }
                    assert_eq!(got[n], 0xA5A5, "{name}: wrote past the end");
                }
            }
        }
    }
}
