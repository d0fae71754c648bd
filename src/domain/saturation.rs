//! Saturation of open coding: new codes per block of annotations and Good–Turing coverage.
//!
//! Open coding has converged when reading more traces stops producing new codes. The
//! curve here answers that in two ways, per block of `B` annotations in the order they were
//! done: how many codes appeared for the first time in the block, and the Good–Turing
//! coverage at the end of the block (Good 1953, "The population frequencies of species and
//! the estimation of population parameters", Biometrika 40).
//!
//! A *use* is one code on one annotation. Codes arrive normalized by the caller; a code
//! repeated on the same annotation counts once (an annotation's codes are a set).

use std::collections::HashMap;
use std::num::NonZeroUsize;

/// One point of the saturation curve: the state after a block of annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// 0-based position of the block.
    pub index: usize,
    /// Annotations in this block: the block size, or fewer for the last, partial block.
    pub len: usize,
    /// True for a last block shorter than the block size.
    pub partial: bool,
    /// Annotations done so far, this block included.
    pub annotations: usize,
    /// Distinct codes seen for the first time in this block.
    pub new_codes: usize,
    /// Distinct codes seen so far.
    pub distinct_codes: usize,
    /// Code uses so far (one code on one annotation is one use).
    pub code_uses: usize,
    /// Codes used exactly once so far (Good's n₁).
    pub singletons: usize,
    /// Good–Turing coverage so far, `1 − singletons / code_uses`: the estimated probability
    /// that the next code use is of a code already seen. `None` while no code has been used.
    pub coverage: Option<f64>,
}

/// Builds the saturation curve one annotation at a time, so a caller can stream
/// annotations from the database in the order they were done.
#[derive(Debug, Clone)]
pub struct Saturation {
    block_size: usize,
    uses_per_code: HashMap<String, u32>,
    blocks: Vec<Block>,
    annotations: usize,
    code_uses: usize,
    singletons: usize,
    /// Annotations and new codes of the block being filled.
    open_len: usize,
    open_new: usize,
}

impl Saturation {
    /// An empty curve with blocks of `block_size` annotations.
    pub fn new(block_size: NonZeroUsize) -> Saturation {
        Saturation {
            block_size: block_size.get(),
            uses_per_code: HashMap::new(),
            blocks: Vec::new(),
            annotations: 0,
            code_uses: 0,
            singletons: 0,
            open_len: 0,
            open_new: 0,
        }
    }

    /// Adds the next annotation (in the order annotations were done) with its codes.
    /// An annotation without codes (a Pass, say) still counts as an annotation done.
    pub fn push<S: AsRef<str>>(&mut self, codes: impl IntoIterator<Item = S>) {
        let mut seen_here: Vec<S> = Vec::new();
        for code in codes {
            if seen_here.iter().any(|c| c.as_ref() == code.as_ref()) {
                continue;
            }
            self.count_use(code.as_ref());
            seen_here.push(code);
        }
        self.annotations += 1;
        self.open_len += 1;
        if self.open_len == self.block_size {
            self.close_block();
        }
    }

    /// The curve: one entry per full block, then the partial block if annotations remain.
    pub fn finish(mut self) -> Vec<Block> {
        if self.open_len > 0 {
            self.close_block();
        }
        self.blocks
    }

    fn count_use(&mut self, code: &str) {
        self.code_uses += 1;
        let uses = match self.uses_per_code.get_mut(code) {
            Some(uses) => {
                *uses += 1;
                *uses
            }
            None => {
                self.uses_per_code.insert(code.to_owned(), 1);
                self.open_new += 1;
                1
            }
        };
        match uses {
            1 => self.singletons += 1,
            2 => self.singletons -= 1,
            _ => {}
        }
    }

    fn close_block(&mut self) {
        let coverage =
            (self.code_uses > 0).then(|| 1.0 - self.singletons as f64 / self.code_uses as f64);
        self.blocks.push(Block {
            index: self.blocks.len(),
            len: self.open_len,
            partial: self.open_len < self.block_size,
            annotations: self.annotations,
            new_codes: self.open_new,
            distinct_codes: self.uses_per_code.len(),
            code_uses: self.code_uses,
            singletons: self.singletons,
            coverage,
        });
        self.open_len = 0;
        self.open_new = 0;
    }
}

/// The saturation curve of `annotations` (each one's codes, in the order annotations were
/// done) in blocks of `block_size`. See [`Saturation`] to feed annotations one by one.
pub fn saturation_curve<A, S>(
    annotations: impl IntoIterator<Item = A>,
    block_size: NonZeroUsize,
) -> Vec<Block>
where
    A: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut curve = Saturation::new(block_size);
    for codes in annotations {
        curve.push(codes);
    }
    curve.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn hand_computed_curve_with_a_partial_last_block() {
        // B = 2. Annotations and the running use counts after each:
        //   1 {a, b}  a1 b1
        //   2 {a}     a2 b1            block 0: new {a, b} = 2, distinct 2,
        //                              uses 3, once-used {b} = 1, coverage 1 − 1/3 = 2/3
        //   3 {c}     a2 b1 c1
        //   4 {a, c}  a3 b1 c2         block 1: new {c} = 1, distinct 3,
        //                              uses 6, once-used {b} = 1, coverage 1 − 1/6 = 5/6
        //   5 {d}     a3 b1 c2 d1      block 2 (partial, 1 annotation): new {d} = 1,
        //                              distinct 4, uses 7, once-used {b, d} = 2,
        //                              coverage 1 − 2/7 = 5/7
        let annotations = vec![
            vec!["a", "b"],
            vec!["a"],
            vec!["c"],
            vec!["a", "c"],
            vec!["d"],
        ];
        let curve = saturation_curve(annotations, size(2));
        assert_eq!(curve.len(), 3);

        // (index, len, partial, annotations, new, distinct, uses, once-used, coverage)
        let expected = [
            (0, 2, false, 2, 2, 2, 3, 1, 2.0 / 3.0),
            (1, 2, false, 4, 1, 3, 6, 1, 5.0 / 6.0),
            (2, 1, true, 5, 1, 4, 7, 2, 5.0 / 7.0),
        ];
        for (b, e) in curve.iter().zip(expected) {
            let got = (b.index, b.len, b.partial, b.annotations, b.new_codes);
            assert_eq!(got, (e.0, e.1, e.2, e.3, e.4), "block {}", e.0);
            let got = (b.distinct_codes, b.code_uses, b.singletons);
            assert_eq!(got, (e.5, e.6, e.7), "block {}", e.0);
            assert!(close(b.coverage, e.8), "block {}: {:?}", e.0, b.coverage);
        }
    }

    #[test]
    fn converged_coding_reaches_full_coverage_and_no_new_codes() {
        // B = 3. Block 0: {x} {y} {x, y} → x2 y2, new 2, uses 4, once-used 0, coverage 1.
        // Block 1: {x} {y} {x} → x4 y3, new 0, uses 7, once-used 0, coverage 1.
        let annotations = vec![
            vec!["x"],
            vec!["y"],
            vec!["x", "y"],
            vec!["x"],
            vec!["y"],
            vec!["x"],
        ];
        let curve = saturation_curve(annotations, size(3));
        assert_eq!(
            curve.len(),
            2,
            "an exact multiple of B leaves no partial block"
        );
        assert!(curve.iter().all(|b| !b.partial));
        assert_eq!(curve[0].new_codes, 2);
        assert_eq!(curve[1].new_codes, 0);
        assert_eq!(curve[1].distinct_codes, 2);
        assert_eq!(curve[1].code_uses, 7);
        assert!(close(curve[0].coverage, 1.0));
        assert!(close(curve[1].coverage, 1.0));
    }

    #[test]
    fn every_code_new_gives_zero_coverage() {
        // Three annotations, three different codes, each used once: 1 − 3/3 = 0.
        let curve = saturation_curve(vec![vec!["a"], vec!["b"], vec!["c"]], size(20));
        assert_eq!(curve.len(), 1);
        assert!(curve[0].partial);
        assert_eq!(curve[0].annotations, 3);
        assert!(close(curve[0].coverage, 0.0));
    }

    #[test]
    fn coverage_is_undefined_until_a_code_is_used() {
        // B = 2. Block 0: two Pass annotations, no codes: coverage None.
        // Block 1: {a} then nothing: uses 1, once-used 1, coverage 1 − 1/1 = 0.
        let annotations: Vec<Vec<&str>> = vec![vec![], vec![], vec!["a"], vec![]];
        let curve = saturation_curve(annotations, size(2));
        assert_eq!(curve[0].coverage, None);
        assert_eq!(curve[0].annotations, 2);
        assert_eq!((curve[0].distinct_codes, curve[0].code_uses), (0, 0));
        assert!(close(curve[1].coverage, 0.0));
        assert_eq!(curve[1].new_codes, 1);
    }

    #[test]
    fn no_annotations_give_an_empty_curve() {
        let annotations: Vec<Vec<String>> = Vec::new();
        assert!(saturation_curve(annotations, size(20)).is_empty());
    }

    #[test]
    fn a_code_repeated_on_one_annotation_counts_once() {
        // {a, a} is the set {a}: uses 1, once-used 1, coverage 0; then {a}: a2, coverage 1.
        let mut curve = Saturation::new(size(1));
        curve.push(["a", "a"]);
        curve.push(["a"]);
        let curve = curve.finish();
        assert_eq!(curve[0].code_uses, 1);
        assert!(close(curve[0].coverage, 0.0));
        assert_eq!(curve[1].code_uses, 2);
        assert!(close(curve[1].coverage, 1.0));
    }

    #[test]
    fn streaming_and_batch_agree() {
        let annotations = vec![vec!["a", "b"], vec!["b", "c"], vec!["d"]];
        let mut streamed = Saturation::new(size(2));
        for codes in &annotations {
            streamed.push(codes.iter().map(|c| c.to_string()));
        }
        assert_eq!(streamed.finish(), saturation_curve(annotations, size(2)));
    }
}
