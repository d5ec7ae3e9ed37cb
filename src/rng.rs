//! The one random number generator of lthc: xoshiro256** seeded through SplitMix64. Every random
//! choice (initial weights, data order, augmentation, random masks, dropout) draws from a stream
//! derived from the experiment's seeds and a purpose, never from global state, so that the same
//! `.lth` file gives the same numbers on every run, and a run resumed at iteration k draws what
//! an uninterrupted run draws.

/// A stream of random numbers.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut st = seed;
        Rng {
            s: [
                splitmix(&mut st),
                splitmix(&mut st),
                splitmix(&mut st),
                splitmix(&mut st),
            ],
        }
    }

    /// A stream for one purpose: `Rng::derive(&[seed, DATA_ORDER, epoch])`.
    pub fn derive(parts: &[u64]) -> Rng {
        let mut h = 0x6C74_6863_u64; // "lthc"
        for &p in parts {
            let mut st = h ^ p.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            h = splitmix(&mut st);
        }
        Rng::new(h)
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1), 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A uniformly random permutation of 0..n (Fisher-Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<u32> {
        let mut p: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

/// Purposes of random streams, mixed into their seeds so that streams never coincide.
pub mod stream {
    pub const INIT: u64 = 1;
    pub const DATA_ORDER: u64 = 2;
    pub const AUGMENT: u64 = 3;
    pub const RANDOM_MASK: u64 = 4;
    pub const DROPOUT: u64 = 5;
    pub const REINIT: u64 = 6;
    pub const SNIP_BATCH: u64 = 7;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::derive(&[1, 2, 3]).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::derive(&[1, 2, 3]).next_u64(),
            Rng::derive(&[1, 2, 4]).next_u64()
        );
        assert_ne!(
            Rng::derive(&[1, 2]).next_u64(),
            Rng::derive(&[2, 1]).next_u64()
        );
    }

    #[test]
    fn permutations_are_permutations() {
        let mut p = Rng::new(7).permutation(1000);
        p.sort_unstable();
        assert_eq!(p, (0..1000).collect::<Vec<u32>>());
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut r = Rng::new(3);
        let xs: Vec<f64> = (0..100_000).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
    }
}
