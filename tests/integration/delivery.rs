//! The delivery engine's shared machinery (queue, tokens, limits) on both backends: in process and a real Redis.
//!
//! Every scenario takes a [`Kind`] and runs twice through [`both!`]. Where a scenario needs
//! several replicas it asks [`Backend`] for several handles: separate values over one Redis
//! (as separate replicas would hold), or clones of one in-process value.

#![allow(clippy::unwrap_used)]

/// Runs `scenario(Kind)` as two tests, `scenario::memory` and `scenario::redis`.
macro_rules! both {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn memory() {
                super::$scenario($crate::delivery::Kind::Memory).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn redis() {
                super::$scenario($crate::delivery::Kind::Redis).await;
            }
        }
    )+};
}

// A crate root resolves `mod x` beside itself; these live in `tests/delivery/` instead, so
// cargo does not build each as a test binary of its own.
#[path = "delivery/connection.rs"]
mod connection;
#[path = "delivery/limits.rs"]
mod limits;
#[path = "delivery/queue.rs"]
mod queue;
#[path = "delivery/tokens.rs"]
mod tokens;

use std::time::Duration;

use botgate::delivery::{Limits, Queue, TokenCache};
use botgate::keyspace::KeySpace;
use botgate::store::{MemoryStore, RedisConnection, RedisStore};
use botgate_testkit::RedisServer;

const PREFIX: &str = "test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Memory,
    Redis,
}

/// What the handles of one scenario share: nothing but a process, or one `redis-server`.
pub struct Backend {
    pub redis: Option<RedisServer>,
    connection: Option<RedisConnection>,
    memory_queue: Option<Queue>,
    memory_tokens: TokenCache,
    memory_limits: Limits,
}

impl Backend {
    pub async fn start(kind: Kind) -> Backend {
        let (redis, connection) = match kind {
            Kind::Memory => (None, None),
            Kind::Redis => {
                let redis = RedisServer::start().await;
                let store = RedisStore::connect(&redis.url()).await.unwrap();
                (Some(redis), Some(store.connection()))
            }
        };
        Backend {
            redis,
            connection,
            memory_queue: None,
            memory_tokens: TokenCache::memory(),
            memory_limits: Limits::memory(),
        }
    }

    /// `N` handles on one queue, as `N` replicas would hold them. In memory the first call's
    /// `visibility` sticks: there is one queue per backend.
    pub fn queues<const N: usize>(&mut self, visibility: Duration) -> [Queue; N] {
        match (&self.redis, &self.connection) {
            (Some(_), Some(connection)) => std::array::from_fn(|_| {
                Queue::redis(connection.clone(), &KeySpace::new(PREFIX, 1), visibility)
            }),
            _ => {
                let queue = self
                    .memory_queue
                    .get_or_insert_with(|| Queue::memory(visibility, MemoryStore::new()));
                std::array::from_fn(|_| queue.clone())
            }
        }
    }

    pub fn queue(&mut self, visibility: Duration) -> Queue {
        let [queue] = self.queues(visibility);
        queue
    }

    pub fn token_caches<const N: usize>(&self) -> [TokenCache; N] {
        std::array::from_fn(|_| match &self.connection {
            Some(connection) => TokenCache::redis(connection.clone(), PREFIX),
            None => self.memory_tokens.clone(),
        })
    }

    pub fn limits<const N: usize>(&self) -> [Limits; N] {
        std::array::from_fn(|_| match &self.connection {
            Some(connection) => Limits::redis(connection.clone(), PREFIX),
            None => self.memory_limits.clone(),
        })
    }
}
