//! The Redis store: state shared by every replica, over one multiplexed, self-reconnecting connection.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

use super::{RedisConnection, StoreError, Turn};

/// Bounds on how long a call waits for Redis, so an outage turns into errors (and a failing
/// `/readyz`) rather than requests that hang until the platform gives up.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

const ADVANCE: &str = r#"
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"#;
/// The one way a turn enters a memory list in Lua, for every script that writes memory with
/// other state. `append_turn` tolerates a replay of the same append (same turn, same message
/// id): it finds its turn already last and adds nothing. `append_new_turn` skips that read, for
/// scripts that append only on the run that first stores the answer (a replay of them returns
/// before it). Either way the list keeps its last `keep` turns and idles out after `ttl` s.
/// `append_new_turn` may be told to trim only once the list holds `slack` turns more (readers
/// take the last `keep`), and to leave the expiry as it is unless `refresh` is '1' or the list
/// is new; without them it trims and sets the expiry on every append.
pub const APPEND_TURN_LUA: &str = r#"
local function append_new_turn(key, turn, keep, ttl, slack, refresh)
  keep = tonumber(keep)
  local length = redis.call('RPUSH', key, turn)
  if length > keep + (slack or 0) then redis.call('LTRIM', key, -keep, -1) end
  if refresh ~= '0' or length == 1 then redis.call('EXPIRE', key, ttl) end
end
local function append_turn(key, turn, keep, ttl)
  if redis.call('LINDEX', key, -1) ~= turn then
    append_new_turn(key, turn, keep, ttl)
  else
    redis.call('EXPIRE', key, ttl)
  end
end
"#;
/// Adds a memory append to a script that runs [`APPEND_TURN_LUA`]'s `append_turn`: the memory
/// list as the next key, then the turn, the turns kept and the TTL as the next arguments.
pub fn append_turn_args(
    invocation: &mut redis::ScriptInvocation<'_>,
    key: &str,
    turn: &Turn,
    max_turns: usize,
    ttl: Duration,
) -> Result<(), StoreError> {
    invocation
        .key(key)
        .arg(super::encode_turn(key, turn)?)
        .arg(max_turns.max(1))
        .arg(ttl.as_secs().max(1));
    Ok(())
}

static APPEND_TURN_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(&format!(
        "{APPEND_TURN_LUA}\nappend_turn(KEYS[1], ARGV[1], ARGV[2], ARGV[3])\nreturn 1"
    ))
});

static ADVANCE_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(ADVANCE));

#[derive(Clone)]
pub struct RedisStore {
    connection: RedisConnection,
}

impl RedisStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        // Small pipelined commands on one multiplexed connection must not wait for Nagle's
        // algorithm and the peer's delayed ACK (40 ms on Linux): that alone capped throughput.
        let info = redis::IntoConnectionInfo::into_connection_info(url)?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let shared = ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
        let connection = RedisConnection::new(shared, client, config);
        Ok(RedisStore { connection })
    }

    /// Connects to a Redis Cluster through any of its nodes (`seeds`); the client learns the
    /// rest from them and follows failovers and slot moves.
    pub async fn connect_cluster(seeds: &[String]) -> Result<Self, StoreError> {
        let client = redis::cluster::ClusterClient::builder(seeds.iter().map(String::as_str))
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true))
            .retries(3)
            .build()?;
        let shared = client.get_async_connection().await?;
        Ok(RedisStore {
            connection: RedisConnection::cluster(shared, client),
        })
    }

    /// The store `store` configures: one Redis, or a Redis Cluster.
    pub async fn open(store: &crate::config::StoreSettings) -> Result<Option<Self>, StoreError> {
        use secrecy::ExposeSecret;
        let Some(url) = &store.redis_url else {
            return Ok(None);
        };
        let url = url.expose_secret();
        if store.cluster {
            let seeds: Vec<String> = url.split(',').map(|seed| seed.trim().to_owned()).collect();
            return Self::connect_cluster(&seeds).await.map(Some);
        }
        Self::connect(url).await.map(Some)
    }

    /// The underlying connection, for the subsystems that speak Redis directly (queues, locks).
    pub fn connection(&self) -> RedisConnection {
        self.connection.clone()
    }

    pub async fn history(&self, key: &str, max_turns: usize) -> Result<Vec<Turn>, StoreError> {
        let mut connection = self.connection.clone();
        let start = super::history_start(max_turns);
        let items: Vec<Vec<u8>> = connection.lrange(key, start, -1).await?;
        super::decode_history(key, &items)
    }

    pub async fn append_turn(
        &self,
        key: &str,
        turn: &Turn,
        max_turns: usize,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let item = super::encode_turn(key, turn)?;
        // One round trip, applied atomically: a reader never sees the list over its bound.
        let mut connection = self.connection.clone();
        APPEND_TURN_SCRIPT
            .key(key)
            .arg(item)
            .arg(max_turns.max(1))
            .arg(ttl.as_secs().max(1))
            .invoke_async::<i64>(&mut connection)
            .await?;
        Ok(())
    }

    pub async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let reply: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut connection)
            .await?;
        Ok(reply.is_some())
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut connection = self.connection.clone();
        Ok(connection.get(key).await?)
    }

    pub async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _: () = connection
            .pset_ex(key, value, ttl.as_millis().max(1) as u64)
            .await?;
        Ok(())
    }

    pub async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let mut connection = self.connection.clone();
        let (value,): (u64,) = redis::pipe()
            .atomic()
            .incr(key, 1)
            .pexpire(key, ttl.as_millis().max(1) as i64)
            .ignore()
            .query_async(&mut connection)
            .await?;
        Ok(value)
    }

    pub async fn advance(&self, key: &str, value: u64, ttl: Duration) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        ADVANCE_SCRIPT
            .key(key)
            .arg(value)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async::<i64>(&mut connection)
            .await?;
        Ok(())
    }

    pub async fn push_recent(
        &self,
        key: &str,
        value: &str,
        keep: usize,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _: () = redis::pipe()
            .atomic()
            .lpush(key, value)
            .ignore()
            .ltrim(key, 0, keep.max(1) as isize - 1)
            .ignore()
            .pexpire(key, ttl.as_millis().max(1) as i64)
            .ignore()
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    pub async fn recent(&self, key: &str, count: usize) -> Result<Vec<String>, StoreError> {
        let mut connection = self.connection.clone();
        Ok(connection.lrange(key, 0, count.max(1) as isize - 1).await?)
    }

    pub async fn delete(&self, keys: &[&str]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut connection = self.connection.clone();
        let _: () = connection.del(keys).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        Ok(())
    }
}
