//! The benchmarked kernels: buffers, calls into unitfp8, and the plain-loop Rust peers
//! (`half` for bf16, `float8` for FP8).

use crate::timing::{chunk_len, par_for};
use float8::{F8E4M3, F8E5M2};
use unitfp8::{CastParams, DType, E4M3, E5M2, Exec, MixParams, Rounding, bf16, f16};

/// τ of the residual mix benchmarks (a deep-model value).
pub const TAU: f32 = 0.1;

/// One benchmarked operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// f32 → E4M3, round to nearest even, saturate (the μS clip-cast).
    F32E4m3,
    /// f32 → E5M2, nearest, saturate.
    F32E5m2,
    /// bf16 → E4M3, nearest, saturate.
    Bf16E4m3,
    /// f32 → E4M3, stochastic rounding, saturate.
    F32E4m3Sr,
    /// E4M3 → f32 (exact).
    E4m3F32,
    /// E4M3 → bf16 (exact).
    E4m3Bf16,
    /// f32 → bf16, nearest, saturate.
    F32Bf16,
    /// Square f32 matrix → E4M3 and its transpose (both outputs).
    CastTransposeF32E4m3,
    /// f32 residual mix plus an E4M3 copy of the output.
    MixF32E4m3,
    /// bf16 residual mix, no FP8 copy.
    MixBf16,
    /// bf16 residual mix plus an E4M3 copy of the output (the μS forward in bf16).
    MixBf16E4m3,
    /// f16 residual mix plus an E4M3 copy of the output.
    MixF16E4m3,
    /// f32 backward residual mix (grad_x overwritten, not accumulated) plus an E5M2 copy of
    /// grad_f.
    MixBwdF32E5m2,
    /// bf16 backward residual mix (grad_x overwritten) plus an E5M2 copy of grad_f.
    MixBwdBf16E5m2,
}

impl Kernel {
    /// Every kernel, in table order.
    pub const ALL: [Kernel; 14] = [
        Kernel::F32E4m3,
        Kernel::F32E5m2,
        Kernel::Bf16E4m3,
        Kernel::F32E4m3Sr,
        Kernel::E4m3F32,
        Kernel::E4m3Bf16,
        Kernel::F32Bf16,
        Kernel::CastTransposeF32E4m3,
        Kernel::MixF32E4m3,
        Kernel::MixBf16,
        Kernel::MixBf16E4m3,
        Kernel::MixF16E4m3,
        Kernel::MixBwdF32E5m2,
        Kernel::MixBwdBf16E5m2,
    ];

    /// Stable identifier (JSON, `--filter`, and the Python peers' protocol).
    pub fn id(self) -> &'static str {
        match self {
            Kernel::F32E4m3 => "f32_e4m3",
            Kernel::F32E5m2 => "f32_e5m2",
            Kernel::Bf16E4m3 => "bf16_e4m3",
            Kernel::F32E4m3Sr => "f32_e4m3_sr",
            Kernel::E4m3F32 => "e4m3_f32",
            Kernel::E4m3Bf16 => "e4m3_bf16",
            Kernel::F32Bf16 => "f32_bf16",
            Kernel::CastTransposeF32E4m3 => "cast_transpose_f32_e4m3",
            Kernel::MixF32E4m3 => "mix_f32_e4m3",
            Kernel::MixBf16 => "mix_bf16",
            Kernel::MixBf16E4m3 => "mix_bf16_e4m3",
            Kernel::MixF16E4m3 => "mix_f16_e4m3",
            Kernel::MixBwdF32E5m2 => "mix_bwd_f32_e5m2",
            Kernel::MixBwdBf16E5m2 => "mix_bwd_bf16_e5m2",
        }
    }

    /// Human-readable label for the table.
    pub fn label(self) -> &'static str {
        match self {
            Kernel::F32E4m3 => "f32->e4m3 (sat)",
            Kernel::F32E5m2 => "f32->e5m2 (sat)",
            Kernel::Bf16E4m3 => "bf16->e4m3 (sat)",
            Kernel::F32E4m3Sr => "f32->e4m3 stochastic",
            Kernel::E4m3F32 => "e4m3->f32",
            Kernel::E4m3Bf16 => "e4m3->bf16",
            Kernel::F32Bf16 => "f32->bf16",
            Kernel::CastTransposeF32E4m3 => "cast_transpose f32->e4m3 (q+qT)",
            Kernel::MixF32E4m3 => "residual_mix f32 (+e4m3)",
            Kernel::MixBf16 => "residual_mix bf16",
            Kernel::MixBf16E4m3 => "residual_mix bf16 (+e4m3)",
            Kernel::MixF16E4m3 => "residual_mix f16 (+e4m3)",
            Kernel::MixBwdF32E5m2 => "residual_mix_bwd f32 (+e5m2)",
            Kernel::MixBwdBf16E5m2 => "residual_mix_bwd bf16 (+e5m2)",
        }
    }

    /// Bytes read and written per element.
    pub fn bytes_per_elem(self) -> (usize, usize) {
        match self {
            Kernel::F32E4m3 | Kernel::F32E5m2 | Kernel::F32E4m3Sr => (4, 1),
            Kernel::Bf16E4m3 => (2, 1),
            Kernel::E4m3F32 => (1, 4),
            Kernel::E4m3Bf16 => (1, 2),
            Kernel::F32Bf16 => (4, 2),
            Kernel::CastTransposeF32E4m3 => (4, 2),
            Kernel::MixF32E4m3 => (8, 5),
            Kernel::MixBf16 => (4, 2),
            Kernel::MixBf16E4m3 | Kernel::MixF16E4m3 => (4, 3),
            Kernel::MixBwdF32E5m2 => (4, 9),
            Kernel::MixBwdBf16E5m2 => (2, 5),
        }
    }

    /// Name of the plain-loop Rust peer, if there is one.
    pub fn rust_peer(self) -> Option<&'static str> {
        match self {
            Kernel::F32E4m3Sr => None,
            Kernel::F32Bf16 | Kernel::MixBf16 => Some("half"),
            Kernel::E4m3Bf16
            | Kernel::MixBf16E4m3
            | Kernel::MixF16E4m3
            | Kernel::MixBwdBf16E5m2 => Some("float8+half"),
            _ => Some("float8"),
        }
    }

    /// Bytes each side of the copy baseline: half the kernel's read + write traffic, so the
    /// copy moves the same number of bytes.
    pub fn copy_bytes(self, n: usize) -> usize {
        let (r, w) = self.bytes_per_elem();
        (r + w) * n / 2
    }
}

/// Which implementation runs.
#[derive(Clone, Copy, Debug)]
pub enum Imp {
    /// unitfp8 with these settings (back end; its thread count is set per call).
    Lib(Exec),
    /// The plain scalar loop over `half` / `float8`.
    Peer,
    /// The copy baseline of the kernel's bytes.
    Copy,
}

/// Inputs and outputs for one problem size (square for the cast-transpose).
pub struct Bufs {
    /// Elements.
    pub n: usize,
    /// Side of the square matrix of the cast-transpose (`side² == n`).
    pub side: usize,
    x32: Vec<f32>,
    f32v: Vec<f32>,
    xbf: Vec<bf16>,
    fbf: Vec<bf16>,
    xh: Vec<f16>,
    fh: Vec<f16>,
    oh: Vec<f16>,
    xq: Vec<E4M3>,
    o32: Vec<f32>,
    o32b: Vec<f32>,
    obf: Vec<bf16>,
    obfb: Vec<bf16>,
    q: Vec<E4M3>,
    qt: Vec<E4M3>,
    q5: Vec<E5M2>,
    csrc: Vec<u8>,
    cdst: Vec<u8>,
}

/// A fast deterministic generator (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Approximately N(0, 1): a scaled sum of four 16-bit uniforms (Irwin–Hall).
    fn normal(&mut self) -> f32 {
        let r = self.next();
        let s: u64 = (0..4).map(|k| (r >> (16 * k)) & 0xFFFF).sum();
        ((s as f32 / 65536.0) - 2.0) * 3f32.sqrt()
    }
}

/// Fills `v` with N(0,1)-like values, in parallel (the DRAM sizes are large).
fn fill_normal(v: &mut [f32], seed: u64, threads: usize) {
    let c = chunk_len(v.len(), threads);
    let parts: Vec<_> = v.chunks_mut(c).enumerate().collect();
    par_for(parts, &|(i, chunk): (usize, &mut [f32])| {
        let mut rng = Rng(seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        for x in chunk {
            *x = rng.normal();
        }
    });
}

impl Bufs {
    /// Buffers for `n` elements (`n` must be a perfect square), every page written so that no
    /// timed run pays for first-touch faults. Inputs are unit-variance (μS) values, the second
    /// input of the mix is independent of the first.
    pub fn new(n: usize, threads: usize) -> Bufs {
        let side = (n as f64).sqrt().round() as usize;
        assert_eq!(side * side, n, "n must be a perfect square");
        let mut x32 = vec![0f32; n];
        let mut f32v = vec![0f32; n];
        fill_normal(&mut x32, 0x5EED_0001, threads);
        fill_normal(&mut f32v, 0x5EED_0002, threads);
        let exec = Exec::new(unitfp8::Backend::best())
            .expect("best back end")
            .with_threads(threads);
        let mut xbf = vec![bf16::from_bits(0x5555); n];
        let mut fbf = vec![bf16::from_bits(0x5555); n];
        let mut xq = vec![E4M3::from_bits(0x55); n];
        let p = CastParams::default();
        exec.cast(&x32, &mut xbf, &p).expect("setup cast");
        exec.cast(&f32v, &mut fbf, &p).expect("setup cast");
        let mut xh = vec![f16::from_bits(0x5555); n];
        let mut fh = vec![f16::from_bits(0x5555); n];
        exec.cast(&x32, &mut xh, &p).expect("setup cast");
        exec.cast(&f32v, &mut fh, &p).expect("setup cast");
        exec.cast(&x32, &mut xq, &p).expect("setup cast");
        let cmax = Kernel::ALL
            .iter()
            .map(|k| k.copy_bytes(n))
            .max()
            .unwrap_or(0);
        Bufs {
            n,
            side,
            x32,
            f32v,
            xbf,
            fbf,
            xh,
            fh,
            oh: vec![f16::from_bits(0x5555); n],
            xq,
            o32: vec![f32::from_bits(0x5555_5555); n],
            o32b: vec![f32::from_bits(0x5555_5555); n],
            obf: vec![bf16::from_bits(0x5555); n],
            obfb: vec![bf16::from_bits(0x5555); n],
            q: vec![E4M3::from_bits(0x55); n],
            qt: vec![E4M3::from_bits(0x55); n],
            q5: vec![E5M2::from_bits(0x55); n],
            csrc: vec![0x5A; cmax],
            cdst: vec![0x55; cmax],
        }
    }

    /// Runs `kernel` once with `imp` on `threads` threads.
    pub fn run(&mut self, kernel: Kernel, imp: Imp, threads: usize) {
        match imp {
            Imp::Lib(exec) => self.run_lib(kernel, exec.with_threads(threads)),
            Imp::Peer => self.run_peer(kernel, threads),
            Imp::Copy => {
                let b = kernel.copy_bytes(self.n);
                crate::copy::copy(&self.csrc[..b], &mut self.cdst[..b], threads);
            }
        }
    }

    fn run_lib(&mut self, kernel: Kernel, e: Exec) {
        let sat = CastParams::default();
        let sr = CastParams {
            rounding: Rounding::StochasticSaturate,
            seed: 0x1234_5678,
            ..CastParams::default()
        };
        let mix = MixParams::new(TAU);
        let n = self.n;
        let s = self.side;
        let r = match kernel {
            Kernel::F32E4m3 => e.cast(&self.x32, &mut self.q, &sat).map(drop),
            Kernel::F32E5m2 => e.cast(&self.x32, &mut self.q5, &sat).map(drop),
            Kernel::Bf16E4m3 => e.cast(&self.xbf, &mut self.q, &sat).map(drop),
            Kernel::F32E4m3Sr => e.cast(&self.x32, &mut self.q, &sr).map(drop),
            Kernel::E4m3F32 => e.cast(&self.xq, &mut self.o32, &sat).map(drop),
            Kernel::E4m3Bf16 => e.cast(&self.xq, &mut self.obf, &sat).map(drop),
            Kernel::F32Bf16 => e.cast(&self.x32, &mut self.obf, &sat).map(drop),
            Kernel::CastTransposeF32E4m3 => e
                .cast_transpose(
                    &self.x32,
                    s,
                    s,
                    s,
                    Some(&mut self.q),
                    s,
                    Some(&mut self.qt),
                    s,
                    &sat,
                )
                .map(drop),
            // SAFETY: every buffer holds n elements of the stated type,
            // the outputs are distinct allocations from the inputs and from each other.
            Kernel::MixF32E4m3 => unsafe {
                e.residual_mix_raw(
                    self.x32.as_ptr().cast(),
                    self.f32v.as_ptr().cast(),
                    self.o32.as_mut_ptr().cast(),
                    DType::F32,
                    n,
                    self.q.as_mut_ptr().cast(),
                    DType::E4M3,
                    &mix,
                )
            },
            // SAFETY: as for MixF32E4m3.
            Kernel::MixBf16 => unsafe {
                e.residual_mix_raw(
                    self.xbf.as_ptr().cast(),
                    self.fbf.as_ptr().cast(),
                    self.obf.as_mut_ptr().cast(),
                    DType::BF16,
                    n,
                    core::ptr::null_mut(),
                    DType::E4M3,
                    &mix,
                )
            },
            // SAFETY: as for MixF32E4m3.
            Kernel::MixBf16E4m3 => unsafe {
                e.residual_mix_raw(
                    self.xbf.as_ptr().cast(),
                    self.fbf.as_ptr().cast(),
                    self.obf.as_mut_ptr().cast(),
                    DType::BF16,
                    n,
                    self.q.as_mut_ptr().cast(),
                    DType::E4M3,
                    &mix,
                )
            },
            // SAFETY: as for MixF32E4m3.
            Kernel::MixF16E4m3 => unsafe {
                e.residual_mix_raw(
                    self.xh.as_ptr().cast(),
                    self.fh.as_ptr().cast(),
                    self.oh.as_mut_ptr().cast(),
                    DType::F16,
                    n,
                    self.q.as_mut_ptr().cast(),
                    DType::E4M3,
                    &mix,
                )
            },
            // SAFETY: as for MixF32E4m3.
            Kernel::MixBwdBf16E5m2 => unsafe {
                e.residual_mix_backward_raw(
                    self.xbf.as_ptr().cast(),
                    self.obf.as_mut_ptr().cast(),
                    self.obfb.as_mut_ptr().cast(),
                    DType::BF16,
                    n,
                    false,
                    self.q5.as_mut_ptr().cast(),
                    DType::E5M2,
                    &mix,
                )
            },
            // SAFETY: as for MixF32E4m3.
            Kernel::MixBwdF32E5m2 => unsafe {
                e.residual_mix_backward_raw(
                    self.x32.as_ptr().cast(),
                    self.o32.as_mut_ptr().cast(),
                    self.o32b.as_mut_ptr().cast(),
                    DType::F32,
                    n,
                    false,
                    self.q5.as_mut_ptr().cast(),
                    DType::E5M2,
                    &mix,
                )
            },
        };
        r.unwrap_or_else(|err| panic!("{} failed: {err:?}", kernel.id()));
    }

    fn run_peer(&mut self, kernel: Kernel, t: usize) {
        let c = chunk_len(self.n, t);
        let (a, b) = MixParams::new(TAU).coefficients().expect("valid tau");
        match kernel {
            Kernel::F32E4m3 | Kernel::F32E4m3Sr => {
                let parts: Vec<_> = self.x32.chunks(c).zip(self.q.chunks_mut(c)).collect();
                par_for(parts, &|(s, d): (&[f32], &mut [E4M3])| {
                    for (o, &v) in d.iter_mut().zip(s) {
                        *o = E4M3(F8E4M3::from_f32(v).to_bits());
                    }
                });
            }
            Kernel::F32E5m2 => {
                let parts: Vec<_> = self.x32.chunks(c).zip(self.q5.chunks_mut(c)).collect();
                par_for(parts, &|(s, d): (&[f32], &mut [E5M2])| {
                    for (o, &v) in d.iter_mut().zip(s) {
                        *o = E5M2(F8E5M2::from_f32(v).to_bits());
                    }
                });
            }
            Kernel::Bf16E4m3 => {
                let parts: Vec<_> = self.xbf.chunks(c).zip(self.q.chunks_mut(c)).collect();
                par_for(parts, &|(s, d): (&[bf16], &mut [E4M3])| {
                    for (o, &v) in d.iter_mut().zip(s) {
                        *o = E4M3(F8E4M3::from_f32(v.to_f32()).to_bits());
                    }
                });
            }
            Kernel::E4m3F32 => {
                let parts: Vec<_> = self.xq.chunks(c).zip(self.o32.chunks_mut(c)).collect();
                par_for(parts, &|(s, d): (&[E4M3], &mut [f32])| {
                    for (o, &v) in d.iter_mut().zip(s) {
                        *o = F8E4M3::from_bits(v.0).to_f32();
                    }
                });
            }
            Kernel::E4m3Bf16 => {
                let parts: Vec<_> = self.xq.chunks(c).zip(self.obf.chunks_mut(c)).collect();
                par_for(parts, &|(s, d): (&[E4M3], &mut [bf16])| {
                    for (o, &v) in d.iter_mut().zip(s) {
                        *o = bf16::from_f32(F8E4M3::from_bits(v.0).to_f32());
                    }
                });
            }
            Kernel::F32Bf16 => {
                let parts: Vec<_> = self.x32.chunks(c).zip(self.obf.chunks_mut(c)).collect();
                par_for(parts, &|(s, d): (&[f32], &mut [bf16])| {
                    for (o, &v) in d.iter_mut().zip(s) {
                        *o = bf16::from_f32(v);
                    }
                });
            }
            Kernel::CastTransposeF32E4m3 => self.peer_cast_transpose(t),
            Kernel::MixF32E4m3 => {
                let parts: Vec<_> = self
                    .x32
                    .chunks(c)
                    .zip(self.f32v.chunks(c))
                    .zip(self.o32.chunks_mut(c))
                    .zip(self.q.chunks_mut(c))
                    .collect();
                par_for(parts, &|(((x, f), o), q)| {
                    for i in 0..x.len() {
                        let y = a * x[i] + b * f[i];
                        o[i] = y;
                        q[i] = E4M3(F8E4M3::from_f32(y).to_bits());
                    }
                });
            }
            Kernel::MixBf16 => {
                let parts: Vec<_> = self
                    .xbf
                    .chunks(c)
                    .zip(self.fbf.chunks(c))
                    .zip(self.obf.chunks_mut(c))
                    .collect();
                par_for(parts, &|((x, f), o): ((&[bf16], &[bf16]), &mut [bf16])| {
                    for i in 0..x.len() {
                        o[i] = bf16::from_f32(a * x[i].to_f32() + b * f[i].to_f32());
                    }
                });
            }
            Kernel::MixBf16E4m3 => {
                let parts: Vec<_> = self
                    .xbf
                    .chunks(c)
                    .zip(self.fbf.chunks(c))
                    .zip(self.obf.chunks_mut(c))
                    .zip(self.q.chunks_mut(c))
                    .collect();
                par_for(parts, &|(((x, f), o), q)| {
                    for i in 0..x.len() {
                        let y = bf16::from_f32(a * x[i].to_f32() + b * f[i].to_f32());
                        o[i] = y;
                        q[i] = E4M3(F8E4M3::from_f32(y.to_f32()).to_bits());
                    }
                });
            }
            Kernel::MixF16E4m3 => {
                let parts: Vec<_> = self
                    .xh
                    .chunks(c)
                    .zip(self.fh.chunks(c))
                    .zip(self.oh.chunks_mut(c))
                    .zip(self.q.chunks_mut(c))
                    .collect();
                par_for(parts, &|(((x, f), o), q)| {
                    for i in 0..x.len() {
                        let y = f16::from_f32(a * x[i].to_f32() + b * f[i].to_f32());
                        o[i] = y;
                        q[i] = E4M3(F8E4M3::from_f32(y.to_f32()).to_bits());
                    }
                });
            }
            Kernel::MixBwdBf16E5m2 => {
                let parts: Vec<_> = self
                    .xbf
                    .chunks(c)
                    .zip(self.obf.chunks_mut(c))
                    .zip(self.obfb.chunks_mut(c))
                    .zip(self.q5.chunks_mut(c))
                    .collect();
                par_for(parts, &|(((g, gx), gf), q)| {
                    for i in 0..g.len() {
                        gx[i] = bf16::from_f32(a * g[i].to_f32());
                        let y = bf16::from_f32(b * g[i].to_f32());
                        gf[i] = y;
                        q[i] = E5M2(F8E5M2::from_f32(y.to_f32()).to_bits());
                    }
                });
            }
            Kernel::MixBwdF32E5m2 => {
                let parts: Vec<_> = self
                    .x32
                    .chunks(c)
                    .zip(self.o32.chunks_mut(c))
                    .zip(self.o32b.chunks_mut(c))
                    .zip(self.q5.chunks_mut(c))
                    .collect();
                par_for(parts, &|(((g, gx), gf), q)| {
                    for i in 0..g.len() {
                        gx[i] = a * g[i];
                        let y = b * g[i];
                        gf[i] = y;
                        q[i] = E5M2(F8E5M2::from_f32(y).to_bits());
                    }
                });
            }
        }
    }

    /// The naive cast-transpose loop (row by row, transposed stores strided), split into bands
    /// of rows; each band writes its own rows of `q` and a column band of `qt`. The column band
    /// is not a contiguous slice, so the band's `qt` stores go through a shared pointer.
    fn peer_cast_transpose(&mut self, t: usize) {
        let s = self.side;
        let rows_per = chunk_len(s, t);
        let qt = SharedOut(self.qt.as_mut_ptr());
        let qt = &qt;
        let parts: Vec<_> = self
            .x32
            .chunks(rows_per * s)
            .zip(self.q.chunks_mut(rows_per * s))
            .enumerate()
            .collect();
        par_for(parts, &|(band, (x, q)): (usize, (&[f32], &mut [E4M3]))| {
            let r0 = band * rows_per;
            for (r, (xr, qr)) in x.chunks(s).zip(q.chunks_mut(s)).enumerate() {
                for col in 0..s {
                    let v = E4M3(F8E4M3::from_f32(xr[col]).to_bits());
                    qr[col] = v;
                    // SAFETY: col < s and r0 + r < s, so the index is inside qt (s² elements);
                    // bands own disjoint row ranges r0.., so no two threads write one element,
                    // and nothing reads qt while the bands run.
                    unsafe { qt.0.add(col * s + r0 + r).write(v) };
                }
            }
        });
    }

    /// A cheap checksum of the outputs, so that the optimizer cannot drop any peer loop.
    pub fn checksum(&self) -> u64 {
        let mut h = 0u64;
        let step = (self.n / 64).max(1);
        for i in (0..self.n).step_by(step) {
            h = h.rotate_left(5)
                ^ self.q[i].0 as u64
                ^ self.qt[i].0 as u64
                ^ self.q5[i].0 as u64
                ^ self.o32[i].to_bits() as u64
                ^ self.o32b[i].to_bits() as u64
                ^ self.obf[i].to_bits() as u64
                ^ self.obfb[i].to_bits() as u64
                ^ self.oh[i].to_bits() as u64
                ^ self.cdst[i] as u64;
        }
        h
    }
}

/// A raw output pointer shared by the threads of the peer cast-transpose.
struct SharedOut(*mut E4M3);
// SAFETY: the threads that share it write disjoint elements (see `peer_cast_transpose`).
unsafe impl Sync for SharedOut {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every implementation writes what the scalar reference says (the peers differ only where
    /// their semantics do: none in this value range), whatever the thread count.
    #[test]
    fn lib_and_peers_agree_on_unit_variance_data() {
        let n = 96 * 96;
        let mut b = Bufs::new(n, 2);
        let scalar = Exec::new(unitfp8::Backend::Scalar).unwrap();
        let best = Exec::new(unitfp8::Backend::best()).unwrap();
        for k in Kernel::ALL {
            if k.rust_peer().is_none() {
                continue;
            }
            let mut outs = Vec::new();
            for (imp, t) in [
                (Imp::Lib(scalar), 1),
                (Imp::Lib(best), 2),
                (Imp::Peer, 1),
                (Imp::Peer, 3),
            ] {
                b.q.fill(E4M3(0x55));
                b.qt.fill(E4M3(0x55));
                b.q5.fill(E5M2(0x55));
                b.o32.fill(f32::from_bits(0x5555_5555));
                b.o32b.fill(f32::from_bits(0x5555_5555));
                b.obf.fill(bf16::from_bits(0x5555));
                b.obfb.fill(bf16::from_bits(0x5555));
                b.oh.fill(f16::from_bits(0x5555));
                b.run(k, imp, t);
                outs.push((
                    b.q.clone(),
                    b.qt.clone(),
                    b.q5.clone(),
                    b.o32.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    b.o32b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    b.obf.clone(),
                    b.obfb.clone(),
                    b.oh.clone(),
                ));
            }
            for (i, o) in outs.iter().enumerate().skip(1) {
                assert!(*o == outs[0], "{}: output {i} differs from scalar", k.id());
            }
        }
    }
}
