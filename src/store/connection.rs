//! The Redis connection every subsystem talks through: the calling thread's own, when it has one.
//!
//! actix-web runs each HTTP worker on a single-threaded runtime of its own. A multiplexed
//! connection's driver task lives on the runtime that opened it, so with one shared connection
//! every round trip from a worker crossed threads twice (the request to the driver, the reply
//! back), and the context switches were the largest item in the profile. Each worker thread
//! therefore opens its own connection ([`RedisConnection::bind_to_this_thread`]); everything
//! else (delivery engine, startup, tests) uses the shared one.
//!
//! A command that meets a dropped connection (Redis restarted, a proxy closed it) is sent once
//! more after the manager has reconnected. With a connection per thread each of them meets the
//! drop once; without the retry every one would fail a request of its own after a restart.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisFuture, Value};

thread_local! {
    /// The connections opened on this thread, by the id of the [`RedisConnection`] they stand
    /// in for (a test process runs several gateways, each with its own Redis).
    static LOCAL: RefCell<Vec<(u64, ConnectionManager)>> = const { RefCell::new(Vec::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Clone)]
pub struct RedisConnection(Arc<Inner>);

struct Inner {
    id: u64,
    shared: ConnectionManager,
    client: redis::Client,
    config: ConnectionManagerConfig,
}

impl RedisConnection {
    pub fn new(
        shared: ConnectionManager,
        client: redis::Client,
        config: ConnectionManagerConfig,
    ) -> Self {
        RedisConnection(Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shared,
            client,
            config,
        }))
    }

    /// Gives the current thread a connection of its own, opened on first use by a task of this
    /// thread's runtime (so its driver runs here too). Call it on a thread that lives as long
    /// as the work it serves, such as an HTTP worker; calling it again is a no-op.
    pub fn bind_to_this_thread(&self) -> Result<(), redis::RedisError> {
        let inner = &self.0;
        let bound = LOCAL.with(|local| local.borrow().iter().any(|(id, _)| *id == inner.id));
        if bound {
            return Ok(());
        }
        let own =
            ConnectionManager::new_lazy_with_config(inner.client.clone(), inner.config.clone())?;
        LOCAL.with(|local| local.borrow_mut().push((inner.id, own)));
        Ok(())
    }

    fn pick(&self) -> ConnectionManager {
        LOCAL
            .with(|local| {
                local
                    .borrow()
                    .iter()
                    .find(|(id, _)| *id == self.0.id)
                    .map(|(_, own)| own.clone())
            })
            .unwrap_or_else(|| self.0.shared.clone())
    }
}

/// Only a dropped connection is worth a second try: the manager is already reconnecting, and
/// the command most likely never reached Redis. A timeout is not retried (it may have run), and
/// neither is an error reply. A command that did run before the drop runs twice; every script
/// here tolerates that the way it tolerates WeChat's own retry of the same message.
fn dropped(result: &Result<impl Sized, redis::RedisError>) -> bool {
    matches!(result, Err(error) if error.is_connection_dropped() && !error.is_timeout())
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let mut connection = self.pick();
        Box::pin(async move {
            let result = connection.req_packed_command(cmd).await;
            if dropped(&result) {
                tracing::debug!("redis connection dropped; sending the command again");
                return connection.req_packed_command(cmd).await;
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let mut connection = self.pick();
        Box::pin(async move {
            let result = connection
                .req_packed_commands(pipeline, offset, count)
                .await;
            if dropped(&result) {
                tracing::debug!("redis connection dropped; sending the pipeline again");
                return connection
                    .req_packed_commands(pipeline, offset, count)
                    .await;
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.0.shared.get_db()
    }
}
