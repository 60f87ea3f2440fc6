//! The NEON back end against the scalar reference, bit for bit: ≥ 2^22 f32 patterns (a random
//! stride through all 2^32, random values, and every rounding boundary of E4M3, E5M2, f16 and
//! bf16), all 2^16 half patterns, all 256 FP8 codes, every rounding mode (stochastic with
//! several seeds), lengths 0..=70 and large odd ones, misaligned pointers, poisoned outputs
//! with guard bytes, in-place calls, FPCR flush-to-zero, and the cast / cast-transpose /
//! residual-mix drivers.
//!
//! AArch64 only (`scripts/test-aarch64.sh` runs it under qemu); elsewhere it compiles to
//! nothing. Random inputs are seeded from the clock (or `UNITFP8_TEST_SEED`); the seed is
//! printed so a failure can be replayed.
#![cfg(target_arch = "aarch64")]

use half::{bf16, f16};
use unitfp8::backend::{EncodeArgs, Kernels, scalar};
use unitfp8::rng::StreamKey;
use unitfp8::{
    Backend, CastParams, DType, E4M3, E5M2, Element, Exec, Fp8Format, MixParams, Rounding,
};

// ------------------------------------------------------------------------------------------
// Utilities.

/// splitmix64.
struct Rng(u64);

impl Rng {
    /// A generator seeded from `UNITFP8_TEST_SEED` or the clock; prints the seed.
    fn new(test: &str) -> Rng {
        let seed = std::env::var("UNITFP8_TEST_SEED")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0x5EED, |d| d.as_nanos() as u64)
            });
        eprintln!("{test}: UNITFP8_TEST_SEED={seed}");
        Rng(seed)
    }

    fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn u32(&mut self) -> u32 {
        (self.u64() >> 32) as u32
    }

    fn below(&mut self, n: usize) -> usize {
        (self.u64() % n as u64) as usize
    }
}

fn neon() -> &'static Kernels {
    Backend::Neon
        .kernels()
        .expect("NEON is always available on aarch64")
}

const SCALAR: &Kernels = &scalar::KERNELS;

const ROUNDINGS: [Rounding; 3] = [
    Rounding::NearestSaturate,
    Rounding::Nearest,
    Rounding::StochasticSaturate,
];
const FORMATS: [Fp8Format; 2] = [Fp8Format::E4M3, Fp8Format::E5M2];

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
/// patterns, random values with exponents near the FP8/f16 ranges, and all boundaries.
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
    // Shuffle so that every SIMD lane and tail position sees every kind of value.
    for i in (1..v.len()).rev() {
        let j = rng.below(i + 1);
        v.swap(i, j);
    }
    v.into_iter().map(f32::from_bits).collect()
}

/// A random f32 drawn mostly from interesting values.
fn special_f32(rng: &mut Rng, boundaries: &[u32]) -> f32 {
    match rng.below(4) {
        0 => f32::from_bits(rng.u32()),
        1 => (rng.u32() as i32 as f32) * 2f32.powi(-(rng.below(40) as i32)),
        _ => f32::from_bits(boundaries[rng.below(boundaries.len())]),
    }
}

fn first_mismatch<T: PartialEq>(a: &[T], b: &[T]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

// ------------------------------------------------------------------------------------------
// Large pattern sweeps.

/// Block length for the sweeps: odd, so chunks and tails land everywhere.
const SWEEP_BLOCK: usize = 4093;

fn sweep_fp8(
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
    let base = (seed as u32).wrapping_mul(0x9E37_79B9);
    for (blk, chunk) in input.chunks(SWEEP_BLOCK).enumerate() {
        let n = chunk.len();
        let args = EncodeArgs {
            format: fmt,
            scale,
            rounding,
            key,
            index_lo: base.wrapping_add((blk * SWEEP_BLOCK) as u32),
            stream: false,
        };
        a[..n].fill(0xA5);
        b[..n].fill(0x5A);
        // SAFETY: buffers hold n elements and do not overlap.
        let (am_n, am_s) = unsafe {
            (
                (k.f32_to_fp8)(&args, chunk.as_ptr(), a.as_mut_ptr(), n),
                (SCALAR.f32_to_fp8)(&args, chunk.as_ptr(), b.as_mut_ptr(), n),
            )
        };
        if let Some(i) = first_mismatch(&a[..n], &b[..n]) {
            panic!(
                "f32_to_fp8 {fmt:?} {rounding:?} scale {scale:e} seed {seed}: x = {:#010x} ({:e}) \
                 index {}: neon {:#04x}, scalar {:#04x}",
                chunk[i].to_bits(),
                chunk[i],
                args.index_lo.wrapping_add(i as u32),
                a[i],
                b[i]
            );
        }
        assert_eq!(am_n, am_s, "f32_to_fp8 amax, block {blk}");
    }
}

fn sweep_16(k: &Kernels, input: &[f32], bf: bool, saturate: bool, scale: f32) {
    let mut a = vec![0u16; SWEEP_BLOCK];
    let mut b = vec![0u16; SWEEP_BLOCK];
    for chunk in input.chunks(SWEEP_BLOCK) {
        let n = chunk.len();
        a[..n].fill(0xA5A5);
        b[..n].fill(0x5A5A);
        let (fa, fs) = if bf {
            (k.f32_to_bf16, SCALAR.f32_to_bf16)
        } else {
            (k.f32_to_f16, SCALAR.f32_to_f16)
        };
        // SAFETY: buffers hold n elements and do not overlap.
        let (am_n, am_s) = unsafe {
            (
                fa(scale, saturate, chunk.as_ptr(), a.as_mut_ptr(), n),
                fs(scale, saturate, chunk.as_ptr(), b.as_mut_ptr(), n),
            )
        };
        if let Some(i) = first_mismatch(&a[..n], &b[..n]) {
            panic!(
                "f32_to_{} saturate {saturate} scale {scale:e}: x = {:#010x}: neon {:#06x}, scalar {:#06x}",
                if bf { "bf16" } else { "f16" },
                chunk[i].to_bits(),
                a[i],
                b[i]
            );
        }
        assert_eq!(am_n, am_s, "amax");
    }
}

fn sweep_f32(k: &Kernels, input: &[f32], saturate: bool, scale: f32) {
    let mut a = vec![0f32; SWEEP_BLOCK];
    let mut b = vec![0f32; SWEEP_BLOCK];
    for chunk in input.chunks(SWEEP_BLOCK) {
        let n = chunk.len();
        a[..n].fill(f32::from_bits(0xA5A5_A5A5));
        b[..n].fill(f32::from_bits(0x5A5A_5A5A));
        // SAFETY: buffers hold n elements and do not overlap.
        let (am_n, am_s) = unsafe {
            (
                (k.f32_to_f32)(scale, saturate, chunk.as_ptr(), a.as_mut_ptr(), n),
                (SCALAR.f32_to_f32)(scale, saturate, chunk.as_ptr(), b.as_mut_ptr(), n),
            )
        };
        let (ab, bb) = (bits(&a[..n]), bits(&b[..n]));
        if let Some(i) = first_mismatch(&ab, &bb) {
            panic!(
                "f32_to_f32 saturate {saturate} scale {scale:e}: x = {:#010x}: neon {:#010x}, scalar {:#010x}",
                chunk[i].to_bits(),
                ab[i],
                bb[i]
            );
        }
        assert_eq!(am_n, am_s, "amax");
    }
}

#[test]
fn neon_table_is_not_scalar() {
    // Guards against testing the reference against itself.
    let k = neon();
    assert_ne!(k.f32_to_fp8 as usize, SCALAR.f32_to_fp8 as usize);
    assert_ne!(k.fp8_to_f32 as usize, SCALAR.fp8_to_f32 as usize);
    assert_ne!(k.f16_to_f32 as usize, SCALAR.f16_to_f32 as usize);
    assert_ne!(k.mix as usize, SCALAR.mix as usize);
}

#[test]
fn f32_to_fp8_patterns_all_modes() {
    let mut rng = Rng::new("f32_to_fp8_patterns_all_modes");
    let input = f32_patterns(&mut rng);
    assert!(input.len() >= 1 << 22);
    for fmt in FORMATS {
        for rounding in ROUNDINGS {
            sweep_fp8(neon(), &input, fmt, rounding, 1.0, rng.u64());
        }
    }
    // More seeds for stochastic rounding and other scales, on part of the inputs.
    let part = &input[..1 << 19];
    for fmt in FORMATS {
        for _ in 0..3 {
            sweep_fp8(
                neon(),
                part,
                fmt,
                Rounding::StochasticSaturate,
                1.0,
                rng.u64(),
            );
        }
        for scale in [0.125f32, 3.7, 1e-30, 1e30, -2.5, f32::MIN_POSITIVE] {
            for rounding in ROUNDINGS {
                sweep_fp8(neon(), &part[..1 << 16], fmt, rounding, scale, rng.u64());
            }
        }
    }
}

#[test]
fn stochastic_rounding_uses_the_randomness() {
    // A value halfway between two E4M3 codes must round both ways under stochastic rounding
    // (so a kernel that ignored the random bits would fail the sweeps above as well).
    let x = vec![1.0625f32; 4096];
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
    unsafe { (neon().f32_to_fp8)(&args, x.as_ptr(), out.as_mut_ptr(), x.len()) };
    let ups = out.iter().filter(|&&c| c == 0x39).count();
    assert!(out.iter().all(|&c| c == 0x38 || c == 0x39));
    assert!((1500..2600).contains(&ups), "{ups} of 4096 rounded up");
}

#[test]
fn f32_to_16bit_and_f32_patterns() {
    let mut rng = Rng::new("f32_to_16bit_and_f32_patterns");
    let input = f32_patterns(&mut rng);
    for bf in [false, true] {
        for saturate in [false, true] {
            sweep_16(neon(), &input, bf, saturate, 1.0);
            for scale in [0.5f32, 3.7, 1e-30, 1e30, -1.0] {
                sweep_16(neon(), &input[..1 << 16], bf, saturate, scale);
            }
        }
    }
    for saturate in [false, true] {
        sweep_f32(neon(), &input, saturate, 1.0);
        for scale in [0.5f32, 3.7, 1e-30, 1e30, -1.0, f32::MAX] {
            sweep_f32(neon(), &input[..1 << 16], saturate, scale);
        }
    }
}

#[test]
fn all_half_patterns_widen() {
    let mut rng = Rng::new("all_half_patterns_widen");
    let mut input: Vec<u16> = (0..=u16::MAX).collect();
    // Rotate by a random amount so that each pattern meets a random lane.
    input.rotate_left(rng.below(1 << 16));
    for (name, fa, fs) in [
        ("bf16_to_f32", neon().bf16_to_f32, SCALAR.bf16_to_f32),
        ("f16_to_f32", neon().f16_to_f32, SCALAR.f16_to_f32),
    ] {
        let mut a = vec![f32::from_bits(0xA5A5_A5A5); input.len()];
        let mut b = vec![f32::from_bits(0x5A5A_5A5A); input.len()];
        // SAFETY: buffers hold input.len() elements.
        unsafe {
            fa(input.as_ptr(), a.as_mut_ptr(), input.len());
            fs(input.as_ptr(), b.as_mut_ptr(), input.len());
        }
        let (ab, bb) = (bits(&a), bits(&b));
        if let Some(i) = first_mismatch(&ab, &bb) {
            panic!(
                "{name}: h = {:#06x}: neon {:#010x}, scalar {:#010x}",
                input[i], ab[i], bb[i]
            );
        }
    }
    // The f16 NaN rule: quiet, payload kept, sign kept.
    let mut out = [0f32; 1];
    // SAFETY: one element.
    unsafe { (neon().f16_to_f32)([0xFC01u16].as_ptr(), out.as_mut_ptr(), 1) };
    assert_eq!(out[0].to_bits(), 0xFFC0_2000);
}

#[test]
fn all_fp8_codes_decode() {
    let mut rng = Rng::new("all_fp8_codes_decode");
    for fmt in FORMATS {
        for rep in 0..8 {
            let mut codes: Vec<u8> = (0..=255u8).collect();
            if rep > 0 {
                for i in (1..codes.len()).rev() {
                    codes.swap(i, rng.below(i + 1));
                }
            }
            let mut a = vec![f32::from_bits(0xA5A5_A5A5); 256];
            let mut b = vec![f32::from_bits(0x5A5A_5A5A); 256];
            // SAFETY: 256 elements each.
            unsafe {
                (neon().fp8_to_f32)(fmt, codes.as_ptr(), a.as_mut_ptr(), 256);
                (SCALAR.fp8_to_f32)(fmt, codes.as_ptr(), b.as_mut_ptr(), 256);
            }
            let (ab, bb) = (bits(&a), bits(&b));
            if let Some(i) = first_mismatch(&ab, &bb) {
                panic!(
                    "fp8_to_f32 {fmt:?}: code {:#04x}: neon {:#010x}, scalar {:#010x}",
                    codes[i], ab[i], bb[i]
                );
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Lengths, misalignment, poisoned outputs, guard bytes, in-place calls.

const GUARD: usize = 48;
const POISON: u8 = 0xE7;

/// A byte buffer with `GUARD` poisoned bytes on each side of a region of `len` bytes that
/// starts `mis` bytes past a 16-byte boundary plus the guard.
struct Region {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
}

impl Region {
    fn poisoned(len: usize, mis: usize) -> Region {
        // Vec<u8> from the global allocator is at least 8-aligned; align the start by hand.
        let bytes = vec![POISON; len + 2 * GUARD + 32];
        let base = bytes.as_ptr() as usize;
        let start = (GUARD + 15 - (base + GUARD + 15) % 16) + mis;
        Region { bytes, start, len }
    }

    fn with_data(data: &[u8], mis: usize) -> Region {
        let mut r = Region::poisoned(data.len(), mis);
        let s = r.start;
        r.bytes[s..s + data.len()].copy_from_slice(data);
        r
    }

    fn ptr<T>(&mut self) -> *mut T {
        // SAFETY: start < bytes.len().
        unsafe { self.bytes.as_mut_ptr().add(self.start).cast() }
    }

    fn data(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }

    fn check_guards(&self, what: &str) {
        let (pre, post) = (
            &self.bytes[..self.start],
            &self.bytes[self.start + self.len..],
        );
        assert!(
            pre.iter().chain(post).all(|&b| b == POISON),
            "{what}: wrote outside its range"
        );
    }
}

fn f32_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

fn u16_bytes(x: &[u16]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// Runs `f` for the NEON and the scalar table on equal copies of `inputs` (misaligned by
/// `mis_in`) and poisoned outputs of `out_lens` bytes (misaligned by `mis_out`), and compares
/// every output byte and the guards. In-place cases alias outputs to inputs inside `f`.
fn compare_regions(
    what: &str,
    inputs: &[Vec<u8>],
    out_lens: &[usize],
    mis_in: usize,
    mis_out: usize,
    f: impl Fn(&Kernels, &mut [Region], &mut [Region]) -> u32,
) {
    let run = |k: &Kernels| {
        let mut ins: Vec<Region> = inputs
            .iter()
            .map(|d| Region::with_data(d, mis_in))
            .collect();
        let mut outs: Vec<Region> = out_lens
            .iter()
            .map(|&l| Region::poisoned(l, mis_out))
            .collect();
        let r = f(k, &mut ins, &mut outs);
        (ins, outs, r)
    };
    let (ins_n, outs_n, r_n) = run(neon());
    let (ins_s, outs_s, r_s) = run(SCALAR);
    assert_eq!(r_n, r_s, "{what}: amax differs");
    for (i, (a, b)) in ins_n
        .iter()
        .zip(&ins_s)
        .chain(outs_n.iter().zip(&outs_s))
        .enumerate()
    {
        a.check_guards(what);
        b.check_guards(what);
        if let Some(j) = first_mismatch(a.data(), b.data()) {
            panic!(
                "{what}: buffer {i} byte {j}: neon {:#04x}, scalar {:#04x}",
                a.data()[j],
                b.data()[j]
            );
        }
    }
}

fn lengths() -> Vec<usize> {
    let mut v: Vec<usize> = (0..=70).collect();
    v.extend([127, 1001, 4099, 65_537]);
    v
}

#[test]
fn lengths_alignment_poison_guards() {
    let mut rng = Rng::new("lengths_alignment_poison_guards");
    let boundaries = boundary_patterns();
    for n in lengths() {
        let (mis_in, mis_out) = (rng.below(4), rng.below(4));
        let xs: Vec<f32> = (0..n).map(|_| special_f32(&mut rng, &boundaries)).collect();
        let ys: Vec<f32> = (0..n).map(|_| special_f32(&mut rng, &boundaries)).collect();
        let hs: Vec<u16> = (0..n).map(|_| rng.u32() as u16).collect();
        let cs: Vec<u8> = (0..n).map(|_| rng.u32() as u8).collect();
        let (xb, yb, hb) = (f32_bytes(&xs), f32_bytes(&ys), u16_bytes(&hs));
        let ctx = |s: &str| format!("{s} n={n} mis_in={mis_in} mis_out={mis_out}");

        for fmt in FORMATS {
            for rounding in ROUNDINGS {
                let args = EncodeArgs {
                    format: fmt,
                    scale: [1.0f32, 0.75, 16.0][rng.below(3)],
                    rounding,
                    key: StreamKey::new(rng.u64(), rng.u32()),
                    index_lo: if rng.below(2) == 0 {
                        rng.u32()
                    } else {
                        u32::MAX - 5
                    },
                    stream: false,
                };
                compare_regions(
                    &ctx(&format!("f32_to_fp8 {fmt:?} {rounding:?}")),
                    std::slice::from_ref(&xb),
                    &[n],
                    mis_in,
                    mis_out,
                    // SAFETY: regions hold n elements.
                    |k, i, o| unsafe { (k.f32_to_fp8)(&args, i[0].ptr(), o[0].ptr(), n) },
                );
            }
            compare_regions(
                &ctx(&format!("fp8_to_f32 {fmt:?}")),
                std::slice::from_ref(&cs),
                &[4 * n],
                mis_in,
                mis_out,
                // SAFETY: regions hold n elements.
                |k, i, o| unsafe {
                    (k.fp8_to_f32)(fmt, i[0].ptr(), o[0].ptr(), n);
                    0
                },
            );
        }
        for saturate in [false, true] {
            let scale = [1.0f32, 0.75, 1e20][rng.below(3)];
            compare_regions(
                &ctx("f32_to_bf16"),
                std::slice::from_ref(&xb),
                &[2 * n],
                mis_in,
                mis_out,
                // SAFETY: regions hold n elements.
                |k, i, o| unsafe { (k.f32_to_bf16)(scale, saturate, i[0].ptr(), o[0].ptr(), n) },
            );
            compare_regions(
                &ctx("f32_to_f16"),
                std::slice::from_ref(&xb),
                &[2 * n],
                mis_in,
                mis_out,
                // SAFETY: regions hold n elements.
                |k, i, o| unsafe { (k.f32_to_f16)(scale, saturate, i[0].ptr(), o[0].ptr(), n) },
            );
            compare_regions(
                &ctx("f32_to_f32"),
                std::slice::from_ref(&xb),
                &[4 * n],
                mis_in,
                mis_out,
                // SAFETY: regions hold n elements.
                |k, i, o| unsafe { (k.f32_to_f32)(scale, saturate, i[0].ptr(), o[0].ptr(), n) },
            );
            compare_regions(
                &ctx("f32_to_f32 in place"),
                std::slice::from_ref(&xb),
                &[],
                mis_in,
                mis_out,
                // SAFETY: the region holds n elements; exact aliasing is allowed.
                |k, i, _| unsafe {
                    let p = i[0].ptr::<f32>();
                    (k.f32_to_f32)(scale, saturate, p, p, n)
                },
            );
        }
        for (name, which) in [("bf16_to_f32", 0), ("f16_to_f32", 1)] {
            compare_regions(
                &ctx(name),
                std::slice::from_ref(&hb),
                &[4 * n],
                mis_in,
                mis_out,
                // SAFETY: regions hold n elements.
                |k, i, o| unsafe {
                    let f = if which == 0 {
                        k.bf16_to_f32
                    } else {
                        k.f16_to_f32
                    };
                    f(i[0].ptr(), o[0].ptr(), n);
                    0
                },
            );
        }
        let (a, b) = (0.8f32.sqrt(), 0.2f32.sqrt());
        let inputs = [xb.clone(), yb.clone()];
        compare_regions(
            &ctx("mix"),
            &inputs,
            &[4 * n],
            mis_in,
            mis_out,
            |k, i, o| {
                // SAFETY: regions hold n elements.
                unsafe { (k.mix)(a, b, i[0].ptr(), i[1].ptr(), o[0].ptr(), n) };
                0
            },
        );
        for alias in 0..2 {
            compare_regions(
                &ctx("mix in place"),
                &inputs,
                &[],
                mis_in,
                mis_out,
                |k, i, _| {
                    let (x, f) = (i[0].ptr::<f32>(), i[1].ptr::<f32>());
                    let out = if alias == 0 { x } else { f };
                    // SAFETY: regions hold n elements; out equals x or f exactly.
                    unsafe { (k.mix)(a, b, x, f, out, n) };
                    0
                },
            );
        }
        for accumulate in [false, true] {
            // Buffers: g, gx (input when accumulating), gf (output).
            let three = [xb.clone(), yb.clone(), xb.clone()];
            compare_regions(
                &ctx("mix_backward"),
                &three,
                &[],
                mis_in,
                mis_out,
                |k, i, _| {
                    let (g, gx, gf) = (i[0].ptr::<f32>(), i[1].ptr::<f32>(), i[2].ptr::<f32>());
                    // SAFETY: distinct regions of n elements.
                    unsafe { (k.mix_backward)(a, b, accumulate, g, gx, gf, n) };
                    0
                },
            );
            for alias in 0..2 {
                compare_regions(
                    &ctx("mix_backward in place"),
                    &inputs,
                    &[],
                    mis_in,
                    mis_out,
                    |k, i, _| {
                        let (g, other) = (i[0].ptr::<f32>(), i[1].ptr::<f32>());
                        let (gx, gf) = if alias == 0 { (g, other) } else { (other, g) };
                        // SAFETY: gx or gf equals g exactly; they do not overlap each other.
                        unsafe { (k.mix_backward)(a, b, accumulate, g, gx, gf, n) };
                        0
                    },
                );
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// FPCR flush-to-zero: the integer conversions must not care.

/// Sets FPCR.FZ on this thread while alive.
struct FlushToZero(u64);

impl FlushToZero {
    fn on() -> FlushToZero {
        let old: u64;
        // SAFETY: reading and writing FPCR affects only this thread's FP behaviour; the old
        // value is restored on drop.
        unsafe {
            core::arch::asm!("mrs {}, fpcr", out(reg) old);
            core::arch::asm!("msr fpcr, {}", in(reg) old | 1 << 24);
        }
        FlushToZero(old)
    }
}

impl Drop for FlushToZero {
    fn drop(&mut self) {
        // SAFETY: restores the value read in `on`.
        unsafe { core::arch::asm!("msr fpcr, {}", in(reg) self.0) };
    }
}

#[test]
fn results_do_not_depend_on_flush_to_zero() {
    let mut rng = Rng::new("results_do_not_depend_on_flush_to_zero");
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
            let am = unsafe { (SCALAR.f32_to_fp8)(&args, input.as_ptr(), out.as_mut_ptr(), n) };
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
        bits(&out)
    };
    let want_widen = widen(SCALAR);

    let _fz = FlushToZero::on();
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
        let got = unsafe { (neon().f32_to_fp8)(args, input.as_ptr(), out.as_mut_ptr(), n) };
        if let Some(i) = first_mismatch(&out, want) {
            panic!(
                "f32_to_fp8 {:?} {:?} under FZ: x = {:#010x}: neon {:#04x}, scalar without FZ {:#04x}",
                args.format,
                args.rounding,
                input[i].to_bits(),
                out[i],
                want[i]
            );
        }
        assert_eq!(got, *am);
    }
    let got = widen(neon());
    assert_eq!(first_mismatch(&got, &want_widen), None, "widening under FZ");
}

// ------------------------------------------------------------------------------------------
// Drivers: the same calls through Exec with the NEON and the scalar back end.

trait Gen: Element + Default {
    fn sample(rng: &mut Rng, boundaries: &[u32]) -> Self;
    fn key(&self) -> u32;
}

impl Gen for f32 {
    fn sample(rng: &mut Rng, b: &[u32]) -> Self {
        special_f32(rng, b)
    }
    fn key(&self) -> u32 {
        self.to_bits()
    }
}
impl Gen for bf16 {
    fn sample(rng: &mut Rng, _: &[u32]) -> Self {
        bf16::from_bits(rng.u32() as u16)
    }
    fn key(&self) -> u32 {
        self.to_bits() as u32
    }
}
impl Gen for f16 {
    fn sample(rng: &mut Rng, _: &[u32]) -> Self {
        f16::from_bits(rng.u32() as u16)
    }
    fn key(&self) -> u32 {
        self.to_bits() as u32
    }
}
impl Gen for E4M3 {
    fn sample(rng: &mut Rng, _: &[u32]) -> Self {
        E4M3(rng.u32() as u8)
    }
    fn key(&self) -> u32 {
        self.0 as u32
    }
}
impl Gen for E5M2 {
    fn sample(rng: &mut Rng, _: &[u32]) -> Self {
        E5M2(rng.u32() as u8)
    }
    fn key(&self) -> u32 {
        self.0 as u32
    }
}

fn keys<T: Gen>(x: &[T]) -> Vec<u32> {
    x.iter().map(Gen::key).collect()
}

fn poison<T: Gen>(n: usize, rng: &mut Rng) -> Vec<T> {
    let p = T::sample(rng, &[0x7FC0_0001]);
    vec![p; n]
}

fn cast_pair<S: Gen, D: Gen>(rng: &mut Rng, boundaries: &[u32]) {
    let execs = [
        Exec::new(Backend::Neon)
            .unwrap()
            .with_threads(1 + rng.below(3)),
        Exec::new(Backend::Scalar).unwrap(),
    ];
    for rounding in ROUNDINGS {
        if rounding == Rounding::StochasticSaturate && D::DTYPE.fp8().is_none() {
            continue;
        }
        let params = CastParams {
            scale: [1.0f32, 0.25, 3.0][rng.below(3)],
            rounding,
            seed: rng.u64(),
        };
        let what = format!("{}->{} {params:?}", S::DTYPE.name(), D::DTYPE.name());
        // Flat cast; 2^18 + odd elements crosses blocks and (with threads) splits.
        let n = [1usize, 37, 1023, 5000, (1 << 18) + 77][rng.below(5)];
        let src: Vec<S> = (0..n).map(|_| S::sample(rng, boundaries)).collect();
        let p = poison::<D>(n, rng);
        let mut outs = [p.clone(), p];
        let mut amax = [0u32; 2];
        for (e, (out, am)) in execs.iter().zip(outs.iter_mut().zip(&mut amax)) {
            *am = e.cast(&src, out, &params).unwrap().to_bits();
        }
        assert_eq!(amax[0], amax[1], "{what}: cast amax");
        let (a, b) = (keys(&outs[0]), keys(&outs[1]));
        if let Some(i) = first_mismatch(&a, &b) {
            panic!(
                "{what}: cast n={n} element {i}: neon {:#x}, scalar {:#x}",
                a[i], b[i]
            );
        }

        // Cast-transpose with padded leading dimensions.
        let (rows, cols) = [(37usize, 70usize), (3, 1001), (130, 5), (64, 64)][rng.below(4)];
        let (ld_src, ld_dst, ld_t) = (
            cols + rng.below(3),
            cols + rng.below(3),
            rows + rng.below(3),
        );
        let src: Vec<S> = (0..(rows - 1) * ld_src + cols)
            .map(|_| S::sample(rng, boundaries))
            .collect();
        let pd = poison::<D>((rows - 1) * ld_dst + cols, rng);
        let pt = poison::<D>((cols - 1) * ld_t + rows, rng);
        let mut dsts = [pd.clone(), pd];
        let mut dts = [pt.clone(), pt];
        for (e, (am, (d, t))) in execs
            .iter()
            .zip(amax.iter_mut().zip(dsts.iter_mut().zip(dts.iter_mut())))
        {
            *am = e
                .cast_transpose(
                    &src,
                    rows,
                    cols,
                    ld_src,
                    Some(d),
                    ld_dst,
                    Some(t),
                    ld_t,
                    &params,
                )
                .unwrap()
                .to_bits();
        }
        assert_eq!(amax[0], amax[1], "{what}: cast_transpose amax");
        assert_eq!(
            first_mismatch(&keys(&dsts[0]), &keys(&dsts[1])),
            None,
            "{what}: cast_transpose dst {rows}x{cols}"
        );
        assert_eq!(
            first_mismatch(&keys(&dts[0]), &keys(&dts[1])),
            None,
            "{what}: cast_transpose dst_t {rows}x{cols}"
        );
    }
}

macro_rules! cast_all_dst {
    ($rng:expr, $b:expr, $s:ty) => {
        cast_pair::<$s, f32>($rng, $b);
        cast_pair::<$s, bf16>($rng, $b);
        cast_pair::<$s, f16>($rng, $b);
        cast_pair::<$s, E4M3>($rng, $b);
        cast_pair::<$s, E5M2>($rng, $b);
    };
}

#[test]
fn drivers_cast_and_cast_transpose() {
    let mut rng = Rng::new("drivers_cast_and_cast_transpose");
    let b = boundary_patterns();
    cast_all_dst!(&mut rng, &b, f32);
    cast_all_dst!(&mut rng, &b, bf16);
    cast_all_dst!(&mut rng, &b, f16);
    cast_all_dst!(&mut rng, &b, E4M3);
    cast_all_dst!(&mut rng, &b, E5M2);
}

fn mix_type<T: Gen>(rng: &mut Rng, boundaries: &[u32]) {
    let execs = [
        Exec::new(Backend::Neon)
            .unwrap()
            .with_threads(1 + rng.below(3)),
        Exec::new(Backend::Scalar).unwrap(),
    ];
    for case in 0..12 {
        let n = [1usize, 70, 1025, (1 << 18) + 3][rng.below(4)];
        let fp8_type = [DType::E4M3, DType::E5M2][rng.below(2)];
        let with_fp8 = case % 3 != 0;
        let params = MixParams {
            tau: [0.0f32, 0.1, 0.4, 1.0][rng.below(4)],
            rounding: ROUNDINGS[rng.below(3)],
            seed: rng.u64(),
        };
        let what = format!(
            "{} n={n} case {case} {params:?} {fp8_type:?}",
            T::DTYPE.name()
        );
        let x: Vec<T> = (0..n).map(|_| T::sample(rng, boundaries)).collect();
        let f: Vec<T> = (0..n).map(|_| T::sample(rng, boundaries)).collect();
        let po = poison::<T>(n, rng);
        let pq = vec![0xA5u8; n];

        // Forward: out separate, or in place on x (case even) / f.
        let mut res: Vec<(Vec<u32>, Vec<u8>)> = Vec::new();
        for e in &execs {
            let (mut xs, mut fs, mut out, mut q) = (x.clone(), f.clone(), po.clone(), pq.clone());
            let qp = if with_fp8 {
                q.as_mut_ptr()
            } else {
                core::ptr::null_mut()
            };
            let out_ptr: *mut u8 = match case % 4 {
                0 => xs.as_mut_ptr().cast(),
                1 => fs.as_mut_ptr().cast(),
                _ => out.as_mut_ptr().cast(),
            };
            // SAFETY: buffers hold n elements; out equals x or f exactly or is separate.
            unsafe {
                e.residual_mix_raw(
                    xs.as_ptr().cast(),
                    fs.as_ptr().cast(),
                    out_ptr,
                    T::DTYPE,
                    n,
                    qp,
                    fp8_type,
                    &params,
                )
            }
            .unwrap();
            let mut all = keys(&xs);
            all.extend(keys(&fs));
            all.extend(keys(&out));
            res.push((all, q));
        }
        assert_eq!(
            first_mismatch(&res[0].0, &res[1].0),
            None,
            "residual_mix {what}"
        );
        assert_eq!(
            first_mismatch(&res[0].1, &res[1].1),
            None,
            "residual_mix fp8 {what}"
        );

        // Backward: grad_x/grad_f separate or one of them aliasing grad_out.
        let accumulate = rng.below(2) == 1;
        let mut res: Vec<(Vec<u32>, Vec<u8>)> = Vec::new();
        for e in &execs {
            let (mut g, mut gx, mut gf, mut q) = (x.clone(), f.clone(), po.clone(), pq.clone());
            let qp = if with_fp8 {
                q.as_mut_ptr()
            } else {
                core::ptr::null_mut()
            };
            let (gxp, gfp): (*mut u8, *mut u8) = match case % 3 {
                0 => (g.as_mut_ptr().cast(), gf.as_mut_ptr().cast()),
                1 => (gx.as_mut_ptr().cast(), g.as_mut_ptr().cast()),
                _ => (gx.as_mut_ptr().cast(), gf.as_mut_ptr().cast()),
            };
            // SAFETY: buffers hold n elements; aliasing as the contract allows.
            unsafe {
                e.residual_mix_backward_raw(
                    g.as_ptr().cast(),
                    gxp,
                    gfp,
                    T::DTYPE,
                    n,
                    accumulate,
                    qp,
                    fp8_type,
                    &params,
                )
            }
            .unwrap();
            let mut all = keys(&g);
            all.extend(keys(&gx));
            all.extend(keys(&gf));
            res.push((all, q));
        }
        assert_eq!(
            first_mismatch(&res[0].0, &res[1].0),
            None,
            "backward {what} acc {accumulate}"
        );
        assert_eq!(
            first_mismatch(&res[0].1, &res[1].1),
            None,
            "backward fp8 {what}"
        );
    }
}

#[test]
fn drivers_residual_mix() {
    let mut rng = Rng::new("drivers_residual_mix");
    let b = boundary_patterns();
    mix_type::<f32>(&mut rng, &b);
    mix_type::<bf16>(&mut rng, &b);
    mix_type::<f16>(&mut rng, &b);
}
