//! Whether any key matches a pattern, on one Redis or on every master of a cluster, in a
//! bounded number of `SCAN` rounds: for a one-off check on a request's path.

use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, Value};

use super::{RedisConnection, StoreError};

const COUNT: u64 = 1000;

/// `Some(found)` once every node was scanned through; `None` when a node had more than `rounds`
/// rounds of `COUNT` keys to go (the caller assumes the worst).
pub async fn any_key_matching(
    connection: &RedisConnection,
    pattern: &str,
    rounds: usize,
) -> Result<Option<bool>, StoreError> {
    let scan = |cursor: u64| {
        let mut command = redis::cmd("SCAN");
        command
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(COUNT);
        command
    };
    let Some(mut cluster) = connection.cluster_connection() else {
        let mut connection = connection.clone();
        let mut cursor = 0;
        for _ in 0..rounds {
            let (next, found): (u64, Vec<Value>) =
                scan(cursor).query_async(&mut connection).await?;
            if !found.is_empty() {
                return Ok(Some(true));
            }
            if next == 0 {
                return Ok(Some(false));
            }
            cursor = next;
        }
        return Ok(None);
    };
    // The first round on every master at once; then each master on its own, by its address.
    let first = cluster
        .route_command(
            scan(0),
            RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
        )
        .await?;
    let Value::Map(nodes) = first else {
        return Ok(None);
    };
    for (address, reply) in nodes {
        let address: String = parse(address)?;
        let Some((host, port)) = address
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
        else {
            return Ok(None);
        };
        let (mut next, mut found): (u64, Vec<Value>) = parse(reply)?;
        let mut left = rounds;
        while found.is_empty() && next != 0 {
            if left == 0 {
                return Ok(None);
            }
            left -= 1;
            let node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port,
            });
            let reply: Cmd = scan(next);
            (next, found) = parse(cluster.route_command(reply, node).await?)?;
        }
        if !found.is_empty() {
            return Ok(Some(true));
        }
    }
    Ok(Some(false))
}

fn parse<T: FromRedisValue>(value: Value) -> Result<T, StoreError> {
    Ok(redis::from_redis_value(value).map_err(redis::RedisError::from)?)
}
