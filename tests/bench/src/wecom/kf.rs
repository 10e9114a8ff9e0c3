//! `wecom-kf`: 微信客服 customers arriving in bursts. Each burst's messages are queued in the
//! fake's `kf/sync_msg` and a callback says "pull"; the callbacks go out concurrently, so most
//! arrive while another pull holds the account (botgate serialises pulls per account, and the
//! holder pulls again for the callbacks it missed). Every message must be answered once,
//! through `kf/send_msg`, each customer's in the order they wrote.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use botgate_wecom::kf::KfMessage;
use botgate_wecom::simulator::kf_customer_text;
use botgate_wecom::SimulatedCallback;
use tokio::task::JoinSet;

use super::fake_api::FakeWecom;
use super::sync_log::PAGE_ITEMS;
use super::{callback_request, kf_sends, unix_secs, KF_ACCOUNT, KF_TOKEN_PREFIX};
use crate::cpu::CpuMeter;
use crate::http::Connection;
use crate::load::REQUEST_TIMEOUT;
use crate::platform::api::Fake;
use crate::platform::{summary, Spread};
use crate::report::{round, Report};
use crate::Options;

const SCENARIO: &str = "wecom-kf";
/// Failure messages kept to show what went wrong.
const SAMPLES_KEPT: usize = 5;

/// Who writes what: message `index` is turn `index % messages` of customer `index / messages`
/// (a customer's messages follow each other, so most land in one burst, often in one page),
/// and burst `b` holds messages `b × burst` onwards.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub customers: u64,
    /// Messages per customer.
    pub messages: u64,
    /// Messages per callback.
    pub burst: u64,
}

impl Plan {
    pub fn total(&self) -> u64 {
        self.customers * self.messages
    }

    pub fn bursts(&self) -> u64 {
        self.total().div_ceil(self.burst)
    }

    /// (customer, turn) of message `index`.
    pub fn turn(&self, index: u64) -> (u64, u64) {
        (index / self.messages, index % self.messages)
    }

    pub fn burst_of(&self, index: u64) -> u64 {
        index / self.burst
    }

    pub fn customer(&self, customer: u64) -> String {
        format!("wm-bench-{customer}")
    }

    pub fn msgid(&self, index: u64) -> String {
        format!("bench-kf-msg-{index}")
    }

    /// Burst `burst`'s messages, written at `now` (botgate skips old ones on a first pull).
    fn items(&self, burst: u64, now: u64) -> Vec<KfMessage> {
        let first = burst * self.burst;
        (first..(first + self.burst).min(self.total()))
            .map(|index| {
                let (customer, turn) = self.turn(index);
                kf_customer_text(
                    &self.msgid(index),
                    KF_ACCOUNT,
                    &self.customer(customer),
                    now,
                    &format!("客户{customer}的第{turn}个问题：请问可以开发票吗？"),
                )
            })
            .collect()
    }
}

/// What the callbacks saw.
#[derive(Default)]
struct Fired {
    /// When each burst was queued in the fake, just before its callback went out.
    queued_at: Vec<Option<Instant>>,
    latencies: Vec<Duration>,
    failures: u64,
    samples: Vec<String>,
    /// From the first callback to the last acknowledgement.
    elapsed: Duration,
}

/// Queues each burst and posts its callback, `connections` callbacks in flight at once.
async fn fire(
    api: Arc<FakeWecom>,
    botgate: std::net::SocketAddr,
    plan: Plan,
    callbacks: Arc<Vec<Vec<u8>>>,
    connections: usize,
) -> Fired {
    let bursts = plan.bursts();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..(connections as u64).min(bursts) {
        let (api, next, callbacks) = (Arc::clone(&api), Arc::clone(&next), Arc::clone(&callbacks));
        tasks.spawn(async move {
            let mut connection = Connection::new(botgate);
            let mut seen = Vec::new();
            loop {
                // Taking a burst and queueing it happen in one poll: the fake's queue is in
                // burst order, whichever task runs first.
                let burst = next.fetch_add(1, Ordering::Relaxed);
                if burst >= bursts {
                    return seen;
                }
                api.queue_kf(plan.items(burst, unix_secs().unwrap_or_default()));
                let queued = Instant::now();
                let sent = tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    connection.send(&callbacks[burst as usize]),
                )
                .await;
                let result = match sent {
                    Ok(Ok(response)) if response.status == 200 && response.body.is_empty() => {
                        Ok(())
                    }
                    Ok(Ok(response)) => Err(format!(
                        "HTTP {}: {}",
                        response.status,
                        String::from_utf8_lossy(&response.body)
                    )),
                    Ok(Err(error)) => Err(format!("connection: {error}")),
                    Err(_) => {
                        connection.reset();
                        Err(format!("no response within {REQUEST_TIMEOUT:?}"))
                    }
                };
                seen.push((burst, queued, queued.elapsed(), result));
            }
        });
    }
    let mut fired = Fired {
        queued_at: vec![None; bursts as usize],
        ..Fired::default()
    };
    while let Some(joined) = tasks.join_next().await {
        let Ok(seen) = joined else {
            fired.failures += 1;
            fired.samples.push("a callback task panicked".to_owned());
            continue;
        };
        for (burst, queued, latency, result) in seen {
            fired.queued_at[burst as usize] = Some(queued);
            fired.latencies.push(latency);
            if let Err(message) = result {
                fired.failures += 1;
                if fired.samples.len() < SAMPLES_KEPT {
                    fired.samples.push(format!("burst {burst}: {message}"));
                }
            }
        }
    }
    fired.elapsed = started.elapsed();
    fired
}

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let plan = Plan {
        customers: options.customers,
        messages: options.customer_messages,
        burst: options.burst,
    };
    let total = plan.total();
    let mut stack = super::start_stack(options, true).await?;
    // Signed now, before the run, each with its own pull token.
    let app = super::app()?;
    let callbacks = (0..plan.bursts())
        .map(|burst| {
            let notice = SimulatedCallback::KfNotice {
                token: format!("{KF_TOKEN_PREFIX}{burst}"),
                open_kfid: Some(KF_ACCOUNT.to_owned()),
            };
            callback_request(&app, &notice)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let meter = CpuMeter::new(stack.botgate.pid());
    let before = meter.snapshot();
    let started = Instant::now();
    let firing = fire(
        Arc::clone(&stack.api),
        stack.botgate.address(),
        plan,
        Arc::new(callbacks),
        options.connections,
    );
    let fired = stack.upstreams.while_clearing(firing).await;
    let awaited = summary::await_answers(&stack, total, &meter, &before, started).await;
    let sends = stack.api.record().take_sends();
    let mut checked = kf_sends::check(&sends, &plan, &fired.queued_at);
    let sync = stack.api.sync_stats();
    let to_answer = Spread::new(std::mem::take(&mut checked.burst_to_answer));
    let acks = Spread::new(fired.latencies);
    let last_answer = checked.last.map_or(Duration::ZERO, |last| {
        last.saturating_duration_since(started)
    });

    let mut report = Report::new(
        SCENARIO,
        format!(
            "{} customers × {} messages in bursts of {}, {} callbacks in flight, {}",
            plan.customers,
            plan.messages,
            plan.burst,
            (options.connections as u64).min(plan.bursts()),
            stack.setup(options)
        ),
    );
    report.value("customers", plan.customers);
    report.value("messages_per_customer", plan.messages);
    report.value("burst", plan.burst);
    report.value("connections", options.connections as u64);
    report.value("workers", options.workers as u64);
    report.value("store", stack.upstreams.store_name());
    let bursts = plan.bursts();
    let callbacks_per_sec = bursts as f64 / fired.elapsed.as_secs_f64().max(f64::EPSILON);
    report.row(
        "callbacks/s",
        format!(
            "{callbacks_per_sec:.0}  ({bursts} callbacks in {:.2} s)",
            fired.elapsed.as_secs_f64()
        ),
    );
    report.row("callback latency p50/p99/max", acks.text());
    report.row(
        "errors",
        match fired.failures {
            0 => "0".to_owned(),
            count => format!("{count}: {}", fired.samples.join(" | ")),
        },
    );
    report.row(
        "burst to answer p50/p99/max",
        format!(
            "{}  (queued in sync_msg → kf/send_msg received)",
            to_answer.text()
        ),
    );
    report.row(
        "messages answered",
        format!(
            "{} of {total} once each, in order per customer; {} duplicates, {} missing, {} out of order, {} bad",
            checked.answered, checked.duplicates, checked.missing, checked.out_of_order, checked.bad
        ),
    );
    report.row(
        "kf/sync_msg",
        format!(
            "{} calls, {} pages with messages (≤{PAGE_ITEMS} each), {} messages handed out, {} of them again (dedup must absorb), {} without a pull token",
            sync.calls, sync.pages, sync.items, sync.again, sync.without_token
        ),
    );
    report.row(
        "last answer after",
        format!("{:.2} s from the first burst", last_answer.as_secs_f64()),
    );
    report.cpu(&awaited.cores, awaited.drained, total);
    report.row(
        "CPU window",
        format!(
            "first burst to last answer ({:.1} s), per message answered",
            awaited.drained.as_secs_f64()
        ),
    );
    summary::resources(&mut report, &stack, "")?;
    let calls = summary::upstream_calls(&mut report, &stack, total, "");
    report.value("callbacks", bursts);
    report.value("callbacks_per_sec", round(callbacks_per_sec, 0));
    report.value("callback_p50_ms", round(acks.ms(0.5), 1));
    report.value("callback_p99_ms", round(acks.ms(0.99), 1));
    report.value("errors", fired.failures);
    report.value("answer_p50_ms", round(to_answer.ms(0.5), 1));
    report.value("answer_p99_ms", round(to_answer.ms(0.99), 1));
    report.value("answer_max_ms", round(to_answer.max_ms(), 1));
    report.value("messages", total);
    report.value("answered", checked.answered);
    report.value("duplicate_answers", checked.duplicates);
    report.value("missing_answers", checked.missing);
    report.value("out_of_order", checked.out_of_order);
    report.value("bad_answers", checked.bad);
    report.value("sync_calls", sync.calls);
    report.value("sync_pages", sync.pages);
    report.value("sync_items", sync.items);
    report.value("sync_items_again", sync.again);
    report.value("last_answer_sec", round(last_answer.as_secs_f64(), 2));

    if fired.failures > 0 {
        report.problem(format!(
            "{} callbacks failed; first: {}",
            fired.failures,
            fired.samples.join(" | ")
        ));
    }
    summary::stalled(&mut report, &stack, &awaited, total);
    let wrong = checked.duplicates + checked.out_of_order + checked.bad;
    if checked.answered != total || wrong > 0 {
        report.problem(format!(
            "answers: {} right of {total}, {} duplicates, {} missing, {} out of order, {} bad; first problems: {}",
            checked.answered,
            checked.duplicates,
            checked.missing,
            checked.out_of_order,
            checked.bad,
            checked.samples.join(" | ")
        ));
    }
    summary::not_one_call_each(&mut report, calls, total);
    if sync.refused > 0 {
        report.problem(format!(
            "{} pulls refused by the fake; first: {}",
            sync.refused,
            sync.samples.join(" | ")
        ));
    }
    summary::close(&mut report, &mut stack);
    stack.botgate.stop().await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_numbers_customers_turns_and_bursts() {
        let plan = Plan {
            customers: 5,
            messages: 3,
            burst: 4,
        };
        assert_eq!((plan.total(), plan.bursts()), (15, 4));
        assert_eq!(plan.turn(7), (2, 1));
        assert_eq!(plan.burst_of(7), 1);
        let last = plan.items(3, 1);
        assert_eq!(last.len(), 3, "the last burst holds what is left");
        assert_eq!(last[0].msgid.as_deref(), Some("bench-kf-msg-12"));
        assert_eq!(last[0].external_userid.as_deref(), Some("wm-bench-4"));
    }
}
