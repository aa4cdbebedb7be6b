//! A growable bitset indexed by per-producer sequence number: one bit per message, so tens of
//! millions of messages cost a few megabytes per property tracked.

#[derive(Clone, Debug, Default)]
pub struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    /// Sets bit `i`; returns whether it was already set.
    pub fn set(&mut self, i: u64) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        let was = self.words[w] & (1 << b) != 0;
        self.words[w] |= 1 << b;
        was
    }

    pub fn get(&self, i: u64) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        self.words.get(w).is_some_and(|word| word & (1 << b) != 0)
    }

    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| w.count_ones() as u64).sum()
    }

    fn word(&self, i: usize) -> u64 {
        self.words.get(i).copied().unwrap_or(0)
    }

    /// Number of bits set in `self` and in `other`.
    pub fn count_and(&self, other: &Bitset) -> u64 {
        (0..self.words.len())
            .map(|i| (self.word(i) & other.word(i)).count_ones() as u64)
            .sum()
    }

    /// Number of bits set in `self` but not in `other`.
    pub fn count_and_not(&self, other: &Bitset) -> u64 {
        (0..self.words.len())
            .map(|i| (self.word(i) & !other.word(i)).count_ones() as u64)
            .sum()
    }

    /// Number of bits set in `self` and in none of `others`.
    pub fn count_and_not_any(&self, others: &[&Bitset]) -> u64 {
        (0..self.words.len())
            .map(|i| {
                let any = others.iter().fold(0, |acc, o| acc | o.word(i));
                (self.word(i) & !any).count_ones() as u64
            })
            .sum()
    }

    /// The indices set in `self` but not in `other`, in order.
    pub fn iter_and_not<'a>(&'a self, other: &'a Bitset) -> impl Iterator<Item = u64> + 'a {
        (0..self.words.len()).flat_map(move |i| {
            let mut word = self.word(i) & !other.word(i);
            std::iter::from_fn(move || {
                if word == 0 {
                    return None;
                }
                let b = word.trailing_zeros() as u64;
                word &= word - 1;
                Some(i as u64 * 64 + b)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_count() {
        let mut a = Bitset::default();
        assert!(!a.set(0));
        assert!(a.set(0));
        a.set(63);
        a.set(64);
        a.set(1_000_003);
        assert!(a.get(64) && a.get(1_000_003) && !a.get(65));
        assert_eq!(a.count(), 4);
    }

    #[test]
    fn differences() {
        let mut a = Bitset::default();
        let mut b = Bitset::default();
        for i in [1, 5, 64, 130, 200] {
            a.set(i);
        }
        for i in [5, 130, 999] {
            b.set(i);
        }
        assert_eq!(a.count_and(&b), 2);
        assert_eq!(a.count_and_not(&b), 3);
        assert_eq!(b.count_and_not(&a), 1);
        assert_eq!(a.iter_and_not(&b).collect::<Vec<_>>(), vec![1, 64, 200]);
        let mut c = Bitset::default();
        c.set(64);
        assert_eq!(a.count_and_not_any(&[&b, &c]), 2);
    }
}
