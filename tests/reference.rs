//! The scalar reference checked against independent brute-force models written here in f64 and
//! u128 arithmetic: decode by formula, nearest-even by searching the sorted list of all FP8
//! values, stochastic rounding by exact fixed-point comparison. (The check against ml_dtypes
//! lives in ffi-tests/python.)

#![allow(clippy::needless_range_loop, clippy::manual_is_multiple_of)]

use unitfp8::rng::stochastic_bits;
use unitfp8::{Fp8Format, Rounding};

mod common;
use common::Rng;

const FORMATS: [Fp8Format; 2] = [Fp8Format::E4M3, Fp8Format::E5M2];

/// Independent decode: sign · 2^(e − bias) · (1 + m/2^M), subnormals, specials.
fn decode_model(fmt: Fp8Format, code: u8) -> f64 {
    let (ebits, mbits, bias) = match fmt {
        Fp8Format::E4M3 => (4, 3, 7),
        Fp8Format::E5M2 => (5, 2, 15),
    };
    let sign = if code & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = ((code >> mbits) & ((1 << ebits) - 1)) as i32;
    let m = (code & ((1 << mbits) - 1)) as f64;
    let emax_field = (1 << ebits) - 1;
    match fmt {
        Fp8Format::E4M3 if e == emax_field && m == 7.0 => return f64::NAN,
        Fp8Format::E5M2 if e == emax_field => {
            return if m == 0.0 {
                sign * f64::INFINITY
            } else {
                f64::NAN
            };
        }
        _ => {}
    }
    let scale = 2f64.powi(mbits);
    if e == 0 {
        sign * m / scale * 2f64.powi(1 - bias)
    } else {
        sign * (1.0 + m / scale) * 2f64.powi(e - bias)
    }
}

#[test]
fn decode_all_codes_matches_formula() {
    for fmt in FORMATS {
        for code in 0..=255u8 {
            let got = fmt.decode(code);
            let want = decode_model(fmt, code);
            if want.is_nan() {
                assert!(got.is_nan(), "{fmt:?} {code:#04x}");
                let sign = if code & 0x80 != 0 { 0x8000_0000 } else { 0 };
                assert_eq!(
                    got.to_bits(),
                    sign | 0x7FC0_0000,
                    "{fmt:?} {code:#04x} canonical NaN"
                );
            } else {
                assert_eq!(got as f64, want, "{fmt:?} {code:#04x}");
                assert_eq!(
                    got.is_sign_negative(),
                    code & 0x80 != 0,
                    "{fmt:?} {code:#04x} sign"
                );
            }
        }
    }
    // The typed wrappers agree with the format functions and classify correctly.
    assert_eq!(unitfp8::E4M3::MAX.to_f32(), 448.0);
    assert_eq!(unitfp8::E5M2::MAX.to_f32(), 57344.0);
    assert_eq!(
        unitfp8::E4M3::MIN_POSITIVE_SUBNORMAL.to_f32(),
        2f32.powi(-9)
    );
    assert_eq!(
        unitfp8::E5M2::MIN_POSITIVE_SUBNORMAL.to_f32(),
        2f32.powi(-16)
    );
    assert_eq!(unitfp8::E4M3::MIN_POSITIVE.to_f32(), 2f32.powi(-6));
    assert_eq!(unitfp8::E5M2::MIN_POSITIVE.to_f32(), 2f32.powi(-14));
    assert_eq!(unitfp8::E4M3::ONE.to_f32(), 1.0);
    assert_eq!(unitfp8::E5M2::ONE.to_f32(), 1.0);
    assert!(unitfp8::E5M2::INFINITY.to_f32().is_infinite());
    assert!(unitfp8::E4M3::NAN.is_nan() && unitfp8::E5M2::NAN.is_nan());
    for code in 0..=255u8 {
        let (a, b) = (unitfp8::E4M3(code), unitfp8::E5M2(code));
        assert_eq!(a.is_nan(), a.to_f32().is_nan());
        assert_eq!(b.is_nan(), b.to_f32().is_nan());
        assert_eq!(a.to_bf16().to_f32().to_bits(), a.to_f32().to_bits());
        assert_eq!(b.to_f16().to_f32().to_bits(), b.to_f32().to_bits());
        if !b.is_nan() {
            assert_eq!(
                b.to_f16().to_bits() >> 8,
                code as u16,
                "E5M2 is the top byte of binary16"
            );
        }
    }
}

/// All finite non-negative values of a format with their codes, ascending.
fn finite_values(fmt: Fp8Format) -> Vec<(f64, u8)> {
    let mut v: Vec<(f64, u8)> = (0..0x80u8)
        .map(|c| (decode_model(fmt, c), c))
        .filter(|(x, _)| x.is_finite())
        .collect();
    v.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    v
}

/// Independent nearest-even: search the value list.
fn nearest_model(fmt: Fp8Format, vals: &[(f64, u8)], x: f32, rounding: Rounding) -> u8 {
    let sign = if x.is_sign_negative() { 0x80 } else { 0 };
    if x.is_nan() {
        return sign | fmt.nan_code();
    }
    let a = (x as f64).abs();
    let (max, max_code) = *vals.last().unwrap();
    // The overflow threshold is max + half an ulp of the top binade; at it, ties go to the even max.
    let top_ulp = max - vals[vals.len() - 2].0;
    if a > max {
        // At the tie the even neighbour wins: E4M3's max (0x7E) is even, E5M2's (0x7B) is odd.
        let threshold = max + top_ulp / 2.0;
        let rounds_to_max = a < threshold || (a == threshold && max_code % 2 == 0);
        return match rounding {
            Rounding::Nearest if !rounds_to_max => sign | fmt.overflow_code(),
            _ => sign | max_code,
        };
    }
    let i = vals.partition_point(|&(v, _)| v <= a) - 1; // vals[i].0 <= a
    let (lo, lo_code) = vals[i];
    if lo == a || i + 1 == vals.len() {
        return sign | lo_code;
    }
    let (hi, hi_code) = vals[i + 1];
    let mid = (lo + hi) / 2.0;
    let code = if a < mid {
        lo_code
    } else if a > mid {
        hi_code
    } else if lo_code % 2 == 0 {
        lo_code
    } else {
        hi_code
    };
    sign | code
}

/// Interesting f32 inputs: every FP8 value, every midpoint, and their f32 neighbours.
fn boundary_inputs(fmt: Fp8Format) -> Vec<f32> {
    let vals = finite_values(fmt);
    let mut out = vec![
        0.0,
        f32::INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        1e-45,
        f32::MAX,
    ];
    let mut points: Vec<f64> = vals.iter().map(|v| v.0).collect();
    for w in vals.windows(2) {
        points.push((w[0].0 + w[1].0) / 2.0);
    }
    let (max, prev) = (vals[vals.len() - 1].0, vals[vals.len() - 2].0);
    points.push(max + (max - prev) / 2.0);
    points.push(max + (max - prev));
    points.push(vals[1].0 / 2.0); // half the min subnormal
    for p in points {
        let f = p as f32;
        assert_eq!(f as f64, p, "boundary {p} must be exact in f32");
        for d in -3i32..=3 {
            out.push(f32::from_bits((f.to_bits() as i32 + d).max(0) as u32));
        }
    }
    let neg: Vec<f32> = out.iter().map(|x| -x).collect();
    out.extend(neg);
    out
}

#[test]
fn nearest_modes_match_search_model() {
    let mut rng = Rng::for_test("nearest_modes_match_search_model");
    for fmt in FORMATS {
        let vals = finite_values(fmt);
        let mut inputs = boundary_inputs(fmt);
        for _ in 0..2_000_000 {
            inputs.push(f32::from_bits(rng.u64() as u32));
            // Values in and around the FP8 range.
            let e = (rng.u64() % 48) as i32 - 30;
            inputs.push((rng.u64() as u32 as f32 / u32::MAX as f32) * 2f32.powi(e));
        }
        for &x in &inputs {
            for rounding in [Rounding::Nearest, Rounding::NearestSaturate] {
                let got = fmt.encode(x, rounding, 0);
                let want = nearest_model(fmt, &vals, x, rounding);
                assert_eq!(
                    got,
                    want,
                    "{fmt:?} {rounding:?} x = {x:e} ({:#010x})",
                    x.to_bits()
                );
            }
        }
    }
}

/// Exact model of stochastic rounding: round |x| up iff frac(|x|/ulp) · 2^32 > 2^32 − 1 − r,
/// i.e. floor(|x|/ulp + r/2^32), evaluated in 128-bit fixed point.
fn stochastic_model(fmt: Fp8Format, vals: &[(f64, u8)], x: f32, r: u32) -> u8 {
    let sign = if x.is_sign_negative() { 0x80 } else { 0 };
    if x.is_nan() {
        return sign | fmt.nan_code();
    }
    let a = (x as f64).abs();
    let (max, max_code) = *vals.last().unwrap();
    if a >= max {
        return sign | max_code;
    }
    let i = vals.partition_point(|&(v, _)| v <= a) - 1;
    let (lo, lo_code) = vals[i];
    let (hi, hi_code) = vals[i + 1];
    // frac = (a - lo) / (hi - lo) exactly: both are dyadic; scale by 2^200 into integers.
    let ulp = hi - lo;
    let num = ((a - lo) / ulp * 2f64.powi(64)) as u128; // exact: (a-lo)/ulp has < 53 significant bits... checked below
    assert_eq!(num as f64, (a - lo) / ulp * 2f64.powi(64));
    let up = num + ((r as u128) << 32) >= 1u128 << 64;
    sign | if up { hi_code } else { lo_code }
}

#[test]
fn stochastic_matches_fixed_point_model() {
    let mut rng = Rng::for_test("stochastic_matches_fixed_point_model");
    for fmt in FORMATS {
        let vals = finite_values(fmt);
        let mut inputs = boundary_inputs(fmt);
        for _ in 0..300_000 {
            let e = (rng.u64() % 30) as i32 - 18;
            inputs.push(
                ((rng.u64() as u32 as f32) / u32::MAX as f32)
                    * 2f32.powi(e)
                    * if rng.u64() & 1 == 0 { 1.0 } else { -1.0 },
            );
        }
        for &x in &inputs {
            // Stay where the f64 model is exact (|x|/ulp has < 53 bits of fraction): |x| ≥ 2^-40.
            if x.is_finite() && x != 0.0 && x.abs() < 2f32.powi(-40) {
                continue;
            }
            for r in [
                0,
                1,
                u32::MAX,
                1 << 31,
                (1 << 31) - 1,
                rng.u64() as u32,
                rng.u64() as u32,
            ] {
                let got = fmt.encode(x, Rounding::StochasticSaturate, r);
                let want = stochastic_model(fmt, &vals, x, r);
                assert_eq!(got, want, "{fmt:?} x = {x:e} r = {r:#x}");
            }
        }
    }
}

/// Stochastic rounding is unbiased: over N draws the mean of the decoded results is within
/// 6 standard errors of x. Under the CLT a correct implementation fails one such check with
/// probability ≈ 2·10⁻⁹; this test makes 2 × 24 checks, so its false-failure rate is < 10⁻⁷.
#[test]
fn stochastic_rounding_is_unbiased_and_uses_neighbours_only() {
    let mut rng = Rng::for_test("stochastic_rounding_is_unbiased_and_uses_neighbours_only");
    let seed = rng.u64();
    const N: u64 = 200_000;
    for fmt in FORMATS {
        let vals = finite_values(fmt);
        let max = vals.last().unwrap().0;
        for t in 0..24 {
            // Random magnitudes from deep subnormal to near max, both signs.
            let e = match fmt {
                Fp8Format::E4M3 => (t % 17) - 10,
                Fp8Format::E5M2 => (t % 29) - 17,
            };
            let mut x = (1.0 + (rng.u64() as u32 as f64) / 2f64.powi(32)) * 2f64.powi(e);
            if x >= max {
                x = max * 0.97;
            }
            let x = if t % 2 == 0 { x as f32 } else { -(x as f32) };
            let a = (x as f64).abs();
            let i = vals.partition_point(|&(v, _)| v <= a) - 1;
            let (lo, hi) = (vals[i].0, vals.get(i + 1).map_or(vals[i].0, |v| v.0));
            let mut sum = 0.0f64;
            for k in 0..N {
                let code = fmt.encode(x, Rounding::StochasticSaturate, stochastic_bits(seed, k));
                let y = fmt.decode(code) as f64;
                assert!(
                    y.abs() == lo || y.abs() == hi,
                    "{fmt:?} x = {x} gave {y}, not {lo} or {hi}"
                );
                sum += y;
            }
            let mean = sum / N as f64;
            let var = (hi - a) * (a - lo);
            let se = (var / N as f64).sqrt().max(1e-300);
            let z = (mean - x as f64) / se;
            assert!(z.abs() < 6.0, "{fmt:?} x = {x}: mean {mean}, z = {z}");
        }
    }
}

#[test]
fn stochastic_bits_depend_on_seed_and_index() {
    let seed = common::test_seed("stochastic_bits_depend_on_seed_and_index");
    let n = 100_000u64;
    let same = (0..n)
        .filter(|&i| stochastic_bits(seed, i) == stochastic_bits(seed.wrapping_add(1), i))
        .count();
    assert!(
        same < 5,
        "seeds s and s+1 must give different streams ({same} equal words)"
    );
    let same_hi = (0..n)
        .filter(|&i| stochastic_bits(seed, i) == stochastic_bits(seed, i + (1 << 32)))
        .count();
    assert!(
        same_hi < 5,
        "indices i and i + 2^32 must differ ({same_hi} equal words)"
    );
    // Each bit is set about half the time (binomial, 6 sigma).
    for bit in 0..32 {
        let ones = (0..n)
            .filter(|&i| stochastic_bits(seed, i) >> bit & 1 == 1)
            .count() as f64;
        let z = (ones - n as f64 / 2.0) / (n as f64 / 4.0).sqrt();
        assert!(z.abs() < 6.0, "bit {bit}: z = {z}");
    }
}

#[test]
fn wide_narrowing_matches_half() {
    let mut rng = Rng::for_test("wide_narrowing_matches_half");
    for _ in 0..3_000_000 {
        let x = f32::from_bits(rng.u64() as u32);
        let b = unitfp8::fp8::f32_to_bf16_bits(x, false);
        let h = unitfp8::fp8::f32_to_f16_bits(x, false);
        if x.is_nan() {
            assert_eq!(b & 0x7FFF, 0x7FC0);
            assert_eq!(h & 0x7FFF, 0x7E00);
            continue;
        }
        assert_eq!(b, half::bf16::from_f32(x).to_bits(), "bf16 {x:e}");
        assert_eq!(h, half::f16::from_f32(x).to_bits(), "f16 {x:e}");
        let bs = unitfp8::fp8::f32_to_bf16_bits(x, true);
        let hs = unitfp8::fp8::f32_to_f16_bits(x, true);
        assert!(half::bf16::from_bits(bs).is_finite());
        assert!(half::f16::from_bits(hs).is_finite());
    }
}
