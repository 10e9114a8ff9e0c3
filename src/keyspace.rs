//! Where a deployment's keys live: the prefix of the keys shared by the whole deployment, and
//! the shards that conversations are spread over on a Redis Cluster.
//!
//! A shard is a prefix of its own whose hash tag puts all its keys in one cluster slot, so every
//! script about a conversation (its claim, order, job stream, reply, outbox, memory) runs on one
//! node, while different conversations land on different nodes. With one shard (the default)
//! the shard's prefix is `store.key_prefix` itself, so the key names do not change.

use crc16::{State, XMODEM};

/// Redis Cluster's slots: a key's slot is the CRC16 of its hash tag modulo this.
const CLUSTER_SLOTS: u16 = 16_384;

/// Most shards a deployment may have: each costs every replica a blocked connection.
pub const MAX_SHARDS: usize = 256;

#[derive(Debug, Clone)]
pub struct KeySpace {
    prefix: String,
    shards: Vec<String>,
}

impl KeySpace {
    /// `shards` prefixes derived from `prefix`, which must start with a hash tag when there is
    /// more than one (the config checks it): `{botgate}` gives `{botgate:0.10}`,
    /// `{botgate:1.12}` … for six. Shard `i`'s tag is chosen in the `i`-th of
    /// `shards` equal ranges of cluster slots: a cluster splits its slots into equal
    /// contiguous ranges, one per master, so the shards spread evenly over the masters.
    pub fn new(prefix: &str, shards: usize) -> Self {
        let shards = match (shards, tag(prefix)) {
            (0 | 1, _) | (_, None) => vec![prefix.to_owned()],
            (count, Some((inner, rest))) => (0..count.min(MAX_SHARDS))
                .map(|index| format!("{{{}}}{rest}", shard_tag(inner, index, count)))
                .collect(),
        };
        KeySpace {
            prefix: prefix.to_owned(),
            shards,
        }
    }

    /// The prefix of keys that belong to the whole deployment (tokens, limits, cursors).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The prefix of shard `index`'s keys.
    pub fn shard(&self, index: usize) -> &str {
        &self.shards[index % self.shards.len()]
    }

    /// Which shard a conversation's keys live in; the same on every replica and release.
    pub fn shard_of(&self, bot: &str, platform: &str, conversation: &str) -> usize {
        if self.shards.len() == 1 {
            return 0;
        }
        let mut state = State::<XMODEM>::new();
        for part in [bot, "\n", platform, "\n", conversation] {
            state.update(part.as_bytes());
        }
        usize::from(state.get()) % self.shards.len()
    }

    /// The prefix of a conversation's keys.
    pub fn of(&self, bot: &str, platform: &str, conversation: &str) -> &str {
        self.shard(self.shard_of(bot, platform, conversation))
    }
}

/// The inside of a prefix's leading hash tag, and what follows the tag.
fn tag(prefix: &str) -> Option<(&str, &str)> {
    let inner = prefix.strip_prefix('{')?;
    let close = inner.find('}').filter(|&close| close > 0)?;
    Some((&inner[..close], &inner[close + 1..]))
}

/// `inner:index`, or `inner:index.k` for the first `k` that lands in the shard's slot range.
fn shard_tag(inner: &str, index: usize, count: usize) -> String {
    let width = usize::from(CLUSTER_SLOTS) / count;
    let range = index * width..(index + 1) * width;
    (0..)
        .map(|k| match k {
            0 => format!("{inner}:{index}"),
            k => format!("{inner}:{index}.{k}"),
        })
        .find(|candidate| range.contains(&usize::from(slot(candidate))))
        .unwrap_or_else(|| unreachable!("the candidates cover every slot"))
}

/// The cluster slot of a hash tag's inside.
pub fn slot(tag: &str) -> u16 {
    State::<XMODEM>::calculate(tag.as_bytes()) % CLUSTER_SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shard_keeps_the_prefix_so_key_names_do_not_change() {
        let keys = KeySpace::new("{botgate}", 1);
        assert_eq!(keys.of("shop", "wechat", "o1"), "{botgate}");
        assert_eq!(KeySpace::new("bg", 1).of("shop", "wechat", "o1"), "bg");
    }

    /// Changing how tags or shards are picked moves every conversation of a running
    /// deployment: these are the names in production.
    #[test]
    fn shard_names_and_placement_are_stable() {
        let keys = KeySpace::new("{botgate}", 6);
        let names: Vec<&str> = (0..6).map(|index| keys.shard(index)).collect();
        assert_eq!(
            names,
            [
                "{botgate:0.10}",
                "{botgate:1.12}",
                "{botgate:2.13}",
                "{botgate:3.3}",
                "{botgate:4}",
                "{botgate:5.1}"
            ]
        );
        assert_eq!(
            ["o1", "o2", "o3"].map(|user| keys.shard_of("shop", "wechat", user)),
            [4, 3, 2]
        );
    }

    #[test]
    fn each_shard_has_a_slot_in_its_own_range() {
        let keys = KeySpace::new("{botgate}x", 6);
        let width = 16_384 / 6;
        for index in 0..6 {
            let prefix = keys.shard(index);
            let (inner, rest) = tag(prefix).unwrap();
            assert_eq!(rest, "x");
            assert!(inner.starts_with(&format!("botgate:{index}")), "{prefix}");
            let slot = usize::from(slot(inner));
            assert!(
                (index * width..(index + 1) * width).contains(&slot),
                "{prefix} is in slot {slot}"
            );
        }
    }

    #[test]
    fn a_conversation_always_has_the_same_shard_and_conversations_spread() {
        let keys = KeySpace::new("{botgate}", 4);
        let shard = keys.shard_of("shop", "wechat", "o1");
        assert_eq!(keys.shard_of("shop", "wechat", "o1"), shard);
        let mut used = [0u32; 4];
        for user in 0..400 {
            used[keys.shard_of("shop", "wechat", &format!("o{user}"))] += 1;
        }
        assert!(used.iter().all(|&count| count > 50), "{used:?}");
    }

    #[test]
    fn the_slot_is_the_one_redis_computes() {
        // From the Redis Cluster specification: CRC16("123456789") is 0x31C3.
        assert_eq!(slot("123456789"), 0x31C3);
    }
}
