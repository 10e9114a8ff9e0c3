//! An answer shown while it is generated (DingTalk's AI card): what a platform's
//! [`super::Deliver::live`] returns, and how the delivery engine drives it.

use std::future::Future;

use super::send::SendError;

/// One job's answer as the user watches it grow. The engine calls [`LiveAnswer::push`] with
/// each piece of it as generated (the first shows it), then, once the reply is stored,
/// [`LiveAnswer::finish`] exactly once per job (guarded by a sent-marker like any part), or
/// [`LiveAnswer::abandon`] when generation failed and the job is still this worker's.
/// Dropping it stops any intermediate updates.
pub trait LiveAnswer: Send + Sync + 'static {
    /// The answer grew by `delta`. Must not block: it runs inside the LLM's stream.
    fn push(&self, delta: &str);

    /// Shows `text`, the stored reply, as the final answer (shown now if it was not yet) (`failed`: the notice of a failed
    /// generation). [`SendError::Fallback`] when the live answer cannot take it: the engine
    /// then sends the reply in parts instead. Called again only after a transient error.
    fn finish(
        &self,
        text: &str,
        failed: bool,
    ) -> impl Future<Output = Result<(), SendError>> + Send;

    /// Generation failed: mark what the user sees as failed, best effort.
    fn abandon(&self) -> impl Future<Output = ()> + Send;
}

/// The live answer of platforms without one; it cannot be made.
pub enum NoLive {}

impl LiveAnswer for NoLive {
    fn push(&self, _delta: &str) {
        match *self {}
    }

    async fn finish(&self, _text: &str, _failed: bool) -> Result<(), SendError> {
        match *self {}
    }

    async fn abandon(&self) {
        match *self {}
    }
}
