//! End-to-end WeChat Official Account tests: the real server on port 0, a real redis-server, the
//! fake Bailian, and WeChat simulated by `botgate::simulate` (signing, encryption, retries).

mod harness;
mod passive;
mod protocol;
mod replicas;
