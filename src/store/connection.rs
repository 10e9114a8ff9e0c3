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
//!
//! On a Redis Cluster (`store.cluster`) the connection is redis-rs's cluster connection, which
//! routes each command by its key's slot and follows the cluster through failovers and slot
//! moves; every key botgate writes carries the key prefix's hash tag, so a script's keys are
//! always on one node. Worker threads get one of their own too, for the same reason.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};

thread_local! {
    /// The connections opened on this thread, by the id of the [`RedisConnection`] they stand
    /// in for (a test process runs several gateways, each with its own Redis).
    static LOCAL: RefCell<Vec<(u64, Picked)>> = const { RefCell::new(Vec::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Clone)]
pub struct RedisConnection(Arc<Inner>);

enum Inner {
    Single {
        id: u64,
        shared: ConnectionManager,
        client: redis::Client,
        config: ConnectionManagerConfig,
    },
    Cluster {
        id: u64,
        shared: ClusterConnection,
        client: ClusterClient,
    },
}

/// A connection of a caller's own, for a command that blocks it (`XREADGROUP … BLOCK`).
pub enum DedicatedConnection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl RedisConnection {
    pub fn new(
        shared: ConnectionManager,
        client: redis::Client,
        config: ConnectionManagerConfig,
    ) -> Self {
        RedisConnection(Arc::new(Inner::Single {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shared,
            client,
            config,
        }))
    }

    /// The shared cluster connection, for a command that must reach every master.
    pub fn cluster_connection(&self) -> Option<ClusterConnection> {
        match &*self.0 {
            Inner::Cluster { shared, .. } => Some(shared.clone()),
            Inner::Single { .. } => None,
        }
    }

    pub fn cluster(shared: ClusterConnection, client: ClusterClient) -> Self {
        RedisConnection(Arc::new(Inner::Cluster {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shared,
            client,
        }))
    }

    /// Gives the current thread a connection of its own, opened on first use by a task of this
    /// thread's runtime (so its driver runs here too). Call it on a thread that lives as long
    /// as the work it serves, such as an HTTP worker; calling it again is a no-op.
    pub fn bind_to_this_thread(&self) -> Result<(), redis::RedisError> {
        let id = self.id();
        let bound = LOCAL.with(|local| local.borrow().iter().any(|(bound, _)| *bound == id));
        if bound {
            return Ok(());
        }
        let own = match &*self.0 {
            Inner::Single { client, config, .. } => Picked::Single(
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?,
            ),
            // Its node connections are made in the background, by this thread's runtime.
            Inner::Cluster { client, .. } => Picked::Cluster(
                client.get_pending_async_connection_with_config(
                    ClusterConfig::new()
                        .set_connection_timeout(super::redis::CONNECT_TIMEOUT)
                        .set_response_timeout(super::redis::RESPONSE_TIMEOUT),
                ),
            ),
        };
        LOCAL.with(|local| local.borrow_mut().push((id, own)));
        Ok(())
    }

    fn id(&self) -> u64 {
        match &*self.0 {
            Inner::Single { id, .. } | Inner::Cluster { id, .. } => *id,
        }
    }

    /// A new connection for the caller alone, whose replies may take up to `response_timeout`.
    pub async fn dedicated(
        &self,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<DedicatedConnection, redis::RedisError> {
        match &*self.0 {
            Inner::Single { client, .. } => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout));
                let connection = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(DedicatedConnection::Single(connection))
            }
            Inner::Cluster { client, .. } => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(connect_timeout)
                    .set_response_timeout(response_timeout);
                let connection = client.get_async_connection_with_config(config).await?;
                Ok(DedicatedConnection::Cluster(connection))
            }
        }
    }

    fn pick(&self) -> Picked {
        let id = self.id();
        LOCAL
            .with(|local| {
                local
                    .borrow()
                    .iter()
                    .find(|(bound, _)| *bound == id)
                    .map(|(_, own)| own.clone())
            })
            .unwrap_or_else(|| match &*self.0 {
                Inner::Single { shared, .. } => Picked::Single(shared.clone()),
                Inner::Cluster { shared, .. } => Picked::Cluster(shared.clone()),
            })
    }
}

/// The connection one command goes out on.
#[derive(Clone)]
enum Picked {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Picked {
    async fn command(&mut self, cmd: &Cmd) -> redis::RedisResult<Value> {
        match self {
            Picked::Single(connection) => connection.req_packed_command(cmd).await,
            Picked::Cluster(connection) => connection.req_packed_command(cmd).await,
        }
    }

    async fn pipeline(
        &mut self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<Value>> {
        match self {
            Picked::Single(connection) => {
                connection
                    .req_packed_commands(pipeline, offset, count)
                    .await
            }
            Picked::Cluster(connection) => {
                connection
                    .req_packed_commands(pipeline, offset, count)
                    .await
            }
        }
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
            let result = connection.command(cmd).await;
            if dropped(&result) {
                tracing::debug!("redis connection dropped; sending the command again");
                return connection.command(cmd).await;
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
            let result = connection.pipeline(pipeline, offset, count).await;
            if dropped(&result) {
                tracing::debug!("redis connection dropped; sending the pipeline again");
                return connection.pipeline(pipeline, offset, count).await;
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        match &*self.0 {
            Inner::Single { shared, .. } => shared.get_db(),
            Inner::Cluster { .. } => 0,
        }
    }
}

impl ConnectionLike for DedicatedConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            DedicatedConnection::Single(connection) => connection.req_packed_command(cmd),
            DedicatedConnection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            DedicatedConnection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            DedicatedConnection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            DedicatedConnection::Single(connection) => connection.get_db(),
            DedicatedConnection::Cluster(_) => 0,
        }
    }
}
