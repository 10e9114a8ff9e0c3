//! The SHA-1 signature over sorted values that authenticates every callback.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

// Callers sign 3 or 4 values; sorting a copy of that many on the stack keeps the hot path free
// of allocation. Longer lists are unusual and fall back to a Vec.
const INLINE_PARTS: usize = 8;

/// sha1 over the byte-wise sorted values concatenated with no separator, lowercase hex (40 chars).
pub fn signature(parts: &[&str]) -> String {
    let hex = hex_digest(parts);
    hex.iter().map(|&byte| char::from(byte)).collect()
}

/// Constant-time comparison of `expected_hex` against [`signature`]`(parts)`.
///
/// False for any other length, and for upper-case hex: every platform sends lower case.
pub fn signature_matches(expected_hex: &str, parts: &[&str]) -> bool {
    let computed = hex_digest(parts);
    // `ct_eq` on slices of unequal length is false; only the length leaks, which is public.
    computed.as_slice().ct_eq(expected_hex.as_bytes()).into()
}

fn hex_digest(parts: &[&str]) -> [u8; 40] {
    let digest = if parts.len() <= INLINE_PARTS {
        let mut sorted = [""; INLINE_PARTS];
        let sorted = &mut sorted[..parts.len()];
        sorted.copy_from_slice(parts);
        sha1_of_sorted(sorted)
    } else {
        let mut sorted = parts.to_vec();
        sha1_of_sorted(&mut sorted)
    };
    to_hex(&digest)
}

fn sha1_of_sorted(parts: &mut [&str]) -> [u8; 20] {
    // `str`'s `Ord` is byte-wise lexicographic, exactly the platforms' sort.
    parts.sort_unstable();
    let mut hasher = Sha1::new();
    for part in parts.iter() {
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

fn to_hex(digest: &[u8; 20]) -> [u8; 40] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 40];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(digest) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    hex
}
