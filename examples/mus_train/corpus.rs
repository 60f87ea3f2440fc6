//! A procedurally generated character-level corpus (no downloads): English-like sentences from
//! a small grammar with number agreement, Zipf-distributed word choice, simple counting and
//! arithmetic lines, and short dialogues. Deterministic for a given seed.
#![allow(dead_code)]

/// SplitMix64: a tiny seeded generator for the corpus, initialisation and batch order.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
    /// Index in [0, n) with probability ∝ 1/(i+1) (Zipf).
    pub fn zipf(&mut self, n: usize) -> usize {
        let h: f32 = (1..=n).map(|i| 1.0 / i as f32).sum();
        let mut u = self.uniform() * h;
        for i in 0..n {
            u -= 1.0 / (i + 1) as f32;
            if u <= 0.0 {
                return i;
            }
        }
        n - 1
    }
    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.zipf(words.len())]
    }
}

const NOUNS: [&str; 20] = [
    "cat", "dog", "bird", "king", "queen", "farmer", "child", "river", "tree", "ship", "sailor",
    "horse", "wolf", "baker", "stone", "garden", "lamp", "teacher", "fox", "village",
];
const PLURALS: [&str; 20] = [
    "cats", "dogs", "birds", "kings", "queens", "farmers", "children", "rivers", "trees", "ships",
    "sailors", "horses", "wolves", "bakers", "stones", "gardens", "lamps", "teachers", "foxes",
    "villages",
];
const VERBS: [&str; 14] = [
    "see", "chase", "love", "find", "watch", "follow", "help", "call", "fear", "carry", "know",
    "miss", "guard", "visit",
];
const ADJS: [&str; 14] = [
    "old", "young", "small", "big", "quiet", "happy", "dark", "bright", "brave", "tired", "green",
    "cold", "gentle", "strange",
];
const PLACES: [&str; 8] = [
    "in the morning",
    "at night",
    "near the river",
    "by the sea",
    "in the garden",
    "on the hill",
    "after the rain",
    "before the winter",
];
const NAMES: [&str; 8] = ["anna", "tom", "mira", "jon", "lea", "paul", "ida", "sam"];
const DIGITS: [&str; 13] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve",
];

fn third_person(verb: &str) -> String {
    if verb.ends_with("ch") || verb.ends_with("ss") || verb.ends_with('x') {
        format!("{verb}es")
    } else {
        format!("{verb}s")
    }
}

fn noun_phrase(r: &mut Rng) -> (String, bool) {
    let plural = r.below(3) == 0;
    let i = r.zipf(NOUNS.len());
    let noun = if plural { PLURALS[i] } else { NOUNS[i] };
    let det = if plural {
        ["the", "some", "two"][r.below(3)]
    } else {
        ["the", "a", "one"][r.below(3)]
    };
    if r.below(2) == 0 {
        (format!("{det} {} {noun}", r.pick(&ADJS)), plural)
    } else {
        (format!("{det} {noun}"), plural)
    }
}

fn sentence(r: &mut Rng) -> String {
    let (subj, plural) = noun_phrase(r);
    let verb = r.pick(&VERBS);
    let verb = if plural {
        verb.to_string()
    } else {
        third_person(verb)
    };
    let (obj, _) = noun_phrase(r);
    let tail = if r.below(3) == 0 {
        format!(" {}", r.pick(&PLACES))
    } else {
        String::new()
    };
    format!("{subj} {verb} {obj}{tail}.")
}

fn arithmetic(r: &mut Rng) -> String {
    let a = r.below(7);
    let b = r.below(6);
    format!("{} plus {} is {}.", DIGITS[a], DIGITS[b], DIGITS[a + b])
}

fn counting(r: &mut Rng) -> String {
    let start = r.below(6);
    let len = 3 + r.below(5);
    let words: Vec<&str> = (start..start + len).map(|i| DIGITS[i]).collect();
    format!("{}.", words.join(" "))
}

fn dialogue(r: &mut Rng) -> String {
    let a = r.pick(&NAMES);
    let b = r.pick(&NAMES);
    let (thing, plural) = noun_phrase(r);
    let be = if plural { "are" } else { "is" };
    format!(
        "{a}: where {be} {thing}?\n{b}: {thing} {be} {}.",
        r.pick(&PLACES)
    )
}

/// About `bytes` bytes of text.
pub fn generate(bytes: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed);
    let mut text = String::with_capacity(bytes + 256);
    while text.len() < bytes {
        let mut para: Vec<String> = Vec::new();
        for _ in 0..2 + r.below(4) {
            para.push(match r.below(10) {
                0 => arithmetic(&mut r),
                1 => counting(&mut r),
                2 => dialogue(&mut r),
                _ => sentence(&mut r),
            });
        }
        text.push_str(&para.join(" "));
        text.push('\n');
    }
    text.into_bytes()
}
