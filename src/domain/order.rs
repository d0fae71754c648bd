//! The canonical reading order of a dataset as one integer per trace.

/// Bits reserved for the turn number inside a sort key.
pub const TURN_BITS: u32 = 20;
/// Largest turn number a sort key can hold.
pub const MAX_TURN: i64 = (1 << TURN_BITS) - 1;

/// `conversation position << 20 | turn_number`: sorting by it reads a dataset conversation by
/// conversation (in order of first appearance) and turn by turn. Every "next", "previous" and
/// page is a keyset query on this one indexed integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SortKey(pub i64);

impl SortKey {
    /// `position` counts conversations from 1; `turn` must be within `0..=MAX_TURN`.
    pub fn new(position: i64, turn: i64) -> Option<SortKey> {
        if !(0..=MAX_TURN).contains(&turn) || !(0..(1i64 << (62 - TURN_BITS))).contains(&position) {
            return None;
        }
        Some(SortKey((position << TURN_BITS) | turn))
    }

    /// The half-open key range `[start, end)` holding every turn of one conversation.
    pub fn conversation_range(self) -> (i64, i64) {
        let start = (self.0 >> TURN_BITS) << TURN_BITS;
        (start, start + (1 << TURN_BITS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_conversation_then_turn() {
        let a = SortKey::new(1, 7).unwrap();
        let b = SortKey::new(2, 1).unwrap();
        let c = SortKey::new(2, 3).unwrap();
        assert!(a < b && b < c);
    }

    #[test]
    fn rejects_out_of_range_turns() {
        assert!(SortKey::new(1, -1).is_none());
        assert!(SortKey::new(1, MAX_TURN + 1).is_none());
        assert!(SortKey::new(1, MAX_TURN).is_some());
    }

    #[test]
    fn conversation_range_covers_all_turns_and_nothing_else() {
        let k = SortKey::new(5, 9).unwrap();
        let (start, end) = k.conversation_range();
        assert_eq!(start, SortKey::new(5, 0).unwrap().0);
        assert_eq!(end, SortKey::new(6, 0).unwrap().0);
        assert!(k.0 >= start && k.0 < end);
    }
}
