//! The delivery engine: accept (claim and queue), a durable job queue, and the workers that
//! answer and deliver through each channel's sender.
//!
//! The queue is a closed enum with an in-process variant (embedded mode, one instance) and a
//! Redis variant (several stateless replicas), like [`crate::store::Store`]. The Redis side does
//! in Lua whatever must be atomic across replicas. Limits and tokens, which the channels and the
//! core use too, live in [`crate::limits`] and [`crate::tokens`]; they are re-exported here.

pub mod accept;
pub mod engine;
pub mod queue;

pub use self::accept::{Accepted, Acceptor};
pub use self::engine::Engine;
pub use self::queue::{Admitted, DeadLetter, Fenced, Job, PartClaim, Queue, QueueDepth, Ticket};
pub use crate::core::job;
pub use crate::limits::{Limits, Slot};
pub use crate::tokens::{self, TokenCache, TokenError};

pub(crate) use crate::clock::{millis, unix_ms};
