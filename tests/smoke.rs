use unitfp8::*;

#[test]
fn clip_cast_and_mix() {
    let x = [0.1f32, -3.0, 1000.0, f32::NAN, f32::INFINITY, -0.0];
    let mut y = [E4M3::ZERO; 6];
    let amax = cast_amax(&x[..], &mut y[..], &CastParams::default()).unwrap();
    assert!(amax.is_nan());
    assert_eq!(y[1].to_f32(), -3.0);
    assert_eq!(y[2], E4M3::MAX);
    assert!(y[3].is_nan());
    assert_eq!(y[4], E4M3::MAX);
    assert_eq!(y[5], E4M3::NEG_ZERO);
    let mut out = [0f32; 6];
    let f = [1.0f32; 6];
    residual_mix(
        &x[..2],
        &f[..2],
        &mut out[..2],
        Fp8Out::None,
        &MixParams::new(0.25),
    )
    .unwrap();
    assert_eq!(out[0], (0.75f32).sqrt() * 0.1 + 0.5);
}

/// Thread counts above the cap mean the cap, in the Rust API and the C ABI alike, and a call
/// asking for that many still computes exactly what one thread computes.
#[test]
fn thread_count_is_capped() {
    let x: Vec<f32> = (0..(1 << 20))
        .map(|i| (i as f32 * 0.37).sin() * 500.0)
        .collect();
    let mut one = vec![E4M3::ZERO; x.len()];
    set_num_threads(1);
    cast(&x[..], &mut one[..], &CastParams::default()).unwrap();
    for asked in [usize::MAX, 1_000_000, exec::MAX_THREADS + 1] {
        set_num_threads(asked);
        assert_eq!(num_threads(), exec::MAX_THREADS);
        unitfp8::ffi::unitfp8_set_num_threads(asked);
        assert_eq!(unitfp8::ffi::unitfp8_get_num_threads(), exec::MAX_THREADS);
        let mut many = vec![E4M3::ZERO; x.len()];
        cast(&x[..], &mut many[..], &CastParams::default()).unwrap();
        assert!(many == one, "{asked} threads changed the result");
    }
    set_num_threads(7);
    assert_eq!(num_threads(), 7);
    set_num_threads(0);
}
