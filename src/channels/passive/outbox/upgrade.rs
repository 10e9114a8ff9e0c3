//! Upgrading from the passive layout before the box (an outbox list and a state hash per
//! user): for how long the scripts also fold what an older botgate left.

use tokio::sync::OnceCell;

use super::{PassiveKeys, OUTBOX_TTL, REQUEST_STATE_TTL};
use crate::store::{any_key_matching, RedisConnection, StoreError};

/// Whether the older layout (an outbox list and its state hash per user) may still hold
/// something. The first replica of this layout marks when it started, once per deployment: 0
/// when that Redis held no old outbox, so a new deployment never looks. Old outboxes lived
/// 48 h at most after their last write.
pub(super) async fn legacy(
    connection: &RedisConnection,
    keys: &PassiveKeys,
    upgrade: &OnceCell<u64>,
) -> Result<bool, StoreError> {
    let until = upgrade
        .get_or_try_init(|| async {
            let marker = crate::keys::passive_box_since(keys.keys.prefix());
            let mut connection = connection.clone();
            // Made by the first message's request, so bounded: a Redis (or a cluster's master)
            // of more than ~64,000 keys is assumed to hold an old outbox.
            // A Redis that refuses `SCAN` (some proxies) must not stop the messages: assume.
            let since = match any_key_matching(&connection, "*:outbox:*", 64).await {
                Ok(Some(false)) => 0,
                Ok(_) => crate::clock::unix_ms(),
                Err(error) => {
                    tracing::warn!(%error, "could not look for an older passive outbox; checking for one for 48 h");
                    crate::clock::unix_ms()
                }
            };
            let (since,): (u64,) = redis::pipe()
                .cmd("SET")
                .arg(&marker)
                .arg(since)
                .arg("NX")
                .ignore()
                .get(&marker)
                .query_async(&mut connection)
                .await?;
            Ok::<_, StoreError>(match since {
                0 => 0,
                since => since + crate::clock::millis(OUTBOX_TTL + REQUEST_STATE_TTL),
            })
        })
        .await?;
    Ok(crate::clock::unix_ms() < *until)
}
