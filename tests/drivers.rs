//! The block drivers (cast, cast-transpose, residual mix forward/backward) on every available
//! back end and thread count, against a per-element model built from the scalar reference
//! functions; plus argument checking (outputs untouched on failure).

#![allow(clippy::needless_range_loop, clippy::manual_is_multiple_of)]

use unitfp8::backend::scalar::{f16_bits_to_f32, scale_f32};
use unitfp8::fp8::{f32_to_bf16_bits, f32_to_f16_bits};
use unitfp8::nan::canonical;
use unitfp8::rng::stochastic_bits;
use unitfp8::{Backend, CastParams, DType, Exec, MixParams, Rounding, Status};

mod common;
use common::{GuardBuf, Rng};

const TYPES: [DType; 5] = [
    DType::F32,
    DType::BF16,
    DType::F16,
    DType::E4M3,
    DType::E5M2,
];
const MODES: [Rounding; 3] = [
    Rounding::NearestSaturate,
    Rounding::Nearest,
    Rounding::StochasticSaturate,
];
const POISON: u8 = 0xA5;

fn execs() -> Vec<Exec> {
    let mut v = Vec::new();
    for b in Backend::ALL {
        if let Ok(e) = Exec::new(b) {
            v.push(e);
            v.push(e.with_threads(2));
        }
    }
    v
}

/// Random element bytes of `t`: mostly values of moderate size, some raw bit patterns.
fn random_elements(rng: &mut Rng, t: DType, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * t.size());
    for _ in 0..n {
        let raw = rng.u64() % 8 == 0;
        let v = (rng.normal() as f32) * [1.0f32, 30.0, 1e-3, 600.0][(rng.u64() % 4) as usize];
        match t {
            DType::F32 => {
                let bits = if raw { rng.u64() as u32 } else { v.to_bits() };
                out.extend_from_slice(&bits.to_le_bytes());
            }
            DType::BF16 | DType::F16 => {
                let bits = if raw {
                    rng.u64() as u16
                } else if t == DType::BF16 {
                    f32_to_bf16_bits(v, false)
                } else {
                    f32_to_f16_bits(v, false)
                };
                out.extend_from_slice(&bits.to_le_bytes());
            }
            _ => out.push(rng.u64() as u8),
        }
    }
    out
}

fn read_f32(t: DType, bytes: &[u8], i: usize) -> f32 {
    match t {
        DType::F32 => f32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap()),
        DType::BF16 => {
            f32::from_bits((u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]) as u32) << 16)
        }
        DType::F16 => f16_bits_to_f32(u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]])),
        _ => t.fp8().unwrap().decode(bytes[i]),
    }
}

/// Bytes of the element model: round(x · scale) into `t`.
fn encode_model(t: DType, x: f32, p: &CastParams, index: u64) -> Vec<u8> {
    let sat = p.rounding.saturates();
    match t {
        DType::F32 => scale_f32(x, p.scale, false)
            .to_bits()
            .to_le_bytes()
            .to_vec(),
        DType::BF16 => f32_to_bf16_bits(x * p.scale, sat).to_le_bytes().to_vec(),
        DType::F16 => f32_to_f16_bits(x * p.scale, sat).to_le_bytes().to_vec(),
        _ => vec![
            t.fp8()
                .unwrap()
                .encode(x * p.scale, p.rounding, stochastic_bits(p.seed, index)),
        ],
    }
}

fn amax_model(xs: impl Iterator<Item = f32>) -> u32 {
    xs.map(|x| x.to_bits() & 0x7FFF_FFFF).max().unwrap_or(0)
}

#[test]
fn cast_all_pairs_all_modes_match_model() {
    let mut rng = Rng::for_test("cast_all_pairs_all_modes_match_model");
    for exec in execs() {
        for &n in &[0usize, 1, 5, 63, 1023, 1024, 1025, 2500] {
            for src_t in TYPES {
                for dst_t in TYPES {
                    for rounding in MODES {
                        let scale = [1.0f32, 0.5, 3.7, 1e-3][(rng.u64() % 4) as usize];
                        let p = CastParams {
                            scale,
                            rounding,
                            seed: rng.u64(),
                        };
                        let offset = (rng.u64() % 4) as usize; // misalign both buffers
                        let src_bytes = random_elements(&mut rng, src_t, n);
                        let mut src = GuardBuf::with_data(&src_bytes, offset, POISON);
                        let mut dst = GuardBuf::new(n * dst_t.size(), offset, POISON);
                        // SAFETY: buffers hold n elements.
                        let r = unsafe { exec.cast_raw(src.ptr(), src_t, dst.ptr(), dst_t, n, &p) };
                        assert!(
                            src.guards_intact() && src.data() == &src_bytes[..],
                            "input touched"
                        );
                        if rounding == Rounding::StochasticSaturate && dst_t.fp8().is_none() {
                            assert_eq!(status_of(r), Err(Status::Unsupported));
                            assert!(
                                dst.guards_intact() && dst.data().iter().all(|&b| b == POISON),
                                "output touched on failure"
                            );
                            continue;
                        }
                        let amax = r.unwrap();
                        let xs: Vec<f32> = (0..n).map(|i| read_f32(src_t, &src_bytes, i)).collect();
                        assert_eq!(
                            amax.to_bits(),
                            amax_model(xs.iter().copied()),
                            "amax {src_t:?}->{dst_t:?}"
                        );
                        for (i, &x) in xs.iter().enumerate() {
                            let want = encode_model(dst_t, x, &p, i as u64);
                            let s = dst_t.size();
                            let got = &dst.data()[i * s..(i + 1) * s];
                            assert_eq!(
                                got,
                                &want[..],
                                "{:?} {src_t:?}->{dst_t:?} {rounding:?} scale {scale} n {n} i {i} x {x:e}",
                                exec
                            );
                        }
                        assert!(dst.guards_intact(), "wrote outside the output");
                    }
                }
            }
        }
    }
}

#[test]
fn cast_large_is_identical_across_threads_and_backends() {
    let mut rng = Rng::for_test("cast_large_is_identical_across_threads_and_backends");
    let n = 600_001;
    let src: Vec<f32> = (0..n).map(|_| (rng.normal() as f32) * 100.0).collect();
    let p = CastParams {
        scale: 1.0,
        rounding: Rounding::StochasticSaturate,
        seed: rng.u64(),
    };
    let mut reference = vec![unitfp8::E4M3::ZERO; n];
    let want_amax = Exec::new(Backend::Scalar)
        .unwrap()
        .cast(&src[..], &mut reference[..], &p)
        .unwrap();
    for exec in execs() {
        let mut out = vec![unitfp8::E4M3(POISON); n];
        let amax = exec.cast(&src[..], &mut out[..], &p).unwrap();
        assert_eq!(amax, want_amax);
        assert!(out == reference, "{exec:?}");
    }
}

#[test]
fn in_place_cast_same_size() {
    let mut rng = Rng::for_test("in_place_cast_same_size");
    for exec in execs() {
        for (src_t, dst_t) in [
            (DType::F32, DType::F32),
            (DType::BF16, DType::F16),
            (DType::F16, DType::BF16),
            (DType::E4M3, DType::E5M2),
        ] {
            let n = 3001;
            let mut buf = random_elements(&mut rng, src_t, n);
            let orig = buf.clone();
            let p = CastParams {
                scale: 2.0,
                rounding: Rounding::NearestSaturate,
                seed: 0,
            };
            let ptr = buf.as_mut_ptr();
            // SAFETY: exact aliasing of equal-size types is allowed.
            unsafe { exec.cast_raw(ptr, src_t, ptr, dst_t, n, &p) }.unwrap();
            for i in 0..n {
                let s = dst_t.size();
                assert_eq!(
                    &buf[i * s..(i + 1) * s],
                    &encode_model(dst_t, read_f32(src_t, &orig, i), &p, i as u64)[..]
                );
            }
        }
    }
}

#[test]
fn cast_transpose_matches_model() {
    let mut rng = Rng::for_test("cast_transpose_matches_model");
    let shapes = [
        (1usize, 1usize),
        (1, 70),
        (70, 1),
        (33, 65),
        (64, 64),
        (65, 129),
        (100, 3),
        (257, 31),
    ];
    for exec in execs() {
        for &(rows, cols) in &shapes {
            for src_t in [DType::F32, DType::BF16, DType::E5M2] {
                for dst_t in [DType::E4M3, DType::E5M2, DType::BF16, DType::F32] {
                    let rounding = if dst_t.fp8().is_some() {
                        MODES[(rng.u64() % 3) as usize]
                    } else {
                        Rounding::Nearest
                    };
                    let p = CastParams {
                        scale: 0.75,
                        rounding,
                        seed: rng.u64(),
                    };
                    let ld_src = cols + (rng.u64() % 3) as usize;
                    let ld_dst = cols + (rng.u64() % 3) as usize;
                    let ld_t = rows + (rng.u64() % 3) as usize;
                    let src = random_elements(&mut rng, src_t, (rows - 1) * ld_src + cols);
                    let ds = dst_t.size();
                    let which = rng.u64() % 4; // 0 both, 1 dst only, 2 dst_t only, 3 neither (amax only)
                    let mut dst = vec![POISON; rows * ld_dst * ds];
                    let mut dst_t_buf = vec![POISON; cols * ld_t * ds];
                    let dp = if which < 2 {
                        dst.as_mut_ptr()
                    } else {
                        core::ptr::null_mut()
                    };
                    let tp = if which == 0 || which == 2 {
                        dst_t_buf.as_mut_ptr()
                    } else {
                        core::ptr::null_mut()
                    };
                    // SAFETY: buffers sized for the shapes and leading dimensions.
                    let amax = unsafe {
                        exec.cast_transpose_raw(
                            src.as_ptr(),
                            src_t,
                            rows,
                            cols,
                            ld_src,
                            dp,
                            ld_dst,
                            tp,
                            ld_t,
                            dst_t,
                            &p,
                        )
                    }
                    .unwrap();
                    let mut want_amax = 0;
                    for r in 0..rows {
                        for c in 0..cols {
                            let x = read_f32(src_t, &src, r * ld_src + c);
                            want_amax = want_amax.max(x.to_bits() & 0x7FFF_FFFF);
                            let want = encode_model(dst_t, x, &p, (r * cols + c) as u64);
                            if which < 2 {
                                let o = (r * ld_dst + c) * ds;
                                assert_eq!(
                                    &dst[o..o + ds],
                                    &want[..],
                                    "{exec:?} dst ({r},{c}) {rows}x{cols}"
                                );
                            }
                            if which == 0 || which == 2 {
                                let o = (c * ld_t + r) * ds;
                                assert_eq!(
                                    &dst_t_buf[o..o + ds],
                                    &want[..],
                                    "{exec:?} dst_t ({r},{c}) {rows}x{cols}"
                                );
                            }
                        }
                    }
                    assert_eq!(amax.to_bits(), want_amax);
                    // Padding between rows is never written.
                    for r in 0..rows {
                        for c in cols..ld_dst {
                            assert!(
                                dst[(r * ld_dst + c) * ds..(r * ld_dst + c + 1) * ds]
                                    .iter()
                                    .all(|&b| b == POISON)
                            );
                        }
                    }
                    for c in 0..cols {
                        for r in rows..ld_t {
                            assert!(
                                dst_t_buf[(c * ld_t + r) * ds..(c * ld_t + r + 1) * ds]
                                    .iter()
                                    .all(|&b| b == POISON)
                            );
                        }
                    }
                    if which >= 2 {
                        assert!(dst.iter().all(|&b| b == POISON));
                    }
                    if which == 1 || which == 3 {
                        assert!(dst_t_buf.iter().all(|&b| b == POISON));
                    }
                }
            }
        }
    }
}

#[test]
fn cast_transpose_large_threads() {
    let mut rng = Rng::for_test("cast_transpose_large_threads");
    let (rows, cols) = (1031, 517);
    let src: Vec<f32> = (0..rows * cols).map(|_| rng.normal() as f32).collect();
    let p = CastParams {
        scale: 1.0,
        rounding: Rounding::StochasticSaturate,
        seed: rng.u64(),
    };
    let mut want = vec![unitfp8::E5M2::ZERO; rows * cols];
    let mut want_t = vec![unitfp8::E5M2::ZERO; rows * cols];
    let scalar = Exec::new(Backend::Scalar).unwrap();
    scalar
        .cast_transpose(
            &src[..],
            rows,
            cols,
            cols,
            Some(&mut want[..]),
            cols,
            Some(&mut want_t[..]),
            rows,
            &p,
        )
        .unwrap();
    for r in 0..rows {
        for c in 0..cols {
            assert_eq!(want[r * cols + c], want_t[c * rows + r]);
        }
    }
    for exec in execs() {
        let mut d = vec![unitfp8::E5M2(POISON); rows * cols];
        let mut t = vec![unitfp8::E5M2(POISON); rows * cols];
        exec.cast_transpose(
            &src[..],
            rows,
            cols,
            cols,
            Some(&mut d[..]),
            cols,
            Some(&mut t[..]),
            rows,
            &p,
        )
        .unwrap();
        assert!(d == want && t == want_t, "{exec:?}");
    }
}

fn round_io(t: DType, y: f32) -> f32 {
    match t {
        DType::F32 => y,
        DType::BF16 => f32::from_bits((f32_to_bf16_bits(y, false) as u32) << 16),
        _ => f16_bits_to_f32(f32_to_f16_bits(y, false)),
    }
}

#[test]
fn residual_mix_forward_matches_model() {
    let mut rng = Rng::for_test("residual_mix_forward_matches_model");
    for exec in execs() {
        for io in [DType::F32, DType::BF16, DType::F16] {
            for &n in &[1usize, 17, 1024, 1500, 5000] {
                let tau = [0.0f32, 0.4, 0.1, 1.0, 0.37][(rng.u64() % 5) as usize];
                let fp8_t = if rng.u64() % 2 == 0 {
                    DType::E4M3
                } else {
                    DType::E5M2
                };
                let mp = MixParams {
                    tau,
                    rounding: MODES[(rng.u64() % 3) as usize],
                    seed: rng.u64(),
                };
                let (a, b) = mp.coefficients().unwrap();
                assert_eq!((a, b), ((1.0 - tau).sqrt(), tau.sqrt()));
                let x = random_elements(&mut rng, io, n);
                let f = random_elements(&mut rng, io, n);
                let s = io.size();
                // out separate, out == x, out == f.
                for mode in 0..3 {
                    let mut out = vec![POISON; n * s];
                    let mut xb = x.clone();
                    let mut fb = f.clone();
                    let mut q = vec![POISON; n];
                    let (xp, fp, op) = match mode {
                        0 => (xb.as_ptr(), fb.as_ptr(), out.as_mut_ptr()),
                        1 => (xb.as_ptr(), fb.as_ptr(), xb.as_mut_ptr()),
                        _ => (xb.as_ptr(), fb.as_ptr(), fb.as_mut_ptr()),
                    };
                    // SAFETY: sized buffers; out aliases x or f exactly, which is allowed.
                    unsafe { exec.residual_mix_raw(xp, fp, op, io, n, q.as_mut_ptr(), fp8_t, &mp) }
                        .unwrap();
                    let result = match mode {
                        0 => &out,
                        1 => &xb,
                        _ => &fb,
                    };
                    for i in 0..n {
                        // The NaN rule: every NaN result is the canonical positive NaN.
                        let y = round_io(
                            io,
                            canonical(a * read_f32(io, &x, i) + b * read_f32(io, &f, i)),
                        );
                        let got = read_f32(io, result, i);
                        assert_eq!(got.to_bits(), y.to_bits(), "{exec:?} {io:?} i {i}");
                        let cp = CastParams {
                            scale: 1.0,
                            rounding: mp.rounding,
                            seed: mp.seed,
                        };
                        assert_eq!(
                            vec![q[i]],
                            encode_model(fp8_t, got, &cp, i as u64),
                            "{exec:?} fp8 copy i {i}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn residual_mix_backward_matches_model() {
    let mut rng = Rng::for_test("residual_mix_backward_matches_model");
    for exec in execs() {
        for io in [DType::F32, DType::BF16, DType::F16] {
            for &n in &[1usize, 31, 1024, 2049] {
                for accumulate in [false, true] {
                    let tau = 0.4f32;
                    let mp = MixParams {
                        tau,
                        rounding: Rounding::NearestSaturate,
                        seed: 0,
                    };
                    let (a, b) = mp.coefficients().unwrap();
                    let s = io.size();
                    let g = random_elements(&mut rng, io, n);
                    let gx0 = random_elements(&mut rng, io, n);
                    for alias_gx in [false, true] {
                        let mut gbuf = g.clone();
                        let mut gx = if alias_gx { g.clone() } else { gx0.clone() };
                        let mut gf = vec![POISON; n * s];
                        let mut q = vec![POISON; n];
                        let gp = gbuf.as_mut_ptr();
                        let gxp = if alias_gx { gp } else { gx.as_mut_ptr() };
                        // SAFETY: sized buffers; grad_x may alias grad_out exactly.
                        unsafe {
                            exec.residual_mix_backward_raw(
                                gp,
                                gxp,
                                gf.as_mut_ptr(),
                                io,
                                n,
                                accumulate,
                                q.as_mut_ptr(),
                                DType::E5M2,
                                &mp,
                            )
                        }
                        .unwrap();
                        let gx_res = if alias_gx { &gbuf } else { &gx };
                        let gx_in = if alias_gx { &g } else { &gx0 };
                        for i in 0..n {
                            let gi = read_f32(io, &g, i);
                            let dx = if accumulate {
                                read_f32(io, gx_in, i) + a * gi
                            } else {
                                a * gi
                            };
                            let (want_x, want_f) =
                                (round_io(io, canonical(dx)), round_io(io, canonical(b * gi)));
                            let (got_x, got_f) = (read_f32(io, gx_res, i), read_f32(io, &gf, i));
                            let same = |p: f32, q: f32| p.to_bits() == q.to_bits();
                            assert!(
                                same(got_x, want_x),
                                "{exec:?} {io:?} acc {accumulate} grad_x i {i}"
                            );
                            assert!(same(got_f, want_f), "{exec:?} {io:?} grad_f i {i}");
                            assert_eq!(
                                q[i],
                                unitfp8::Fp8Format::E5M2.encode(
                                    got_f,
                                    Rounding::NearestSaturate,
                                    0
                                )
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn bad_arguments_fail_and_leave_outputs_untouched() {
    let exec = Exec::global();
    let x = vec![1.0f32; 64];
    let f = vec![2.0f32; 64];
    let mut buf = vec![POISON; 1024];
    let untouched = |b: &[u8]| b.iter().all(|&v| v == POISON);
    let xp = x.as_ptr() as *const u8;
    let fp = f.as_ptr() as *const u8;
    let op = buf.as_mut_ptr();
    // SAFETY: for all calls below, buffers are large enough; failures must not write anything.
    unsafe {
        for tau in [f32::NAN, -0.01, 1.01, f32::INFINITY] {
            let mp = MixParams::new(tau);
            assert_eq!(
                status_of(exec.residual_mix_raw(
                    xp,
                    fp,
                    op,
                    DType::F32,
                    64,
                    core::ptr::null_mut(),
                    DType::E4M3,
                    &mp
                )),
                Err(Status::InvalidArgument)
            );
        }
        let mp = MixParams::new(0.5);
        // Partial overlap of out with x.
        let mut xs = vec![0f32; 80];
        let xsp = xs.as_mut_ptr() as *mut u8;
        assert_eq!(
            status_of(exec.residual_mix_raw(
                xsp,
                fp,
                xsp.add(4),
                DType::F32,
                64,
                core::ptr::null_mut(),
                DType::E4M3,
                &mp
            )),
            Err(Status::Overlap)
        );
        // FP8 copy overlapping the output.
        assert_eq!(
            status_of(exec.residual_mix_raw(
                xp,
                fp,
                op,
                DType::F32,
                64,
                op.add(100),
                DType::E4M3,
                &mp
            )),
            Err(Status::Overlap)
        );
        // FP8 copy of a non-FP8 type; FP8 I/O.
        assert_eq!(
            status_of(exec.residual_mix_raw(
                xp,
                fp,
                op,
                DType::F32,
                64,
                op.add(512),
                DType::BF16,
                &mp
            )),
            Err(Status::InvalidArgument)
        );
        assert_eq!(
            status_of(exec.residual_mix_raw(
                xp,
                fp,
                op,
                DType::E4M3,
                64,
                core::ptr::null_mut(),
                DType::E4M3,
                &mp
            )),
            Err(Status::Unsupported)
        );
        // Null inputs.
        assert_eq!(
            status_of(exec.residual_mix_raw(
                core::ptr::null(),
                fp,
                op,
                DType::F32,
                64,
                core::ptr::null_mut(),
                DType::E4M3,
                &mp
            )),
            Err(Status::NullPointer)
        );
        // Backward: grad_x and grad_f overlapping.
        assert_eq!(
            status_of(exec.residual_mix_backward_raw(
                xp,
                op,
                op.add(8),
                DType::F32,
                64,
                false,
                core::ptr::null_mut(),
                DType::E5M2,
                &mp
            )),
            Err(Status::Overlap)
        );
        // Casts.
        let bad_scale = CastParams {
            scale: f32::NAN,
            ..CastParams::default()
        };
        assert_eq!(
            status_of(exec.cast_raw(xp, DType::F32, op, DType::E4M3, 64, &bad_scale)),
            Err(Status::InvalidArgument)
        );
        let sr = CastParams {
            rounding: Rounding::StochasticSaturate,
            ..CastParams::default()
        };
        assert_eq!(
            status_of(exec.cast_raw(xp, DType::F32, op, DType::BF16, 64, &sr)),
            Err(Status::Unsupported)
        );
        assert_eq!(
            status_of(exec.cast_raw(
                xsp,
                DType::F32,
                xsp.add(1),
                DType::E4M3,
                64,
                &CastParams::default()
            )),
            Err(Status::Overlap)
        );
        assert_eq!(
            status_of(exec.cast_raw(
                xp,
                DType::F32,
                core::ptr::null_mut(),
                DType::E4M3,
                64,
                &CastParams::default()
            )),
            Err(Status::NullPointer)
        );
        assert_eq!(
            status_of(exec.cast_raw(
                xp,
                DType::F32,
                op,
                DType::E4M3,
                usize::MAX / 2,
                &CastParams::default()
            )),
            Err(Status::InvalidArgument)
        );
        // n = 0 is a no-op even with null pointers.
        assert_eq!(
            exec.cast_raw(
                core::ptr::null(),
                DType::F32,
                core::ptr::null_mut(),
                DType::E4M3,
                0,
                &CastParams::default()
            ),
            Ok(0.0)
        );
        // Cast-transpose: short leading dimensions, overflowing shapes, overlapping outputs.
        let p = CastParams::default();
        assert_eq!(
            status_of(exec.cast_transpose_raw(
                xp,
                DType::F32,
                4,
                8,
                7,
                op,
                8,
                core::ptr::null_mut(),
                4,
                DType::E4M3,
                &p
            )),
            Err(Status::InvalidArgument)
        );
        assert_eq!(
            status_of(exec.cast_transpose_raw(
                xp,
                DType::F32,
                4,
                8,
                8,
                op,
                7,
                core::ptr::null_mut(),
                4,
                DType::E4M3,
                &p
            )),
            Err(Status::InvalidArgument)
        );
        assert_eq!(
            status_of(exec.cast_transpose_raw(
                xp,
                DType::F32,
                4,
                8,
                8,
                core::ptr::null_mut(),
                8,
                op,
                3,
                DType::E4M3,
                &p
            )),
            Err(Status::InvalidArgument)
        );
        assert_eq!(
            status_of(exec.cast_transpose_raw(
                xp,
                DType::F32,
                usize::MAX / 4,
                8,
                8,
                op,
                8,
                core::ptr::null_mut(),
                4,
                DType::E4M3,
                &p
            )),
            Err(Status::InvalidArgument)
        );
        assert_eq!(
            status_of(exec.cast_transpose_raw(
                xp,
                DType::F32,
                4,
                8,
                8,
                op,
                8,
                op.add(16),
                4,
                DType::E4M3,
                &p
            )),
            Err(Status::Overlap)
        );
    }
    assert!(untouched(&buf));
    // Safe API: mismatched lengths.
    let mut short = [unitfp8::E4M3::ZERO; 3];
    assert_eq!(
        status_of(unitfp8::cast(
            &x[..],
            &mut short[..],
            &CastParams::default()
        )),
        Err(Status::InvalidArgument)
    );
}

#[test]
fn transpose_kernel_all_shapes() {
    let mut rng = Rng::for_test("transpose_kernel_all_shapes");
    let ld_src = 200;
    let src: Vec<u8> = (0..ld_src * 140).map(|_| rng.u64() as u8).collect();
    for b in Backend::ALL {
        let Ok(k) = b.kernels() else { continue };
        for rows in (1..=70).chain([129, 140]) {
            for cols in (1..=70).chain([127, 200]) {
                let ld = rows + (rng.u64() % 5) as usize;
                let stream = rng.u64() % 2 == 0;
                let mut buf = GuardBuf::new(cols * ld, rng.below(64), POISON);
                // SAFETY: src holds 140 rows of ld_src bytes; buf holds cols rows of ld bytes.
                unsafe {
                    (k.transpose_u8)(src.as_ptr(), ld_src, rows, cols, buf.ptr(), ld, stream)
                };
                unitfp8::backend::store_fence();
                let dst = buf.data();
                for c in 0..cols {
                    for r in 0..ld {
                        let want = if r < rows {
                            src[r * ld_src + c]
                        } else {
                            POISON
                        };
                        assert_eq!(dst[c * ld + r], want, "{b:?} {rows}x{cols} ({r},{c})");
                    }
                }
                assert!(buf.guards_intact(), "{b:?} guard bytes");
            }
        }
    }
}

#[test]
fn stream_copy_kernel_all_offsets() {
    let mut rng = Rng::for_test("stream_copy_kernel_all_offsets");
    let src: Vec<u8> = (0..1024).map(|_| rng.u64() as u8).collect();
    for b in Backend::ALL {
        let Ok(k) = b.kernels() else { continue };
        for off in 0..64 {
            for len in (0..300).chain([511, 512, 700]) {
                let mut dst = GuardBuf::new(len, off, POISON);
                // SAFETY: src holds 1024 bytes; dst holds len bytes.
                unsafe { (k.stream_copy)(src.as_ptr().add(3), dst.ptr(), len) };
                assert_eq!(dst.data(), &src[3..3 + len], "{b:?} off {off} len {len}");
                assert!(dst.guards_intact(), "{b:?} off {off} len {len} guard bytes");
            }
        }
    }
}

/// A cast-transpose that moves more than 16 MiB writes both outputs with streaming stores and
/// stages whole rows at a padded stride: check every element of both outputs against the
/// per-element model, with a misaligned `dst`, a padded `ld_dst_t`, on 1 and 2 threads.
#[test]
fn streamed_cast_transpose_matches_model() {
    let mut rng = Rng::for_test("streamed_cast_transpose_matches_model");
    let (rows, cols) = (2101usize, 1999usize); // 16.8 MB in + 2 × 4.2 MB out: streamed
    let (ld_dst, ld_t) = (cols + 3, rows + 67);
    let src: Vec<f32> = (0..rows * cols)
        .map(|_| (rng.normal() as f32) * 30.0)
        .collect();
    let p = CastParams {
        scale: 1.0,
        rounding: Rounding::StochasticSaturate,
        seed: rng.u64(),
    };
    for exec in [Exec::global(), Exec::global().with_threads(1)] {
        let mut dst = vec![POISON; rows * ld_dst + 1];
        let mut dst_t = vec![POISON; cols * ld_t];
        // SAFETY: src is rows×cols; dst holds rows rows of ld_dst bytes after a 1-byte offset;
        // dst_t holds cols rows of ld_t bytes.
        let amax = unsafe {
            exec.cast_transpose_raw(
                src.as_ptr().cast(),
                DType::F32,
                rows,
                cols,
                cols,
                dst.as_mut_ptr().add(1),
                ld_dst,
                dst_t.as_mut_ptr(),
                ld_t,
                DType::E4M3,
                &p,
            )
        }
        .unwrap();
        unitfp8::backend::store_fence();
        assert_eq!(amax.to_bits(), amax_model(src.iter().copied()));
        assert_eq!(dst[0], POISON);
        for r in 0..rows {
            for c in 0..ld_dst {
                let got = dst[1 + r * ld_dst + c];
                if c >= cols {
                    assert_eq!(got, POISON, "{exec:?} dst padding ({r},{c})");
                    continue;
                }
                let i = r * cols + c;
                let want = unitfp8::Fp8Format::E4M3.encode(
                    src[i],
                    p.rounding,
                    stochastic_bits(p.seed, i as u64),
                );
                assert_eq!(got, want, "{exec:?} dst ({r},{c})");
                assert_eq!(dst_t[c * ld_t + r], want, "{exec:?} dst_t ({r},{c})");
            }
        }
        for c in 0..cols {
            assert!(
                dst_t[c * ld_t + rows..(c + 1) * ld_t]
                    .iter()
                    .all(|&b| b == POISON),
                "{exec:?} dst_t padding of row {c}"
            );
        }
    }
}

/// Residual mixes larger than the last-level cache stream their outputs: check that path end to
/// end; and a large cast with a misaligned destination.
#[test]
fn streamed_large_calls_match_model() {
    let mut rng = Rng::for_test("streamed_large_calls_match_model");
    let n = 13_000_003; // 52 MB in + 13 MB out: above the streaming threshold
    let src: Vec<f32> = (0..n).map(|_| (rng.normal() as f32) * 50.0).collect();
    let p = CastParams {
        scale: 1.0,
        rounding: Rounding::StochasticSaturate,
        seed: rng.u64(),
    };
    for exec in [Exec::global(), Exec::global().with_threads(1)] {
        let mut dst = vec![POISON; n + 2];
        // SAFETY: src has n f32; dst has n bytes after the 1-byte offset.
        let amax = unsafe {
            exec.cast_raw(
                src.as_ptr().cast(),
                DType::F32,
                dst.as_mut_ptr().add(1),
                DType::E4M3,
                n,
                &p,
            )
        }
        .unwrap();
        assert_eq!(amax.to_bits(), amax_model(src.iter().copied()));
        // Every element: the codes of large narrowing casts leave through streaming stores.
        for i in 0..n {
            let want = unitfp8::Fp8Format::E4M3.encode(
                src[i],
                p.rounding,
                stochastic_bits(p.seed, i as u64),
            );
            assert_eq!(dst[i + 1], want, "{exec:?} i {i}");
        }
        assert_eq!((dst[0], dst[n + 1]), (POISON, POISON));
    }
    // A widening cast that large streams its output; decode with scale 1 (amax from the codes)
    // and with scale 2 (amax from the values).
    let codes: Vec<u8> = (0..n).map(|_| rng.u64() as u8).collect();
    for scale in [1.0f32, 2.0] {
        let p = CastParams {
            scale,
            rounding: Rounding::Nearest,
            seed: 0,
        };
        let mut out = vec![0f32; n];
        // SAFETY: codes has n bytes, out n f32.
        let amax = unsafe {
            Exec::global().cast_raw(
                codes.as_ptr(),
                DType::E5M2,
                out.as_mut_ptr().cast(),
                DType::F32,
                n,
                &p,
            )
        }
        .unwrap();
        let want: Vec<f32> = codes
            .iter()
            .map(|&c| unitfp8::Fp8Format::E5M2.decode(c))
            .collect();
        assert_eq!(amax.to_bits(), amax_model(want.iter().copied()));
        for i in (0..n).step_by(3).chain(n - 100..n) {
            let w = want[i] * scale;
            assert!(
                out[i].to_bits() == w.to_bits() || (out[i].is_nan() && w.is_nan()),
                "decode i {i}"
            );
        }
    }
    // Residual mix forward (f32, with an E4M3 copy) and backward (accumulating, E5M2 copy).
    let n = 4_200_001;
    let x: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    let f: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    let mp = MixParams::new(0.3);
    let (a, b) = mp.coefficients().unwrap();
    let exec = Exec::global();
    let mut out = vec![0f32; n];
    let mut q = vec![POISON; n];
    // SAFETY: all buffers hold n elements.
    unsafe {
        exec.residual_mix_raw(
            x.as_ptr().cast(),
            f.as_ptr().cast(),
            out.as_mut_ptr().cast(),
            DType::F32,
            n,
            q.as_mut_ptr(),
            DType::E4M3,
            &mp,
        )
    }
    .unwrap();
    let mut gx: Vec<f32> = f.clone();
    let mut gf = vec![0f32; n];
    let mut gq = vec![POISON; n];
    // SAFETY: all buffers hold n elements.
    unsafe {
        exec.residual_mix_backward_raw(
            x.as_ptr().cast(),
            gx.as_mut_ptr().cast(),
            gf.as_mut_ptr().cast(),
            DType::F32,
            n,
            true,
            gq.as_mut_ptr(),
            DType::E5M2,
            &mp,
        )
    }
    .unwrap();
    for i in (0..n).step_by(5).chain(n - 50..n) {
        let y = a * x[i] + b * f[i];
        assert_eq!(out[i].to_bits(), y.to_bits(), "mix i {i}");
        assert_eq!(
            q[i],
            unitfp8::Fp8Format::E4M3.encode(y, Rounding::NearestSaturate, 0)
        );
        assert_eq!(gx[i].to_bits(), (f[i] + a * x[i]).to_bits(), "grad_x i {i}");
        assert_eq!(gf[i].to_bits(), (b * x[i]).to_bits(), "grad_f i {i}");
        assert_eq!(
            gq[i],
            unitfp8::Fp8Format::E5M2.encode(b * x[i], Rounding::NearestSaturate, 0)
        );
    }
}

/// Large f32 mixes stream `out` / `grad_x` from their first 64-byte boundary on with the fused
/// kernels: check every element (values and stochastically rounded copies) with the outputs at
/// byte offsets that align them, misalign them by a whole element or break element alignment
/// (never streamed), and `grad_f` aligned differently from `grad_x`, on 1 and 2 threads.
#[test]
fn streamed_mixes_at_any_alignment() {
    let offsets = [(0, 0, 0), (4, 3, 8), (1, 5, 4), (20, 0, 2)];
    // 3 × 16.8 MB + 4.2 MB: above the streaming threshold.
    check_streamed_mixes(DType::F32, 4_200_001, 0.2, &offsets);
}

/// As [`streamed_mixes_at_any_alignment`] for bf16 mixes (outputs rounded to bf16, the FP8
/// copies encoded from the rounded values).
#[test]
fn streamed_bf16_mixes_at_any_alignment() {
    let offsets = [(0, 0, 0), (2, 3, 6), (1, 5, 2)];
    // 4 × 16.8 MB + 8.4 MB: above the streaming threshold.
    check_streamed_mixes(DType::BF16, 8_400_001, 0.3, &offsets);
}

/// Large forward and backward (accumulating) mixes over `io` (f32 or bf16) with stochastically
/// rounded FP8 copies, against the per-element model, for each `(out / grad_x, codes, grad_f)`
/// byte offset past a 64-byte boundary; calls alternate between all threads and one.
fn check_streamed_mixes(io: DType, n: usize, tau: f32, offsets: &[(usize, usize, usize)]) {
    let size = io.size();
    // An element's bits from an f32 (rounded to nearest even for bf16) and back.
    let round = |v: f32| -> u32 {
        if io == DType::BF16 {
            f32_to_bf16_bits(v, false) as u32
        } else {
            v.to_bits()
        }
    };
    let widen = |h: u32| -> f32 {
        if io == DType::BF16 {
            f32::from_bits(h << 16)
        } else {
            f32::from_bits(h)
        }
    };
    let mut rng = Rng::for_test("check_streamed_mixes");
    let x: Vec<u32> = (0..n).map(|_| round((rng.normal() as f32) * 3.0)).collect();
    let f: Vec<u32> = (0..n).map(|_| round((rng.normal() as f32) * 3.0)).collect();
    let bytes = |v: &[u32]| -> Vec<u8> {
        v.iter()
            .flat_map(|e| e.to_le_bytes()[..size].to_vec())
            .collect()
    };
    let (xb, fb) = (bytes(&x), bytes(&f));
    let mp = MixParams {
        tau,
        rounding: Rounding::StochasticSaturate,
        seed: rng.u64(),
    };
    let (a, b) = mp.coefficients().unwrap();
    let read = |v: &GuardBuf, i: usize| -> u32 {
        let mut e = [0u8; 4];
        e[..size].copy_from_slice(&v.data()[size * i..size * (i + 1)]);
        u32::from_le_bytes(e)
    };
    for (k, &(o_off, q_off, f_off)) in offsets.iter().enumerate() {
        let exec = if k % 2 == 0 {
            Exec::global()
        } else {
            Exec::global().with_threads(1)
        };
        let ctx = format!("{io:?} {exec:?} offsets {o_off} {q_off} {f_off}");
        // Outputs starting `off` bytes past a 64-byte boundary, guarded.
        let mut ob = GuardBuf::new(size * n, o_off, POISON);
        let mut qb = GuardBuf::new(n, q_off, POISON);
        // SAFETY: x, f hold n elements; ob and qb hold n elements / n bytes.
        unsafe {
            exec.residual_mix_raw(
                xb.as_ptr(),
                fb.as_ptr(),
                ob.ptr(),
                io,
                n,
                qb.ptr(),
                DType::E4M3,
                &mp,
            )
        }
        .unwrap();
        for i in 0..n {
            let y = round(a * widen(x[i]) + b * widen(f[i]));
            assert_eq!(read(&ob, i), y, "{ctx} mix i {i}");
            let r = stochastic_bits(mp.seed, i as u64);
            let want = unitfp8::Fp8Format::E4M3.encode(widen(y), mp.rounding, r);
            assert_eq!(qb.data()[i], want, "{ctx} mix copy i {i}");
        }
        assert!(ob.guards_intact(), "{ctx} out guards");
        assert!(qb.guards_intact(), "{ctx} copy guards");

        // Backward, accumulating into grad_x = f; grad_f offset differently from grad_x.
        let mut gxb = GuardBuf::with_data(&fb, o_off, POISON);
        let mut gfb = GuardBuf::new(size * n, f_off, POISON);
        let mut gqb = GuardBuf::new(n, q_off, POISON);
        // SAFETY: x holds n elements; the outputs hold n elements.
        unsafe {
            exec.residual_mix_backward_raw(
                xb.as_ptr(),
                gxb.ptr(),
                gfb.ptr(),
                io,
                n,
                true,
                gqb.ptr(),
                DType::E5M2,
                &mp,
            )
        }
        .unwrap();
        for i in 0..n {
            let dx = round(widen(f[i]) + a * widen(x[i]));
            let df = round(b * widen(x[i]));
            assert_eq!(read(&gxb, i), dx, "{ctx} grad_x i {i}");
            assert_eq!(read(&gfb, i), df, "{ctx} grad_f i {i}");
            let r = stochastic_bits(mp.seed, i as u64);
            let want = unitfp8::Fp8Format::E5M2.encode(widen(df), mp.rounding, r);
            assert_eq!(gqb.data()[i], want, "{ctx} grad_f copy i {i}");
        }
        assert!(gxb.guards_intact(), "{ctx} grad_x guards");
        assert!(gfb.guards_intact(), "{ctx} grad_f guards");
        assert!(gqb.guards_intact(), "{ctx} grad_f copy guards");
    }
}

/// Whole 64-row tiles into 64-byte-aligned output rows take the streaming-store path.
#[test]
fn transpose_kernel_aligned_full_tiles() {
    let mut rng = Rng::for_test("transpose_kernel_aligned_full_tiles");
    for b in Backend::ALL {
        let Ok(k) = b.kernels() else { continue };
        for (rows, cols, ld) in [
            (64usize, 64usize, 64usize),
            (128, 70, 128),
            (192, 129, 256),
            (64, 200, 192),
        ] {
            for stream in [false, true] {
                let src: Vec<u8> = (0..rows * cols).map(|_| rng.u64() as u8).collect();
                let mut buf = GuardBuf::new(cols * ld, 0, POISON);
                // SAFETY: src is rows×cols; buf (aligned to 64) holds cols rows of ld bytes.
                unsafe { (k.transpose_u8)(src.as_ptr(), cols, rows, cols, buf.ptr(), ld, stream) };
                unitfp8::backend::store_fence();
                let dst = buf.data();
                for c in 0..cols {
                    for r in 0..ld {
                        let want = if r < rows { src[r * cols + c] } else { POISON };
                        assert_eq!(
                            dst[c * ld + r],
                            want,
                            "{b:?} {rows}x{cols} ld {ld} stream {stream} ({r},{c})"
                        );
                    }
                }
                assert!(buf.guards_intact(), "{b:?} guards");
            }
        }
    }
}

/// Transposed rows a multiple of 64 bytes apart take the aligned-band path (a short first band,
/// then whole lines): check it against the scalar back end for several base misalignments.
#[test]
fn cast_transpose_aligned_bands() {
    let mut rng = Rng::for_test("cast_transpose_aligned_bands");
    let (rows, cols, ld_t) = (300usize, 97usize, 320usize);
    let src: Vec<f32> = (0..rows * cols)
        .map(|_| (rng.normal() as f32) * 100.0)
        .collect();
    let p = CastParams {
        scale: 1.0,
        rounding: Rounding::StochasticSaturate,
        seed: rng.u64(),
    };
    let mut want = vec![0u8; cols * ld_t];
    let scalar = Exec::new(Backend::Scalar).unwrap();
    // SAFETY: src is rows×cols; want holds cols rows of ld_t bytes.
    unsafe {
        scalar.cast_transpose_raw(
            src.as_ptr().cast(),
            DType::F32,
            rows,
            cols,
            cols,
            core::ptr::null_mut(),
            cols,
            want.as_mut_ptr(),
            ld_t,
            DType::E4M3,
            &p,
        )
    }
    .unwrap();
    for exec in execs() {
        for skew in [0usize, 1, 16, 48, 63] {
            let mut buf = vec![POISON; cols * ld_t + 128];
            let off = buf.as_ptr().align_offset(64) + skew;
            // SAFETY: as above, at a chosen misalignment inside buf.
            unsafe {
                exec.cast_transpose_raw(
                    src.as_ptr().cast(),
                    DType::F32,
                    rows,
                    cols,
                    cols,
                    core::ptr::null_mut(),
                    cols,
                    buf.as_mut_ptr().add(off),
                    ld_t,
                    DType::E4M3,
                    &p,
                )
            }
            .unwrap();
            unitfp8::backend::store_fence();
            for c in 0..cols {
                for r in 0..ld_t {
                    let got = buf[off + c * ld_t + r];
                    let w = if r < rows { want[c * ld_t + r] } else { POISON };
                    assert_eq!(got, w, "{exec:?} skew {skew} ({r},{c})");
                }
            }
            assert!(
                buf[..off]
                    .iter()
                    .chain(&buf[off + cols * ld_t..])
                    .all(|&b| b == POISON)
            );
        }
    }
}

/// The status of a result, for comparing error kinds.
fn status_of<T>(r: Result<T, unitfp8::Error>) -> Result<T, unitfp8::Status> {
    r.map_err(|e| e.status())
}

/// The NaN rule (`unitfp8::nan`) on every back end: NaNs of both signs, quiet and signalling,
/// with payloads, meeting each other and ±Inf (Inf − Inf, 0·Inf at τ = 0 or 1) in the mixes
/// give the canonical positive NaN in every output type, and the FP8 copies give the positive
/// canonical FP8 NaN.
#[test]
fn mix_nan_results_are_canonical() {
    for exec in execs() {
        for io in [DType::F32, DType::BF16, DType::F16] {
            // Per type: +qNaN, -qNaN, +sNaN with payload, -NaN with payload, +Inf, -Inf, 1, -0.
            let specials: [u32; 8] = match io {
                DType::F32 => [
                    0x7FC0_0000,
                    0xFFC0_0000,
                    0x7F80_0001,
                    0xFFA5_0000,
                    0x7F80_0000,
                    0xFF80_0000,
                    0x3F80_0000,
                    0x8000_0000,
                ],
                DType::BF16 => [
                    0x7FC0, 0xFFC0, 0x7F81, 0xFFA5, 0x7F80, 0xFF80, 0x3F80, 0x8000,
                ],
                _ => [
                    0x7E00, 0xFE00, 0x7C01, 0xFDA5, 0x7C00, 0xFC00, 0x3C00, 0x8000,
                ],
            };
            let canonical_bits = match io {
                DType::F32 => 0x7FC0_0000u32,
                DType::BF16 => 0x7FC0,
                _ => 0x7E00,
            };
            let s = io.size();
            let n = 64 + 3; // every ordered pair, plus a tail
            let put = |v: &mut Vec<u8>, bits: u32| v.extend_from_slice(&bits.to_le_bytes()[..s]);
            let (mut x, mut f) = (Vec::new(), Vec::new());
            for i in 0..n {
                put(&mut x, specials[i % 8]);
                put(&mut f, specials[(i / 8) % 8]);
            }
            let get = |v: &[u8], i: usize| {
                let mut b = [0u8; 4];
                b[..s].copy_from_slice(&v[i * s..(i + 1) * s]);
                u32::from_le_bytes(b)
            };
            let is_nan = |bits: u32| read_f32(io, &bits.to_le_bytes()[..s], 0).is_nan();
            for tau in [0.0f32, 0.5, 1.0] {
                let mp = MixParams::new(tau);
                let mut out = vec![POISON; n * s];
                let mut q = vec![POISON; n];
                // SAFETY: sized, disjoint buffers.
                unsafe {
                    exec.residual_mix_raw(
                        x.as_ptr(),
                        f.as_ptr(),
                        out.as_mut_ptr(),
                        io,
                        n,
                        q.as_mut_ptr(),
                        DType::E4M3,
                        &mp,
                    )
                }
                .unwrap();
                let mut nans = 0;
                for i in 0..n {
                    let o = get(&out, i);
                    if is_nan(o) {
                        nans += 1;
                        assert_eq!(o, canonical_bits, "{exec:?} {io:?} tau {tau} i {i}");
                        assert_eq!(q[i], 0x7F, "{exec:?} {io:?} copy i {i}");
                    }
                }
                assert!(
                    nans >= 28,
                    "{exec:?} {io:?} tau {tau}: only {nans} NaN results"
                );

                let mut gx = f.clone();
                let mut gf = vec![POISON; n * s];
                let mut q = vec![POISON; n];
                // SAFETY: sized, disjoint buffers.
                unsafe {
                    exec.residual_mix_backward_raw(
                        x.as_ptr(),
                        gx.as_mut_ptr(),
                        gf.as_mut_ptr(),
                        io,
                        n,
                        true,
                        q.as_mut_ptr(),
                        DType::E5M2,
                        &mp,
                    )
                }
                .unwrap();
                for i in 0..n {
                    for (name, v) in [("grad_x", get(&gx, i)), ("grad_f", get(&gf, i))] {
                        if is_nan(v) {
                            assert_eq!(v, canonical_bits, "{exec:?} {io:?} {name} i {i}");
                        }
                    }
                    if is_nan(get(&gf, i)) {
                        assert_eq!(q[i], 0x7E, "{exec:?} {io:?} E5M2 copy i {i}");
                    }
                }
            }
        }
    }
}
