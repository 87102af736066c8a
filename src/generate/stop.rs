//! Stop strings (issue 15): the generated text is matched against several strings across token
//! boundaries; text that may still become a stop string is held back, and the matched string
//! (and anything after it) is never released.

/// Matches a byte stream against stop strings.
#[derive(Debug, Default, Clone)]
pub struct StopMatcher {
    stops: Vec<Vec<u8>>,
    /// Bytes received but not released (a possible start of a stop string).
    held: Vec<u8>,
    longest: usize,
}

/// What one push released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// Bytes that may be emitted now.
    pub len: usize,
    /// Index of the stop string that matched (the text from it on is dropped).
    pub matched: Option<usize>,
}

impl StopMatcher {
    /// A matcher for `stops` (empty strings are ignored: they would stop at once).
    pub fn new(stops: &[Vec<u8>]) -> StopMatcher {
        let stops: Vec<Vec<u8>> = stops.to_vec();
        let longest = stops.iter().map(Vec::len).max().unwrap_or(0);
        StopMatcher {
            stops,
            held: Vec::with_capacity(longest * 2 + 16),
            longest,
        }
    }

    /// Whether there are stop strings.
    pub fn is_active(&self) -> bool {
        self.longest > 0
    }

    /// Appends `bytes`; the released text is written to `out` (cleared first). A match releases
    /// the text before the earliest match (for matches at the same place, the lowest index).
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        out.clear();
        if !self.is_active() {
            out.extend_from_slice(bytes);
            return None;
        }
        self.held.extend_from_slice(bytes);
        // Earliest full match.
        let mut best: Option<(usize, usize)> = None;
        for (k, s) in self.stops.iter().enumerate() {
            if s.is_empty() || s.len() > self.held.len() {
                continue;
            }
            if let Some(at) = self.held.windows(s.len()).position(|w| w == s.as_slice()) {
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, k));
                }
            }
        }
        if let Some((at, k)) = best {
            out.extend_from_slice(&self.held[..at]);
            self.held.clear();
            return Some(k);
        }
        // Hold back the longest suffix that is a proper prefix of a stop string.
        let n = self.held.len();
        let mut keep = 0;
        for len in (1..=n.min(self.longest.saturating_sub(1))).rev() {
            let tail = &self.held[n - len..];
            if self
                .stops
                .iter()
                .any(|s| s.len() > len && s.starts_with(tail))
            {
                keep = len;
                break;
            }
        }
        out.extend_from_slice(&self.held[..n - keep]);
        self.held.drain(..n - keep);
        None
    }

    /// The text still held back (released when the generation ends without a match).
    pub fn take_held(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, Option<usize>) {
        let stops: Vec<Vec<u8>> = stops.iter().map(|s| s.as_bytes().to_vec()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut text = Vec::new();
        let mut out = Vec::new();
        for p in pieces {
            let hit = m.push(p.as_bytes(), &mut out);
            text.extend_from_slice(&out);
            if hit.is_some() {
                return (String::from_utf8(text).unwrap(), hit);
            }
        }
        text.extend(m.take_held());
        (String::from_utf8(text).unwrap(), None)
    }

    #[test]
    fn matches_across_pieces_and_drops_the_match() {
        assert_eq!(
            run(&["</s>"], &["Hello <", "/", "s> more"]),
            ("Hello ".into(), Some(0))
        );
        assert_eq!(
            run(&["User:", "\n\n"], &["a\n", "\nUser"]),
            ("a".into(), Some(1))
        );
        assert_eq!(run(&["abc"], &["ab", "ab", "x"]), ("ababx".into(), None));
        assert_eq!(run(&["abc"], &["xxab"]), ("xxab".into(), None));
        // earliest match wins, then the lower index
        assert_eq!(run(&["cd", "bc"], &["abcd"]), ("a".into(), Some(1)));
        assert_eq!(run(&["ab", "a"], &["xab"]), ("x".into(), Some(0)));
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), None));
    }

    #[test]
    fn released_text_is_never_part_of_a_later_match() {
        // Held back while ambiguous, released once it cannot be a stop string.
        let stops = vec![b"STOP".to_vec()];
        let mut m = StopMatcher::new(&stops);
        let mut out = Vec::new();
        assert_eq!(m.push(b"ST", &mut out), None);
        assert!(out.is_empty());
        assert_eq!(m.push(b"x", &mut out), None);
        assert_eq!(out, b"STx");
        assert_eq!(m.push(b"STO", &mut out), None);
        assert!(out.is_empty());
        assert_eq!(m.push(b"P", &mut out), Some(0));
        assert!(out.is_empty());
    }
}
