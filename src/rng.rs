//! The counter-based generator behind stochastic rounding.
//!
//! The 32 random bits of element `i` of a call with seed `s` are
//! `mix32(mix32(lo32(i) ^ k1) ^ k2)` where `(k1, k2)` = [`StreamKey::new`]`(s, hi32(i))` and
//! `mix32` is the "lowbias32" integer hash (xorshift-multiply, two rounds). They depend on
//! `(s, i)` only, so every back end, SIMD width and thread split produces the same bits.
//! Element `i` is the index within the call (for cast-transpose: `row · cols + col`).

/// The 32-bit integer hash used by the generator (bijective; good avalanche).
#[inline(always)]
pub const fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^= x >> 16;
    x
}

/// The two 32-bit keys for the elements whose index has high half `index_hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamKey {
    /// XORed into the low index half before the first hash.
    pub k1: u32,
    /// XORed in before the second hash.
    pub k2: u32,
}

impl StreamKey {
    /// Keys for `seed` and the high 32 bits of the element index.
    pub const fn new(seed: u64, index_hi: u32) -> StreamKey {
        let k1 = mix32(seed as u32 ^ mix32((seed >> 32) as u32 ^ mix32(index_hi ^ 0x9E37_79B9)));
        let k2 = mix32(k1 ^ 0x85EB_CA6B);
        StreamKey { k1, k2 }
    }

    /// Random bits for the element whose index has low half `index_lo`.
    #[inline(always)]
    pub const fn bits(self, index_lo: u32) -> u32 {
        mix32(mix32(index_lo ^ self.k1) ^ self.k2)
    }
}

/// The random bits of element `index` for `seed` (the scalar definition).
pub const fn stochastic_bits(seed: u64, index: u64) -> u32 {
    StreamKey::new(seed, (index >> 32) as u32).bits(index as u32)
}
