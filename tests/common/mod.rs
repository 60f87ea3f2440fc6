//! Helpers shared by the test files (`mod common;`): the seeded random generator and the
//! guard-byte buffer.
#![allow(dead_code)] // each test file uses a different subset

/// The tests' random generator: splitmix64, seeded per test (see [`Rng::for_test`]).
pub struct Rng(pub u64);

impl Rng {
    /// A generator for test `name`, seeded by [`test_seed`] (printed, replayable).
    pub fn for_test(name: &str) -> Rng {
        Rng(test_seed(name))
    }
    pub fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn u32(&mut self) -> u32 {
        (self.u64() >> 32) as u32
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.u64() % n as u64) as usize
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u64() as u8).collect()
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = ((self.u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// Shuffles `v` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// The seed of test `name`: `UNITFP8_TEST_SEED` if set, else from the clock; printed so a
/// failure can be reproduced.
pub fn test_seed(name: &str) -> u64 {
    let seed = std::env::var("UNITFP8_TEST_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("{name}: UNITFP8_TEST_SEED={seed}");
    seed
}

/// A byte buffer holding `len` bytes that start `misalign` bytes past a 64-byte boundary, with
/// at least 64 guard bytes on each side; every byte outside the data is `poison`, and
/// [`GuardBuf::guards_intact`] checks that it still is.
pub struct GuardBuf {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
    poison: u8,
}

impl GuardBuf {
    /// `len` bytes of `poison` (misalign < 64).
    pub fn new(len: usize, misalign: usize, poison: u8) -> GuardBuf {
        assert!(misalign < 64);
        let bytes = vec![poison; len + 256];
        let start = bytes.as_ptr().align_offset(64) + 64 + misalign;
        GuardBuf {
            bytes,
            start,
            len,
            poison,
        }
    }
    /// A copy of `data`, guarded.
    pub fn with_data(data: &[u8], misalign: usize, poison: u8) -> GuardBuf {
        let mut b = GuardBuf::new(data.len(), misalign, poison);
        b.data_mut().copy_from_slice(data);
        b
    }
    /// The start of the data.
    pub fn ptr(&mut self) -> *mut u8 {
        self.bytes[self.start..].as_mut_ptr()
    }
    pub fn data(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..self.start + self.len]
    }
    /// Whether every byte outside the data is still the poison.
    pub fn guards_intact(&self) -> bool {
        let p = self.poison;
        self.bytes[..self.start]
            .iter()
            .chain(&self.bytes[self.start + self.len..])
            .all(|&b| b == p)
    }
}
