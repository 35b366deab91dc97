//! Which sources the chain already records, as one ledger writer knows it.
//!
//! A source is redelivered when its acknowledgement did not reach the server
//! in time: its writer died after the entry holding it was stored, or was too
//! slow. Batches cannot be deduplicated by `Nats-Msg-Id` (one id per entry,
//! not per source), so each writer keeps this set instead and acknowledges
//! a redelivered source it finds here rather than recording it again.
//!
//! What the set must hold: every recorded source its consumer could still
//! deliver. A source at or below the consumer's acknowledgement floor has
//! been acknowledged, and the ledger acknowledges only what the chain holds,
//! so it is recorded and never delivered again; the set forgets it. What
//! remains are the sources recorded above the floor: those appended while
//! others before them were still in flight somewhere, about the consumers'
//! `max_ack_pending` in a steady state, more while one source waits for its
//! redelivery (up to `ack_wait`).
//!
//! Memory bound: sources are kept per stream as runs of consecutive
//! sequence numbers (the ledger records nearly everything in order, so a
//! run covers thousands), at most [`MAX_RUNS`] runs per stream — about
//! 48 bytes each in the B-tree, so under 13 MiB for both streams however
//! far the floor lags. Past that the lowest runs are forgotten first: the
//! oldest, so the ones least likely to come back.

use std::collections::BTreeMap;

use async_nats::jetstream::Message;
use xj_bus::subjects;

/// Runs kept per stream before the lowest are forgotten.
pub const MAX_RUNS: usize = 1 << 17;

/// The two streams the ledger records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Accepted,
    Events,
}

impl Stream {
    pub fn named(name: &str) -> Option<Self> {
        match name {
            subjects::STREAM_ACCEPTED => Some(Self::Accepted),
            subjects::STREAM_EVENTS => Some(Self::Events),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Accepted => subjects::STREAM_ACCEPTED,
            Self::Events => subjects::STREAM_EVENTS,
        }
    }

    fn i(self) -> usize {
        self as usize
    }
}

/// One source message: its stream and sequence there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub stream: Stream,
    pub seq: u64,
}

impl Key {
    pub fn of(m: &Message) -> Option<Self> {
        let info = m.info().ok()?;
        Some(Self { stream: Stream::named(info.stream)?, seq: info.stream_sequence })
    }
}

/// Sequence numbers as runs `start -> end` (inclusive).
#[derive(Debug, Default)]
struct Runs {
    runs: BTreeMap<u64, u64>,
}

impl Runs {
    fn contains(&self, seq: u64) -> bool {
        self.runs.range(..=seq).next_back().is_some_and(|(_, &end)| end >= seq)
    }

    /// Adds `seq`; gives back whether the lowest run had to be forgotten.
    fn insert(&mut self, seq: u64) -> bool {
        if self.contains(seq) {
            return false;
        }
        let mut start = seq;
        if let Some((&s, &e)) = self.runs.range(..seq).next_back()
            && e.checked_add(1) == Some(seq)
        {
            start = s;
        }
        let end = match seq.checked_add(1).and_then(|next| self.runs.remove(&next)) {
            Some(e) => e,
            None => seq,
        };
        self.runs.insert(start, end);
        if self.runs.len() > MAX_RUNS {
            self.runs.pop_first();
            return true;
        }
        false
    }

    /// Forgets everything at or below `floor`.
    fn forget_through(&mut self, floor: u64) {
        let Some(above) = floor.checked_add(1) else {
            self.runs.clear();
            return;
        };
        let mut keep = self.runs.split_off(&above);
        if let Some((_, &end)) = self.runs.iter().next_back()
            && end >= above
        {
            keep.insert(above, end);
        }
        self.runs = keep;
    }

    fn len(&self) -> usize {
        self.runs.len()
    }
}

/// Recorded sources above each consumer's acknowledgement floor.
#[derive(Debug, Default)]
pub struct Recorded {
    runs: [Runs; 2],
    floor: [u64; 2],
    warned: bool,
}

impl Recorded {
    /// Whether the chain holds `k`: in the set, or acknowledged already.
    pub fn contains(&self, k: Key) -> bool {
        k.seq <= self.floor[k.stream.i()] || self.runs[k.stream.i()].contains(k.seq)
    }

    pub fn insert(&mut self, k: Key) {
        if k.seq <= self.floor[k.stream.i()] {
            return;
        }
        if self.runs[k.stream.i()].insert(k.seq) && !self.warned {
            self.warned = true;
            tracing::warn!(
                stream = k.stream.name(),
                floor = self.floor[k.stream.i()],
                "the ledger's set of recorded sources is full; it forgets the oldest (is a source stuck unacknowledged?)"
            );
        }
    }

    /// Every source of `stream` at or below `floor` is acknowledged.
    pub fn floor(&mut self, stream: Stream, floor: u64) {
        let i = stream.i();
        if floor > self.floor[i] {
            self.floor[i] = floor;
            self.runs[i].forget_through(floor);
        }
    }

    /// Runs held (for the bound's test and the log).
    pub fn runs(&self) -> usize {
        self.runs.iter().map(Runs::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(seq: u64) -> Key {
        Key { stream: Stream::Events, seq }
    }

    #[test]
    fn consecutive_sources_make_one_run() {
        let mut r = Recorded::default();
        for seq in [5, 3, 4, 7, 6, 1] {
            r.insert(k(seq));
        }
        assert_eq!(r.runs(), 2, "1 and 3..=7");
        assert!(r.contains(k(1)) && !r.contains(k(2)) && (3..=7).all(|s| r.contains(k(s))) && !r.contains(k(8)));
        assert!(!r.contains(Key { stream: Stream::Accepted, seq: 4 }), "streams are apart");
        r.insert(k(2));
        assert_eq!(r.runs(), 1);
    }

    #[test]
    fn the_floor_forgets_below_it_and_counts_as_recorded() {
        let mut r = Recorded::default();
        for seq in (10..20).chain(30..40) {
            r.insert(k(seq));
        }
        r.floor(Stream::Events, 15);
        assert_eq!(r.runs(), 2, "16..=19 and 30..=39");
        assert!(r.contains(k(3)), "at or below the floor: acknowledged, so recorded");
        assert!(r.contains(k(16)) && !r.contains(k(25)) && r.contains(k(39)));
        r.floor(Stream::Events, 35);
        assert_eq!(r.runs(), 1);
        r.insert(k(20));
        assert_eq!(r.runs(), 1, "below the floor adds nothing");
    }

    #[test]
    fn the_set_is_bounded_however_far_the_floor_lags() {
        let mut r = Recorded::default();
        // Every other source: the worst case, one run each.
        for i in 0..(MAX_RUNS as u64 + 1000) {
            r.insert(k(2 * i + 1));
        }
        assert_eq!(r.runs(), MAX_RUNS);
        assert!(!r.contains(k(1)), "the oldest went first");
        assert!(r.contains(k(2 * (MAX_RUNS as u64 + 999) + 1)));
    }
}
