//! Plain f32 building blocks of the example: dense row-major matrix products, LayerNorm, GELU,
//! softmax cross-entropy. Nothing here calls the library.
#![allow(dead_code, clippy::too_many_arguments)]

/// `c[m×n] = alpha·a[m×k]·b[k×n]` (`+= ` when `acc`), all dense row-major.
pub fn mm_nn(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    alpha: f32,
    acc: bool,
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        unsafe { nn_avx512(m, k, n, a, b, c, alpha, acc) };
        return;
    }
    nn_body::<false>(m, k, n, a, b, c, alpha, acc);
}

/// `c[m×n] = alpha·a[m×k]·b[n×k]ᵀ` (`+=` when `acc`).
pub fn mm_nt(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    alpha: f32,
    acc: bool,
) {
    let bt = transpose(b, n, k);
    mm_nn(m, k, n, a, &bt, c, alpha, acc);
}

/// `c[m×n] = alpha·a[k×m]ᵀ·b[k×n]` (`+=` when `acc`).
pub fn mm_tn(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    alpha: f32,
    acc: bool,
) {
    let at = transpose(a, k, m);
    mm_nn(m, k, n, &at, b, c, alpha, acc);
}

/// The transpose `[cols×rows]` of a dense `[rows×cols]` matrix (16×16 tiles).
pub fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; rows * cols];
    for r0 in (0..rows).step_by(16) {
        for c0 in (0..cols).step_by(16) {
            for r in r0..(r0 + 16).min(rows) {
                for c in c0..(c0 + 16).min(cols) {
                    t[c * rows + r] = a[r * cols + c];
                }
            }
        }
    }
    t
}

/// `e^x` to about 2 ulp, in straight-line arithmetic that vectorises (libm's `expf` does not).
/// Arguments are clamped to [-87, 88]; NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5·2^23: adding and subtracting it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let r = (x * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    // Cody–Waite: f = x − r·ln2 in two parts, |f| ≤ 0.35.
    let f = (x - r * 0.693_145_75) - r * 1.428_606_8e-6;
    let p = 1.0
        + f * (1.0
            + f * (0.5
                + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f * (1.0 / 720.0))))));
    f32::from_bits((p.to_bits() as i32).wrapping_add((r as i32) << 23) as u32)
}

/// `tanh(z)` from [`exp`].
#[inline(always)]
fn tanh(z: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * z) + 1.0)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
fn nn_avx512(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    alpha: f32,
    acc: bool,
) {
    nn_body::<true>(m, k, n, a, b, c, alpha, acc);
}

/// Four rows of C at a time, each updated by an axpy per k (vectorises along n).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn nn_body<const FMA: bool>(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    alpha: f32,
    acc: bool,
) {
    let f = |s: f32, x: f32, y: f32| if FMA { s.mul_add(x, y) } else { y + s * x };
    if !acc {
        c[..m * n].fill(0.0);
    }
    let mut i = 0;
    while i + 4 <= m {
        let (c0, r) = c[i * n..(i + 4) * n].split_at_mut(n);
        let (c1, r) = r.split_at_mut(n);
        let (c2, c3) = r.split_at_mut(n);
        for p in 0..k {
            let br = &b[p * n..p * n + n];
            let s = [
                a[i * k + p],
                a[(i + 1) * k + p],
                a[(i + 2) * k + p],
                a[(i + 3) * k + p],
            ]
            .map(|v| alpha * v);
            for j in 0..n {
                c0[j] = f(s[0], br[j], c0[j]);
                c1[j] = f(s[1], br[j], c1[j]);
                c2[j] = f(s[2], br[j], c2[j]);
                c3[j] = f(s[3], br[j], c3[j]);
            }
        }
        i += 4;
    }
    for i in i..m {
        let cr = &mut c[i * n..i * n + n];
        for p in 0..k {
            let s = alpha * a[i * k + p];
            let br = &b[p * n..p * n + n];
            for j in 0..n {
                cr[j] = f(s, br[j], cr[j]);
            }
        }
    }
}

/// What LayerNorm's backward needs: normalised inputs and reciprocal standard deviations.
pub struct LnCache {
    pub xhat: Vec<f32>,
    pub rstd: Vec<f32>,
}

/// LayerNorm over rows of width `d` with gain `g` and bias `b` (eps 1e-5).
pub fn ln_forward(x: &[f32], d: usize, g: &[f32], b: &[f32], y: &mut [f32]) -> LnCache {
    let rows = x.len() / d;
    let mut xhat = vec![0.0; x.len()];
    let mut rstd = vec![0.0; rows];
    for r in 0..rows {
        let xr = &x[r * d..(r + 1) * d];
        let mean = xr.iter().sum::<f32>() / d as f32;
        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let rs = 1.0 / (var + 1e-5).sqrt();
        rstd[r] = rs;
        for j in 0..d {
            let h = (xr[j] - mean) * rs;
            xhat[r * d + j] = h;
            y[r * d + j] = h * g[j] + b[j];
        }
    }
    LnCache { xhat, rstd }
}

/// LayerNorm backward: accumulates `dg`, `db`; writes (or adds, when `acc`) `dx`.
pub fn ln_backward(
    dy: &[f32],
    d: usize,
    g: &[f32],
    c: &LnCache,
    dg: &mut [f32],
    db: &mut [f32],
    dx: &mut [f32],
    acc: bool,
) {
    let rows = dy.len() / d;
    let mut dh = vec![0.0; d];
    for r in 0..rows {
        let (dyr, xh) = (&dy[r * d..(r + 1) * d], &c.xhat[r * d..(r + 1) * d]);
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for j in 0..d {
            dg[j] += dyr[j] * xh[j];
            db[j] += dyr[j];
            dh[j] = dyr[j] * g[j];
            s1 += dh[j];
            s2 += dh[j] * xh[j];
        }
        let (m1, m2) = (s1 / d as f32, s2 / d as f32);
        for j in 0..d {
            let v = c.rstd[r] * (dh[j] - m1 - xh[j] * m2);
            if acc {
                dx[r * d + j] += v;
            } else {
                dx[r * d + j] = v;
            }
        }
    }
}

const GELU_C: f32 = 0.797_884_6; // sqrt(2/pi)

/// GELU, tanh form.
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + tanh(GELU_C * (x + 0.044715 * x * x * x)))
}

/// d gelu / dx.
pub fn gelu_grad(x: f32) -> f32 {
    let t = tanh(GELU_C * (x + 0.044715 * x * x * x));
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * 0.044715 * x * x)
}

/// Softmax cross-entropy over rows of `v` logits; returns the summed loss (f64) and writes
/// `dlogits = softmax − onehot` (the gradient of the summed loss).
pub fn softmax_xent(logits: &[f32], v: usize, targets: &[u8], dlogits: &mut [f32]) -> f64 {
    let mut total = 0.0f64;
    for (r, &t) in targets.iter().enumerate() {
        let l = &logits[r * v..(r + 1) * v];
        let mx = l.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let d = &mut dlogits[r * v..(r + 1) * v];
        for j in 0..v {
            d[j] = exp(l[j] - mx);
        }
        let z: f32 = d.iter().sum();
        total += f64::from(z.ln() + mx - l[t as usize]);
        d.iter_mut().for_each(|x| *x /= z);
        d[t as usize] -= 1.0;
    }
    total
}
