//! Prometheus metrics, served at `/metrics` in the text exposition format.
//!
//! Labels are `&'static str` chosen from small closed sets (platform, outcome, error code as a
//! number), so the cardinality stays bounded whatever users send.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InboundLabels {
    pub platform: &'static str,
    /// accepted, duplicate, rejected, error
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: &'static str,
    /// ok, refused, failed
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub platform: &'static str,
    /// delivered, retried, failed, dead
    pub outcome: &'static str,
    /// The platform's error code ("0" when delivered, "http" for transport failures).
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlatformLabels {
    pub platform: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// The source's name (`dingtalk-stream:shop`).
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeedbackLabels {
    /// A configured bot's name (a closed set).
    pub bot: String,
    /// up, down
    pub rating: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PassiveLabels {
    /// in_time, placeholder, hold
    pub outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub inbound: Family<InboundLabels, Counter>,
    pub duplicates: Family<PlatformLabels, Counter>,
    pub llm_first_token: Family<ProviderLabels, Histogram>,
    pub llm_duration: Family<ProviderLabels, Histogram>,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub token_refreshes: Family<PlatformLabels, Counter>,
    pub passive: Family<PassiveLabels, Counter>,
    pub queue_depth: Gauge,
    pub queue_oldest_age_seconds: Gauge<f64, AtomicU64>,
    pub source_connected: Family<SourceLabels, Gauge>,
    pub source_last_frame_age_seconds: Family<SourceLabels, Gauge<f64, AtomicU64>>,
    pub source_reconnects: Family<SourceLabels, Gauge>,
    pub feedback: Family<FeedbackLabels, Counter>,
    pub web_streams: Gauge,
}

fn latency_histogram() -> Histogram {
    // 10 ms .. ~164 s: first tokens arrive in tens of ms to seconds, whole answers up to minutes.
    Histogram::new(exponential_buckets(0.01, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("botgate");
        let inbound = Family::<InboundLabels, Counter>::default();
        registry.register(
            "inbound",
            "Inbound messages by platform and outcome",
            inbound.clone(),
        );
        let duplicates = Family::<PlatformLabels, Counter>::default();
        registry.register(
            "duplicates_dropped",
            "Platform redeliveries recognised and dropped",
            duplicates.clone(),
        );
        let llm_first_token = Family::<ProviderLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "llm_first_token_seconds",
            "Time from the LLM call to its first token",
            llm_first_token.clone(),
        );
        let llm_duration = Family::<ProviderLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "llm_duration_seconds",
            "Time for a whole LLM answer, retries included",
            llm_duration.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "deliveries",
            "Outbound sends by platform, outcome and platform error code",
            deliveries.clone(),
        );
        let token_refreshes = Family::<PlatformLabels, Counter>::default();
        registry.register(
            "token_refreshes",
            "Platform access tokens fetched",
            token_refreshes.clone(),
        );
        let passive = Family::<PassiveLabels, Counter>::default();
        registry.register(
            "wechat_passive_responses",
            "WeChat passive-mode responses by outcome",
            passive.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Jobs enqueued and not yet completed",
            queue_depth.clone(),
        );
        let queue_oldest_age_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "queue_oldest_age_seconds",
            "Age of the oldest job not yet completed",
            queue_oldest_age_seconds.clone(),
        );
        let source_connected = Family::<SourceLabels, Gauge>::default();
        registry.register(
            "source_connected",
            "1 while an inbound source (not a route) is connected",
            source_connected.clone(),
        );
        let source_last_frame_age_seconds =
            Family::<SourceLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "source_last_frame_age_seconds",
            "Time since an inbound source last heard from its platform",
            source_last_frame_age_seconds.clone(),
        );
        let source_reconnects = Family::<SourceLabels, Gauge>::default();
        registry.register(
            "source_reconnects",
            "Reconnects of an inbound source since start",
            source_reconnects.clone(),
        );
        let feedback = Family::<FeedbackLabels, Counter>::default();
        registry.register(
            "feedback",
            "Answers rated by users, by bot and rating",
            feedback.clone(),
        );
        let web_streams = Gauge::default();
        registry.register(
            "web_open_streams",
            "Web chat answer streams open right now",
            web_streams.clone(),
        );
        Metrics {
            registry,
            feedback,
            web_streams,
            source_connected,
            source_last_frame_age_seconds,
            source_reconnects,
            inbound,
            duplicates,
            llm_first_token,
            llm_duration,
            deliveries,
            token_refreshes,
            passive,
            queue_depth,
            queue_oldest_age_seconds,
        }
    }
}

impl Metrics {
    pub fn inbound(&self, platform: &'static str, outcome: &'static str) {
        self.inbound
            .get_or_create(&InboundLabels { platform, outcome })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
