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
