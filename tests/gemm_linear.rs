//! The μS linear layer equals the GEMM with PyTorch's layouts and the default α.

use unitfp8::gemm::{MatMut, MatRef};
use unitfp8::linear::{LinearShape, effective_alpha};
use unitfp8::{E4M3, E5M2, Exec, Status, bf16, linear};

mod common;
use common::Rng;

/// `n` random finite codes of E5M2 (`e5`) or E4M3.
fn codes(n: usize, rng: &mut Rng, e5: bool) -> Vec<u8> {
    (0..n)
        .map(|_| {
            loop {
                let c = rng.u32() as u8;
                let finite = if e5 {
                    c & 0x7F < 0x7C
                } else {
                    c & 0x7F != 0x7F
                };
                if finite {
                    break c;
                }
            }
        })
        .collect()
}

#[test]
fn linear_matches_gemm() {
    let mut rng = Rng::for_test("linear_matches_gemm");
    let s = LinearShape {
        batch: 33,
        fan_in: 300,
        fan_out: 47,
    };
    let x: Vec<E4M3> = codes(33 * 300, &mut rng, false)
        .into_iter()
        .map(E4M3)
        .collect();
    let w: Vec<E4M3> = codes(47 * 300, &mut rng, false)
        .into_iter()
        .map(E4M3)
        .collect();
    let dy: Vec<E5M2> = codes(33 * 47, &mut rng, true)
        .into_iter()
        .map(E5M2)
        .collect();
    let exec = Exec::global();
    let alpha = effective_alpha(f32::NAN, 300);
    assert_eq!(alpha, 1.0 / 300f32.sqrt());
    assert_eq!(effective_alpha(-1.0, 300), alpha);
    assert_eq!(effective_alpha(0.0, 300), alpha);
    assert_eq!(effective_alpha(0.5, 300), 0.5);

    let mut y = vec![bf16::ZERO; 33 * 47];
    let mut y2 = vec![bf16::ZERO; 33 * 47];
    linear::linear_forward(s, f32::NAN, &x, &w, &mut y).unwrap();
    exec.gemm(
        alpha,
        MatRef::row_major(&x[..], 33, 300).unwrap(),
        MatRef::row_major(&w[..], 47, 300).unwrap().t(),
        0.0,
        MatMut::row_major(&mut y2[..], 33, 47).unwrap(),
    )
    .unwrap();
    assert_eq!(y, y2);

    // β = 0 overwrites dx (NaN garbage must not leak); β = 0.75 accumulates into it.
    for beta in [0.0f32, 0.75] {
        let old: Vec<f32> = (0..33 * 300)
            .map(|i| {
                if beta == 0.0 {
                    f32::NAN
                } else {
                    (i % 7) as f32 - 3.0
                }
            })
            .collect();
        let (mut dx, mut dx2) = (old.clone(), old.clone());
        linear::linear_backward_data(s, 0.0, &dy, &w, beta, &mut dx).unwrap();
        exec.gemm(
            alpha,
            MatRef::row_major(&dy[..], 33, 47).unwrap(),
            MatRef::row_major(&w[..], 47, 300).unwrap(),
            beta,
            MatMut::row_major(&mut dx2[..], 33, 300).unwrap(),
        )
        .unwrap();
        assert_eq!(
            dx.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            dx2.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert!(dx.iter().all(|v| v.is_finite()));
        if beta != 0.0 {
            // The old dx did contribute.
            let mut dx0 = old.clone();
            linear::linear_backward_data(s, 0.0, &dy, &w, 0.0, &mut dx0).unwrap();
            assert_ne!(dx0, dx);
        }
    }

    let mut dw: Vec<f32> = (0..47 * 300).map(|i| (i % 13) as f32).collect();
    let mut dw2 = dw.clone();
    linear::linear_backward_weight(s, 2.0, &dy, &x, 1.0, &mut dw).unwrap();
    exec.gemm(
        2.0,
        MatRef::row_major(&dy[..], 33, 47).unwrap().t(),
        MatRef::row_major(&x[..], 33, 300).unwrap(),
        1.0,
        MatMut::row_major(&mut dw2[..], 47, 300).unwrap(),
    )
    .unwrap();
    assert_eq!(dw, dw2);
    // Wrong lengths are rejected and leave outputs untouched.
    let before = dw.clone();
    assert_eq!(
        status_of(linear::linear_backward_weight(
            s,
            1.0,
            &dy[1..],
            &x,
            1.0,
            &mut dw
        )),
        Err(Status::InvalidArgument)
    );
    assert_eq!(dw, before);
}

/// The status of a result, for comparing error kinds.
fn status_of<T>(r: Result<T, unitfp8::Error>) -> Result<T, unitfp8::Status> {
    r.map_err(|e| e.status())
}
