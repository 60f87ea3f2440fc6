//! GEMM tests: every available micro-kernel against an independent scalar model that
//! accumulates in the documented order (bit-exact), random shapes and layouts, all dtype
//! combinations, α/β, guard bands, poisoned outputs, NaN/Inf, thread-count invariance, and
//! accuracy against f64.

use unitfp8::gemm::{GemmKernel, MatMut, MatRef, RawGemm, RawMatrix};
use unitfp8::{Backend, DType, E4M3, E5M2, Exec, Fp8Format, Rounding, Status, bf16};

mod common;
use common::Rng;

fn fmt_of(t: DType) -> Fp8Format {
    t.fp8().unwrap()
}

/// A random finite FP8 code.
fn finite_code(rng: &mut Rng, fmt: Fp8Format) -> u8 {
    loop {
        let c = rng.u64() as u8;
        let v = fmt.decode(c);
        if v.is_finite() {
            return c;
        }
    }
}

/// A strided view inside a buffer: element (i, j) at origin + i·rs + j·cs.
#[derive(Clone, Copy, Debug)]
struct View {
    len: usize,
    origin: usize,
    rs: isize,
    cs: isize,
}

const LAYOUTS: usize = 8;

/// Layout `kind` of a rows × cols matrix, with `guard` spare elements on both sides.
fn layout(rng: &mut Rng, rows: usize, cols: usize, kind: usize, guard: usize) -> View {
    let (r, c) = (rows.max(1), cols.max(1));
    let pad = 1 + rng.below(5);
    let (rs, cs, origin, len): (isize, isize, usize, usize) = match kind {
        0 => (c as isize, 1, 0, r * c),
        1 => (1, r as isize, 0, r * c),
        2 => ((c + pad) as isize, 1, 0, r * (c + pad)),
        3 => (1, (r + pad) as isize, 0, c * (r + pad)),
        4 => {
            // Neither stride 1: column stride s, row stride c·s + pad.
            let s = 2 + rng.below(2);
            let ld = c * s + pad;
            (ld as isize, s as isize, 0, r * ld)
        }
        5 => {
            // Row-major with rows reversed.
            let ld = c + pad;
            (-(ld as isize), 1, (r - 1) * ld, r * ld)
        }
        6 => {
            // Column-major with columns reversed.
            let ld = r + pad;
            (1, -(ld as isize), (c - 1) * ld, c * ld)
        }
        _ => {
            // Both strides negative, row-major-like.
            let ld = c + pad;
            (-(ld as isize), -1, (r - 1) * ld + c - 1, r * ld)
        }
    };
    View {
        len: len + 2 * guard,
        origin: origin + guard,
        rs,
        cs,
    }
}

fn idx(v: &View, i: usize, j: usize) -> usize {
    (v.origin as isize + i as isize * v.rs + j as isize * v.cs) as usize
}

/// The documented accumulation order.
fn model_dot(k: usize, a: impl Fn(usize) -> f32, b: impl Fn(usize) -> f32) -> f32 {
    let mut total = 0f32;
    let mut s = 0;
    while s < k {
        let e = (s + 256).min(k);
        let mut acc = 0f32;
        let mut t = s;
        while t < e {
            let even = a(t) * b(t);
            let odd = if t + 1 < e { a(t + 1) * b(t + 1) } else { 0.0 };
            acc = even + (odd + acc);
            t += 2;
        }
        total = if s == 0 { acc } else { total + acc };
        s = e;
    }
    total
}

fn read_c(buf: &[u8], t: DType, e: usize) -> f32 {
    match t {
        DType::F32 => f32::from_le_bytes(buf[4 * e..4 * e + 4].try_into().unwrap()),
        DType::BF16 => {
            f32::from_bits((u16::from_le_bytes([buf[2 * e], buf[2 * e + 1]]) as u32) << 16)
        }
        _ => fmt_of(t).decode(buf[e]),
    }
}

/// Bits of `x` rounded to `t`.
fn encode(t: DType, x: f32) -> u32 {
    match t {
        DType::F32 => x.to_bits(),
        DType::BF16 => unitfp8::fp8::f32_to_bf16_bits(x, false) as u32,
        _ => fmt_of(t).encode(x, Rounding::NearestSaturate, 0) as u32,
    }
}

fn bits_at(buf: &[u8], t: DType, e: usize) -> u32 {
    let s = t.size();
    let mut b = [0u8; 4];
    b[..s].copy_from_slice(&buf[s * e..s * e + s]);
    u32::from_le_bytes(b)
}

struct Case {
    m: usize,
    n: usize,
    k: usize,
    ta: DType,
    tb: DType,
    tc: DType,
    alpha: f32,
    beta: f32,
    la: usize,
    lb: usize,
    lc: usize,
}

struct Data {
    a: Vec<u8>,
    b: Vec<u8>,
    c: Vec<u8>,
    va: View,
    vb: View,
    vc: View,
}

const GUARD: usize = 37;

fn make_data(rng: &mut Rng, cs: &Case, special: bool) -> Data {
    let va = layout(rng, cs.m, cs.k, cs.la, 0);
    let vb = layout(rng, cs.k, cs.n, cs.lb, 0);
    let vc = layout(rng, cs.m, cs.n, cs.lc, GUARD);
    let (fa, fb) = (fmt_of(cs.ta), fmt_of(cs.tb));
    let gen_code = |rng: &mut Rng, f: Fp8Format| {
        if special && rng.below(50) == 0 {
            rng.u64() as u8 // anything, NaN and Inf included
        } else {
            finite_code(rng, f)
        }
    };
    let a: Vec<u8> = (0..va.len).map(|_| gen_code(rng, fa)).collect();
    let b: Vec<u8> = (0..vb.len).map(|_| gen_code(rng, fb)).collect();
    // C: poison everywhere (random bytes, NaNs included); finite old values where β reads them.
    let mut c: Vec<u8> = (0..vc.len * cs.tc.size())
        .map(|_| rng.u64() as u8)
        .collect();
    if cs.beta != 0.0 {
        for i in 0..cs.m {
            for j in 0..cs.n {
                let e = idx(&vc, i, j);
                let x = (rng.normal() * 4.0) as f32;
                let s = cs.tc.size();
                let bits = encode(cs.tc, x).to_le_bytes();
                c[s * e..s * e + s].copy_from_slice(&bits[..s]);
            }
        }
    }
    Data {
        a,
        b,
        c,
        va,
        vb,
        vc,
    }
}

fn raw(cs: &Case, d: &mut Data) -> RawGemm {
    RawGemm {
        m: cs.m,
        n: cs.n,
        k: cs.k,
        alpha: cs.alpha,
        a: RawMatrix {
            ptr: d.a.as_ptr().wrapping_add(d.va.origin),
            dtype: cs.ta,
            row_stride: d.va.rs,
            col_stride: d.va.cs,
        },
        b: RawMatrix {
            ptr: d.b.as_ptr().wrapping_add(d.vb.origin),
            dtype: cs.tb,
            row_stride: d.vb.rs,
            col_stride: d.vb.cs,
        },
        beta: cs.beta,
        c: RawMatrix {
            ptr: d.c.as_mut_ptr().wrapping_add(d.vc.origin * cs.tc.size()),
            dtype: cs.tc,
            row_stride: d.vc.rs,
            col_stride: d.vc.cs,
        },
    }
}

/// The one NaN a GEMM stores (f32 bits; bf16 0x7FC0, E4M3 0x7F, E5M2 0x7E once rounded).
const CANONICAL_NAN: u32 = 0x7FC0_0000;

/// Expected C buffer: the model inside C (a NaN result is the canonical NaN), the original
/// bytes elsewhere.
fn expected(cs: &Case, d: &Data) -> Vec<u8> {
    let (fa, fb) = (fmt_of(cs.ta), fmt_of(cs.tb));
    let s = cs.tc.size();
    let mut out = d.c.clone();
    for i in 0..cs.m {
        for j in 0..cs.n {
            let e = idx(&d.vc, i, j);
            let x = if cs.k == 0 {
                if cs.beta != 0.0 {
                    cs.beta * read_c(&d.c, cs.tc, e)
                } else {
                    0.0
                }
            } else {
                let acc = model_dot(
                    cs.k,
                    |t| fa.decode(d.a[idx(&d.va, i, t)]),
                    |t| fb.decode(d.b[idx(&d.vb, t, j)]),
                );
                let r = cs.alpha * acc;
                if cs.beta != 0.0 {
                    r + cs.beta * read_c(&d.c, cs.tc, e)
                } else {
                    r
                }
            };
            let x = if x.is_nan() {
                f32::from_bits(CANONICAL_NAN)
            } else {
                x
            };
            let bits = encode(cs.tc, x).to_le_bytes();
            out[s * e..s * e + s].copy_from_slice(&bits[..s]);
        }
    }
    out
}

fn compare(cs: &Case, want: &[u8], got: &[u8], what: &str) {
    let s = cs.tc.size();
    for e in 0..want.len() / s {
        let (w, g) = (bits_at(want, cs.tc, e), bits_at(got, cs.tc, e));
        if w != g {
            panic!(
                "{what}: element {e} of the C buffer: want {w:#x} got {g:#x}; m={} n={} k={} {:?}x{:?}->{:?} \
                 alpha={} beta={} layouts a{} b{} c{}",
                cs.m, cs.n, cs.k, cs.ta, cs.tb, cs.tc, cs.alpha, cs.beta, cs.la, cs.lb, cs.lc
            );
        }
    }
}

/// The available kernels that follow the defined summation order (all but the opt-in AMX one,
/// checked against error bounds by `amx_kernel_within_error_bound`).
fn kernels() -> Vec<GemmKernel> {
    GemmKernel::ALL
        .into_iter()
        .filter(|k| k.is_exact() && k.is_available())
        .collect()
}

const SIZES: [usize; 10] = [1, 2, 15, 16, 17, 33, 255, 257, 1000, 3];
const FP8: [DType; 2] = [DType::E4M3, DType::E5M2];
const OUT: [DType; 4] = [DType::F32, DType::BF16, DType::E4M3, DType::E5M2];

fn random_case(rng: &mut Rng, max_macs: usize) -> Case {
    loop {
        let mut dim = || {
            if rng.below(3) == 0 {
                1 + rng.below(40)
            } else {
                rng.pick(&SIZES)
            }
        };
        let (m, n, k) = (dim(), dim(), dim());
        if m * n * k.max(1) > max_macs {
            continue;
        }
        let tc = rng.pick(&OUT);
        let beta = if tc.fp8().is_some() || rng.below(2) == 0 {
            0.0
        } else {
            rng.pick(&[1.0, -0.5, 0.75f32])
        };
        return Case {
            m,
            n,
            k,
            ta: rng.pick(&FP8),
            tb: rng.pick(&FP8),
            tc,
            alpha: rng.pick(&[1.0, 0.0625, -3.0, 1.0 / 45.25f32]),
            beta,
            la: rng.below(LAYOUTS),
            lb: rng.below(LAYOUTS),
            lc: rng.below(LAYOUTS),
        };
    }
}

fn check_case(rng: &mut Rng, cs: &Case, special: bool, threads: &[usize]) {
    let d0 = make_data(rng, cs, special);
    let want = expected(cs, &d0);
    for kernel in kernels() {
        for &t in threads {
            let mut d = Data {
                a: d0.a.clone(),
                b: d0.b.clone(),
                c: d0.c.clone(),
                ..d0
            };
            let g = raw(cs, &mut d);
            let exec = Exec::new(Backend::best()).unwrap().with_threads(t);
            // SAFETY: views inside their buffers.
            unsafe { exec.gemm_raw_with_kernel(kernel, &g) }.unwrap();
            compare(cs, &want, &d.c, &format!("{} threads={t}", kernel.name()));
        }
    }
}

#[test]
fn random_shapes_layouts_types_bit_exact() {
    let mut rng = Rng::for_test("random_shapes");
    for _ in 0..400 {
        let cs = random_case(&mut rng, 3_000_000);
        check_case(&mut rng, &cs, false, &[1]);
    }
}

#[test]
fn every_combination_every_layout() {
    let mut rng = Rng::for_test("every_combination");
    for ta in FP8 {
        for tb in FP8 {
            for tc in OUT {
                for l in 0..LAYOUTS {
                    let cs = Case {
                        m: rng.pick(&[1, 15, 16, 17, 33]),
                        n: rng.pick(&[1, 2, 16, 17, 31, 33, 65]),
                        k: rng.pick(&[1, 2, 15, 16, 17, 255, 257, 513]),
                        ta,
                        tb,
                        tc,
                        alpha: 0.5,
                        beta: if tc.fp8().is_some() { 0.0 } else { 1.0 },
                        la: l,
                        lb: (l + 3) % LAYOUTS,
                        lc: (l + 5) % LAYOUTS,
                    };
                    check_case(&mut rng, &cs, false, &[1]);
                }
            }
        }
    }
}

#[test]
fn nan_inf_propagate() {
    let mut rng = Rng::for_test("nan_inf");
    for _ in 0..60 {
        let cs = random_case(&mut rng, 400_000);
        check_case(&mut rng, &cs, true, &[1]);
    }
    // Hand-made: Inf·0 = NaN, Inf + finite = Inf, NaN anywhere = NaN.
    let a = [E5M2::INFINITY, E5M2::ONE, E5M2::NAN, E5M2::ONE];
    let b = [E5M2::ZERO, E5M2::ONE, E5M2::ONE, E5M2::ONE];
    for kernel in kernels() {
        let exec = Exec::new(Backend::best()).unwrap();
        let mut c = [0f32; 4];
        // A 4x1 times B 1x1 per row... use A as 4x1 and B as 1x1 with B varying per test.
        for (row, want) in [(0usize, f32::NAN), (1, 1.0)] {
            let am = MatRef::new(&a[row..row + 1], 1, 1, 1, 1).unwrap();
            let bm = MatRef::new(&b[row..row + 1], 1, 1, 1, 1).unwrap();
            let cm = MatMut::new(&mut c[..1], 1, 1, 1, 1).unwrap();
            exec.gemm_with_kernel(kernel, 1.0, am, bm, 0.0, cm).unwrap();
            assert!(
                c[0] == want || (c[0].is_nan() && want.is_nan()),
                "{kernel:?} {row}"
            );
        }
        let am = MatRef::new(&a[..], 1, 4, 4, 1).unwrap();
        let bm = MatRef::new(&b[..], 4, 1, 1, 1).unwrap();
        let cm = MatMut::new(&mut c[..1], 1, 1, 1, 1).unwrap();
        exec.gemm_with_kernel(kernel, 1.0, am, bm, 0.0, cm).unwrap();
        assert!(c[0].is_nan());
        let inf = [E5M2::INFINITY, E5M2::ONE];
        let one = [E5M2::ONE, E5M2::ONE];
        let am = MatRef::new(&inf[..], 1, 2, 2, 1).unwrap();
        let bm = MatRef::new(&one[..], 2, 1, 1, 1).unwrap();
        let cm = MatMut::new(&mut c[..1], 1, 1, 1, 1).unwrap();
        exec.gemm_with_kernel(kernel, 1.0, am, bm, 0.0, cm).unwrap();
        assert_eq!(c[0], f32::INFINITY);
    }
}

/// NaN codes of both signs (and E5M2 ±Inf, whose sum is a NaN the hardware makes up) meeting
/// in one dot product, and NaNs of both signs in C read by β ≠ 0, give one NaN on every kernel
/// and every back end: the canonical positive quiet NaN (f32 0x7FC00000, bf16 0x7FC0, E4M3
/// 0x7F, E5M2 0x7E). Shapes for the short-problem kernel (B K-contiguous, few rows), the
/// blocked kernel and k = 0.
#[test]
fn mixed_sign_nans_give_the_canonical_nan() {
    // Every kernel (forced) and every back end's own kernel (as UNITFP8_BACKEND selects it).
    let mut runs: Vec<(String, Exec, Option<GemmKernel>)> = kernels()
        .into_iter()
        .map(|k| {
            (
                k.name().to_string(),
                Exec::new(Backend::best()).unwrap(),
                Some(k),
            )
        })
        .collect();
    for b in Backend::ALL.into_iter().filter(|b| b.is_available()) {
        runs.push((format!("backend {}", b.name()), Exec::new(b).unwrap(), None));
    }
    let run = |exec: &Exec, kernel: Option<GemmKernel>, g: &RawGemm| {
        // SAFETY: the views lie inside their buffers.
        unsafe {
            match kernel {
                Some(k) => exec.gemm_raw_with_kernel(k, g),
                None => exec.gemm_raw(g),
            }
        }
        .unwrap()
    };
    // The smallest case: A = {+NaN, −NaN} (E4M3), B = {1, 1}, m = n = 1, k = 2.
    for tc in OUT {
        let want = match tc {
            DType::F32 => 0x7FC0_0000u32,
            DType::BF16 => 0x7FC0,
            DType::E4M3 => 0x7F,
            _ => 0x7E,
        };
        let (a, b) = ([0x7Fu8, 0xFF], [0x38u8, 0x38]);
        for (name, exec, kernel) in &runs {
            let mut c = vec![0xA5u8; tc.size()];
            let g = RawGemm {
                m: 1,
                n: 1,
                k: 2,
                alpha: 1.0,
                a: RawMatrix {
                    ptr: a.as_ptr(),
                    dtype: DType::E4M3,
                    row_stride: 2,
                    col_stride: 1,
                },
                b: RawMatrix {
                    ptr: b.as_ptr(),
                    dtype: DType::E4M3,
                    row_stride: 1,
                    col_stride: 1,
                },
                beta: 0.0,
                c: RawMatrix {
                    ptr: c.as_mut_ptr(),
                    dtype: tc,
                    row_stride: 1,
                    col_stride: 1,
                },
            };
            run(exec, *kernel, &g);
            assert_eq!(bits_at(&c, tc, 0), want, "{name} {tc:?}");
        }
    }
    // Random shapes with NaN and Inf codes of both signs scattered through A and B, and NaNs of
    // both signs in C where β reads it.
    let mut rng = Rng::for_test("mixed_sign_nans");
    let shapes = [
        (1, 64, 300),
        (3, 100, 1000),
        (20, 48, 700),
        (40, 70, 600),
        (13, 1, 33),
        (7, 9, 0),
    ];
    for (case, &(m, n, k)) in shapes.iter().cycle().take(36).enumerate() {
        let tc = OUT[case % 4];
        let cs = Case {
            m,
            n,
            k,
            ta: rng.pick(&FP8),
            tb: rng.pick(&FP8),
            tc,
            alpha: rng.pick(&[1.0, -0.5f32]),
            beta: if tc.fp8().is_some() { 0.0 } else { 1.0 },
            la: 0,
            lb: if case % 3 == 0 { 0 } else { 1 },
            lc: 0,
        };
        let mut d0 = make_data(&mut rng, &cs, false);
        let specials = |f: Fp8Format| -> &'static [u8] {
            match f {
                Fp8Format::E4M3 => &[0x7F, 0xFF],
                Fp8Format::E5M2 => &[0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF, 0x7C, 0xFC],
            }
        };
        for x in d0.a.iter_mut() {
            if rng.below(40) == 0 {
                *x = rng.pick(specials(fmt_of(cs.ta)));
            }
        }
        for x in d0.b.iter_mut() {
            if rng.below(40) == 0 {
                *x = rng.pick(specials(fmt_of(cs.tb)));
            }
        }
        if cs.beta != 0.0 {
            let nans: &[u32] = match tc {
                DType::F32 => &[0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0xFFFF_FFFF],
                _ => &[0x7FC0, 0xFFC0, 0x7F81, 0xFFFF],
            };
            for i in 0..m {
                for j in 0..n {
                    if rng.below(5) == 0 {
                        let (e, s) = (idx(&d0.vc, i, j), tc.size());
                        let bits = rng.pick(nans).to_le_bytes();
                        d0.c[s * e..s * e + s].copy_from_slice(&bits[..s]);
                    }
                }
            }
        }
        let want = expected(&cs, &d0);
        for (name, exec, kernel) in &runs {
            let mut d = Data {
                a: d0.a.clone(),
                b: d0.b.clone(),
                c: d0.c.clone(),
                ..d0
            };
            let g = raw(&cs, &mut d);
            run(exec, *kernel, &g);
            compare(&cs, &want, &d.c, name);
        }
    }
}

/// `UNITFP8_BACKEND` selects the GEMM kernel with the back end (`scalar`: the scalar GEMM);
/// without it the fastest kernel runs. The process-wide choice is made once, so each setting
/// runs in a child process (this test binary, filtered to this test).
#[test]
fn backend_variable_selects_the_gemm_kernel() {
    const CHILD: &str = "UNITFP8_GEMM_TEST_CHILD";
    if let Some(want) = std::env::var_os(CHILD) {
        let got = Exec::global().gemm_kernel();
        assert_eq!(got.name(), want.to_str().unwrap(), "{:?}", Exec::global());
        return;
    }
    assert_eq!(
        Exec::new(Backend::Scalar).unwrap().gemm_kernel(),
        GemmKernel::Scalar
    );
    let mut settings = vec![(None, GemmKernel::best())];
    for b in Backend::ALL.into_iter().filter(|b| b.is_available()) {
        settings.push((Some(b.name()), GemmKernel::for_backend(b)));
    }
    for (var, want) in settings {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "backend_variable_selects_the_gemm_kernel",
            "--nocapture",
        ])
        .env(CHILD, want.name());
        match var {
            Some(v) => cmd.env("UNITFP8_BACKEND", v),
            None => cmd.env_remove("UNITFP8_BACKEND"),
        };
        let out = match cmd.output() {
            Ok(out) => out,
            // E.g. under a user-mode emulator without binfmt_misc: the child cannot start.
            Err(e) => {
                eprintln!("backend_variable_selects_the_gemm_kernel: SKIPPED, no child ({e})");
                return;
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !stdout.contains("running 1 test") {
            // E.g. under a user-mode emulator whose binfmt_misc entry lacks the target's
            // libraries: the child never ran this test.
            eprintln!(
                "backend_variable_selects_the_gemm_kernel: SKIPPED, the child did not run ({}: {})",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        assert!(
            out.status.success(),
            "UNITFP8_BACKEND={var:?}: want {}\n{stdout}\n{}",
            want.name(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(GemmKernel::for_backend(Backend::Scalar), GemmKernel::Scalar);
}

#[test]
fn one_and_two_threads_identical() {
    let mut rng = Rng::for_test("threads");
    for _ in 0..4 {
        let mut cs = random_case(&mut rng, 1);
        (cs.m, cs.n, cs.k) = (
            rng.pick(&[255, 257, 300]),
            rng.pick(&[255, 257, 130]),
            rng.pick(&[100, 257, 1000]),
        );
        check_case(&mut rng, &cs, false, &[1, 2, 3]);
    }
}

#[test]
fn k_zero_and_empty() {
    let mut rng = Rng::for_test("k_zero");
    for tc in OUT {
        for beta in [0.0f32, 2.0] {
            if tc.fp8().is_some() && beta != 0.0 {
                continue;
            }
            let cs = Case {
                m: 5,
                n: 7,
                k: 0,
                ta: DType::E4M3,
                tb: DType::E5M2,
                tc,
                alpha: 1.0,
                beta,
                la: 0,
                lb: 0,
                lc: rng.below(LAYOUTS),
            };
            check_case(&mut rng, &cs, false, &[1]);
        }
    }
    // m = 0 / n = 0: no-op even with null pointers.
    let exec = Exec::new(Backend::Scalar).unwrap();
    let null = RawMatrix {
        ptr: core::ptr::null(),
        dtype: DType::E4M3,
        row_stride: 1,
        col_stride: 1,
    };
    let g = RawGemm {
        m: 0,
        n: 5,
        k: 3,
        alpha: 1.0,
        a: null,
        b: null,
        beta: 0.0,
        c: RawMatrix {
            dtype: DType::F32,
            ..null
        },
    };
    // SAFETY: nothing is addressed.
    assert_eq!(unsafe { exec.gemm_raw(&g) }, Ok(()));
}

#[test]
fn argument_errors_leave_c_untouched() {
    let exec = Exec::new(Backend::best()).unwrap();
    let a = [E4M3::ONE; 64];
    let b = [E4M3::ONE; 64];
    let mut c = vec![f32::NAN; 64];
    let am = MatRef::row_major(&a[..], 8, 8).unwrap();
    let bm = MatRef::row_major(&b[..], 8, 8).unwrap();
    // Shape mismatch.
    let bad = MatRef::row_major(&b[..], 4, 8).unwrap();
    assert_eq!(
        status_of(exec.gemm(
            1.0,
            am,
            bad,
            0.0,
            MatMut::row_major(&mut c[..], 8, 8).unwrap()
        )),
        Err(Status::InvalidArgument)
    );
    // Self-overlapping C.
    let over = MatMut::new(&mut c[..], 8, 8, 1, 1).unwrap();
    assert_eq!(
        status_of(exec.gemm(1.0, am, bm, 0.0, over)),
        Err(Status::Overlap)
    );
    // Out-of-bounds view.
    assert!(MatMut::new(&mut c[..], 8, 8, 9, 1).is_err());
    assert!(MatRef::with_origin(&a[..], 0, 2, 2, -1, 1).is_err());
    // FP8 C with beta != 0.
    let mut c8 = [E4M3::NAN; 64];
    let c8m = MatMut::row_major(&mut c8[..], 8, 8).unwrap();
    assert_eq!(
        status_of(exec.gemm(1.0, am, bm, 1.0, c8m)),
        Err(Status::InvalidArgument)
    );
    // Non-FP8 inputs.
    let af = vec![1.0f32; 64];
    let afm = MatRef::row_major(&af[..], 8, 8).unwrap();
    assert_eq!(
        status_of(exec.gemm(
            1.0,
            afm,
            bm,
            0.0,
            MatMut::row_major(&mut c[..], 8, 8).unwrap()
        )),
        Err(Status::Unsupported)
    );
    assert!(c.iter().all(|x| x.is_nan()));
    assert!(c8.iter().all(|x| x.is_nan()));
    // Raw: C overlapping A.
    let mut buf = vec![0u8; 256];
    let p = buf.as_mut_ptr();
    let g = RawGemm {
        m: 4,
        n: 4,
        k: 4,
        alpha: 1.0,
        a: RawMatrix {
            ptr: p,
            dtype: DType::E4M3,
            row_stride: 4,
            col_stride: 1,
        },
        b: RawMatrix {
            ptr: p.wrapping_add(128),
            dtype: DType::E4M3,
            row_stride: 4,
            col_stride: 1,
        },
        beta: 0.0,
        c: RawMatrix {
            ptr: p.wrapping_add(8),
            dtype: DType::E4M3,
            row_stride: 4,
            col_stride: 1,
        },
    };
    assert_eq!(
        // SAFETY: all views inside buf.
        status_of(unsafe { exec.gemm_raw(&g) }),
        Err(Status::Overlap)
    );
    assert!(buf.iter().all(|&x| x == 0));
    // Stride overflow.
    let g2 = RawGemm {
        a: RawMatrix {
            row_stride: isize::MAX,
            ..g.a
        },
        c: RawMatrix {
            ptr: p.wrapping_add(200),
            ..g.c
        },
        ..g
    };
    assert_eq!(
        // SAFETY: rejected before any access.
        status_of(unsafe { exec.gemm_raw(&g2) }),
        Err(Status::InvalidArgument)
    );
}

#[test]
fn typed_api_matches_raw_and_transposes() {
    // C = A·B with numpy-style row-major data and the transposed problem via t().
    let mut rng = Rng::for_test("typed");
    let (m, n, k) = (19, 37, 45);
    let a: Vec<E4M3> = (0..m * k)
        .map(|_| E4M3(finite_code(&mut rng, Fp8Format::E4M3)))
        .collect();
    let b: Vec<E5M2> = (0..k * n)
        .map(|_| E5M2(finite_code(&mut rng, Fp8Format::E5M2)))
        .collect();
    let mut c = vec![bf16::from_f32(f32::NAN); m * n];
    let mut ct = vec![bf16::from_f32(f32::NAN); m * n];
    let am = MatRef::row_major(&a[..], m, k).unwrap();
    let bm = MatRef::row_major(&b[..], k, n).unwrap();
    unitfp8::gemm::gemm(
        0.5,
        am,
        bm,
        0.0,
        MatMut::row_major(&mut c[..], m, n).unwrap(),
    )
    .unwrap();
    // Cᵀ = Bᵀ·Aᵀ into a column-major n×m... i.e. the same memory as row-major m×n.
    let ctm = MatMut::col_major(&mut ct[..], n, m).unwrap();
    unitfp8::gemm::gemm(0.5, bm.t(), am.t(), 0.0, ctm).unwrap();
    assert_eq!(c, ct);
    for i in 0..m {
        for j in 0..n {
            let acc = model_dot(k, |t| a[i * k + t].to_f32(), |t| b[t * n + j].to_f32());
            assert_eq!(c[i * n + j], bf16::from_f32(0.5 * acc), "{i} {j}");
        }
    }
}

#[test]
fn accuracy_against_f64() {
    let mut rng = Rng::for_test("accuracy");
    let exec = Exec::new(Backend::best()).unwrap().with_threads(2);
    for &k in &[64usize, 1024, 4096, 8192] {
        let (m, n) = (24, 40);
        let a: Vec<E4M3> = (0..m * k)
            .map(|_| E4M3::from_f32(rng.normal() as f32))
            .collect();
        let b: Vec<E4M3> = (0..k * n)
            .map(|_| E4M3::from_f32(rng.normal() as f32))
            .collect();
        let mut c32 = vec![0f32; m * n];
        let mut c16 = vec![bf16::ZERO; m * n];
        let mut c8 = vec![E4M3::ZERO; m * n];
        let alpha = 1.0 / (k as f32).sqrt();
        let am = MatRef::row_major(&a[..], m, k).unwrap();
        let bm = MatRef::col_major(&b[..], k, n).unwrap();
        exec.gemm(
            alpha,
            am,
            bm,
            0.0,
            MatMut::row_major(&mut c32[..], m, n).unwrap(),
        )
        .unwrap();
        exec.gemm(
            alpha,
            am,
            bm,
            0.0,
            MatMut::row_major(&mut c16[..], m, n).unwrap(),
        )
        .unwrap();
        exec.gemm(
            alpha,
            am,
            bm,
            0.0,
            MatMut::row_major(&mut c8[..], m, n).unwrap(),
        )
        .unwrap();
        let (mut num, mut den) = (0f64, 0f64);
        for i in 0..m {
            for j in 0..n {
                let exact: f64 = (0..k)
                    .map(|t| a[i * k + t].to_f32() as f64 * b[j * k + t].to_f32() as f64)
                    .sum::<f64>()
                    * alpha as f64;
                let got = c32[i * n + j] as f64;
                num += (got - exact).powi(2);
                den += exact.powi(2);
                // bf16/FP8 outputs are the f32 result correctly rounded.
                assert_eq!(c16[i * n + j], bf16::from_f32(c32[i * n + j]));
                assert_eq!(c8[i * n + j], E4M3::from_f32(c32[i * n + j]));
            }
        }
        let rel = (num / den).sqrt();
        println!("k={k}: relative Frobenius error {rel:.3e}");
        assert!(rel <= 1e-6, "k={k}: relative error {rel}");
    }
}

#[test]
fn workspace_entry_matches() {
    let mut rng = Rng::for_test("workspace");
    for kernel in kernels() {
        for _ in 0..20 {
            let cs = random_case(&mut rng, 500_000);
            let d0 = make_data(&mut rng, &cs, false);
            let want = expected(&cs, &d0);
            let mut d = Data {
                a: d0.a.clone(),
                b: d0.b.clone(),
                c: d0.c.clone(),
                ..d0
            };
            let g = raw(&cs, &mut d);
            let need = unitfp8::gemm::gemm_workspace_size(kernel, cs.m, cs.n, cs.k);
            let exec = Exec::new(Backend::best()).unwrap();
            let mut small = vec![0u8; need.saturating_sub(1)];
            if need > 0 {
                assert_eq!(
                    // SAFETY: rejected before any access.
                    status_of(unsafe { exec.gemm_raw_with_workspace(kernel, &g, &mut small) }),
                    Err(Status::InvalidArgument)
                );
            }
            let mut ws = vec![0u8; need];
            // SAFETY: views inside their buffers.
            unsafe { exec.gemm_raw_with_workspace(kernel, &g, &mut ws) }.unwrap();
            compare(&cs, &want, &d.c, "workspace");
        }
    }
}

#[test]
fn short_problems_bit_exact() {
    // Up to 32 rows of C with a K-contiguous B (layout kinds 1, 3, 6) and n ≥ 48: the shapes the
    // AVX-512 short-problem kernel takes (row-major C); other C layouts and K blocks too.
    let mut rng = Rng::for_test("short");
    for case in 0..48 {
        let tc = rng.pick(&OUT);
        let cs = Case {
            m: 1 + rng.below(32),
            n: rng.pick(&[48, 49, 95, 300, 1001]),
            k: rng.pick(&[1, 2, 17, 256, 257, 700, 1100, 2049]),
            ta: rng.pick(&FP8),
            tb: rng.pick(&FP8),
            tc,
            alpha: rng.pick(&[1.0, -0.375f32]),
            beta: if tc.fp8().is_some() || rng.below(2) == 0 {
                0.0
            } else {
                1.0
            },
            la: rng.below(LAYOUTS),
            lb: [1, 3, 6][case % 3],
            lc: if case % 4 == 3 {
                rng.below(LAYOUTS)
            } else {
                [0, 2, 5][rng.below(3)]
            },
        };
        check_case(&mut rng, &cs, case % 8 == 0, &[1, 2]);
    }
}

#[test]
fn decode_problems_bit_exact() {
    // 1 to 8 rows of C with a K-contiguous B (layout kinds 1, 3, 6), K long enough for the
    // AVX-512 few-row (decode) kernel, odd n and k (column and K tails), every output type,
    // β ≠ 0, NaN and Inf in some cases, 1 and 2 threads (split over n).
    let mut rng = Rng::for_test("decode");
    for case in 0..64 {
        let tc = OUT[case % 4];
        let cs = Case {
            m: 1 + case % 8,
            n: rng.pick(&[3, 17, 33, 95, 257, 1001]),
            k: rng.pick(&[64, 65, 255, 257, 513, 1100, 2049]),
            ta: rng.pick(&FP8),
            tb: rng.pick(&FP8),
            tc,
            alpha: rng.pick(&[1.0, -0.375f32]),
            beta: if tc.fp8().is_some() || rng.below(2) == 0 {
                0.0
            } else {
                0.5
            },
            la: rng.below(LAYOUTS),
            lb: [1, 3, 6][case % 3],
            lc: if case % 4 == 3 {
                rng.below(LAYOUTS)
            } else {
                [0, 2, 5][rng.below(3)]
            },
        };
        check_case(&mut rng, &cs, case % 5 == 0, &[1, 2]);
    }
}

#[test]
fn several_row_and_column_blocks() {
    // Large k makes the column blocks narrow (8 MiB of packed B) and the row blocks short, so
    // n > nc and m > mc: every loop of the blocked driver runs more than once.
    let mut rng = Rng::for_test("blocks");
    for (m, n, k) in [(40, 600, 8200), (31, 1100, 4097)] {
        let cs = Case {
            m,
            n,
            k,
            ta: rng.pick(&FP8),
            tb: rng.pick(&FP8),
            tc: DType::F32,
            alpha: 0.5,
            beta: 1.0,
            la: rng.pick(&[0, 1]),
            lb: rng.pick(&[0, 1]),
            lc: rng.pick(&[0, 1]),
        };
        check_case(&mut rng, &cs, false, &[1, 2]);
    }
}

/// The status of a result, for comparing error kinds.
fn status_of<T>(r: Result<T, unitfp8::Error>) -> Result<T, unitfp8::Status> {
    r.map_err(|e| e.status())
}

/// Checks one case on the AMX kernel: every element of C within the documented bound of the
/// exact (f64) result, `|c − c_exact| ≤ (k/32 + 4)·2⁻²³·Σ|a·b|` before α, plus the roundings of
/// α, β and the output type; NaN results the canonical NaN, ±Inf exact; every byte outside C
/// untouched. Returns the largest error in units of `2⁻²⁴·Σ|a·b|`.
fn check_amx_case(rng: &mut Rng, cs: &Case, special: bool, threads: usize) -> f64 {
    let d0 = make_data(rng, cs, special);
    let model = expected(cs, &d0);
    let mut d = Data {
        a: d0.a.clone(),
        b: d0.b.clone(),
        c: d0.c.clone(),
        ..d0
    };
    let g = raw(cs, &mut d);
    let exec = Exec::new(Backend::best()).unwrap().with_threads(threads);
    // SAFETY: views inside their buffers.
    unsafe { exec.gemm_raw_with_kernel(GemmKernel::AmxBf16, &g) }.unwrap();
    let what = format!(
        "amx {}x{}x{} {:?}*{:?}->{:?} alpha={} beta={} layouts {} {} {} threads={threads}",
        cs.m, cs.n, cs.k, cs.ta, cs.tb, cs.tc, cs.alpha, cs.beta, cs.la, cs.lb, cs.lc
    );
    let (fa, fb) = (fmt_of(cs.ta), fmt_of(cs.tb));
    let size = cs.tc.size();
    let mut inside = vec![false; d0.vc.len];
    let mut worst = 0f64;
    for i in 0..cs.m {
        for j in 0..cs.n {
            let e = idx(&d0.vc, i, j);
            inside[e] = true;
            let want_bits = bits_at(&model, cs.tc, e);
            let got_bits = bits_at(&d.c, cs.tc, e);
            let want = read_c(&model, cs.tc, e);
            let got = read_c(&d.c, cs.tc, e);
            if want.is_nan() || want.is_infinite() {
                assert_eq!(got_bits, want_bits, "{what}: ({i}, {j}) {got} vs {want}");
                continue;
            }
            let (mut exact, mut mag) = (0f64, 0f64);
            for t in 0..cs.k {
                let x = fa.decode(d0.a[idx(&d0.va, i, t)]) as f64;
                let y = fb.decode(d0.b[idx(&d0.vb, t, j)]) as f64;
                exact += x * y;
                mag += (x * y).abs();
            }
            let old = if cs.beta != 0.0 {
                cs.beta as f64 * read_c(&d0.c, cs.tc, e) as f64
            } else {
                0.0
            };
            let alpha = cs.alpha as f64;
            let r = alpha * exact + old;
            let u = 2f64.powi(-24);
            let bound = (cs.k as f64 / 32.0 + 4.0) * 2.0 * u * mag;
            let f32_tol = alpha.abs() * bound + 4.0 * u * (alpha.abs() * mag + old.abs());
            // Rounding to the output type: half a unit in the last place, relative.
            let (rel, tiny, max) = match cs.tc {
                DType::F32 => (0.0, 0.0, f64::INFINITY),
                DType::BF16 => (2f64.powi(-8), 0.0, f64::INFINITY),
                DType::E4M3 => (2f64.powi(-4), 2f64.powi(-10), 448.0),
                _ => (2f64.powi(-3), 2f64.powi(-17), 57344.0),
            };
            let target = r.clamp(-max, max);
            let tol = f32_tol * (1.0 + rel) + rel * r.abs() + tiny;
            let err = (got as f64 - target).abs();
            assert!(
                err <= tol,
                "{what}: ({i}, {j}) got {got}, exact {r}, error {err:e} > {tol:e}"
            );
            if cs.tc == DType::F32 && cs.beta == 0.0 && mag > 0.0 {
                worst = worst.max((got as f64 - r).abs() / (alpha.abs() * u * mag));
            }
        }
    }
    for (e, &inside) in inside.iter().enumerate() {
        if !inside {
            let (a, b) = (
                &d.c[e * size..e * size + size],
                &d0.c[e * size..e * size + size],
            );
            assert_eq!(a, b, "{what}: element {e} outside C was written");
        }
    }
    worst
}

#[test]
fn amx_kernel_within_error_bound() {
    if !GemmKernel::AmxBf16.is_available() {
        println!("skipped: this CPU or system has no usable AMX-BF16 (the kernel is opt-in)");
        return;
    }
    assert!(!GemmKernel::AmxBf16.is_exact());
    assert_ne!(GemmKernel::best(), GemmKernel::AmxBf16);
    let mut rng = Rng::for_test("amx");
    let mut worst = 0f64;
    for round in 0..160 {
        let mut cs = random_case(&mut rng, 1_500_000);
        if round % 2 == 0 {
            // Most of these take the AMX kernel itself (more than 32 rows in either orientation).
            cs.m = 33 + rng.below(150);
            cs.n = 33 + rng.below(150);
            cs.k = 1 + rng.below(700);
        }
        let special = round % 5 == 4;
        worst = worst.max(check_amx_case(&mut rng, &cs, special, 1 + round % 2));
    }
    // Few-row products with a K-contiguous B (the AMX kernel's few-row path): every row count
    // up to 32 (one and two row tiles), column tails, K tails, any A layout.
    for round in 0..48 {
        let cs = Case {
            m: 1 + round % 32,
            n: 1 + rng.below(70),
            k: 64 + rng.below(2100),
            ta: rng.pick(&FP8),
            tb: rng.pick(&FP8),
            tc: rng.pick(&OUT),
            alpha: 0.75,
            beta: 0.0,
            la: rng.below(LAYOUTS),
            lb: rng.pick(&[1, 3, 6]),
            lc: rng.pick(&[0, 2, 5]),
        };
        worst = worst.max(check_amx_case(&mut rng, &cs, round % 6 == 5, 1 + round % 2));
    }
    // Deep products: several K chunks, K blocks, row blocks and column blocks.
    for &(m, n, k) in &[
        (200, 70, 4099),
        (64, 64, 8192),
        (700, 96, 1500),
        (520, 600, 2100),
        (40, 2300, 2100),
    ] {
        for la in [0, 1] {
            let cs = Case {
                m,
                n,
                k,
                ta: DType::E4M3,
                tb: DType::E5M2,
                tc: DType::F32,
                alpha: 0.5,
                beta: 0.0,
                la,
                lb: 1 - la,
                lc: 0,
            };
            worst = worst.max(check_amx_case(&mut rng, &cs, false, 2));
        }
    }
    println!("largest AMX error: {worst:.2} x 2^-24 * alpha * sum|a*b|");
}

#[test]
fn amx_kernel_is_opt_in() {
    assert_eq!(GemmKernel::from_name("amx-bf16"), Some(GemmKernel::AmxBf16));
    assert!(
        GemmKernel::ALL
            .iter()
            .all(|k| GemmKernel::from_name(k.name()) == Some(*k))
    );
    for b in Backend::ALL {
        assert_ne!(GemmKernel::for_backend(b), GemmKernel::AmxBf16);
    }
    let r = Exec::new(Backend::best())
        .unwrap()
        .with_gemm_kernel(GemmKernel::AmxBf16);
    assert_eq!(r.is_ok(), GemmKernel::AmxBf16.is_available());
}
