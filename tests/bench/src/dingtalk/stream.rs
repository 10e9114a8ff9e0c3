//! `dingtalk-stream`: a fake Stream gateway pushing robot-message CALLBACK frames to botgate's
//! WebSocket as fast as it ACKs them, `--window` frames in flight, for the measured time; each
//! message is answered later through its session webhook.
//!
//! botgate reads a connection's frames one at a time and ACKs each once its message is durably
//! queued, so the window only keeps the socket busy: the ACK latency is about the window times
//! the time per frame. Frames are built as they go (a JSON document, cheap next to what botgate
//! does with it); ACKs are parsed as they come, to free their slot.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use botgate_dingtalk::simulator::stream_callback_frame;
use botgate_dingtalk::stream::{Ack, CODE_OK};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::fake_api::TICKET_PREFIX;
use super::{answers, message, unix_ms, MESSAGES_PER_CONVERSATION};
use crate::cpu::CpuMeter;
use crate::platform::api::Fake;
use crate::platform::{summary, Spread};
use crate::report::{round, Report};
use crate::Options;

const SCENARIO: &str = "dingtalk-stream";
/// botgate connects as soon as it starts; a connection not there by then fails the run.
const CONNECT_DEADLINE: Duration = Duration::from_secs(15);
/// After the last frame, how long the frames still in flight may take to be ACKed.
const ACK_DRAIN: Duration = Duration::from_secs(10);
/// Problems kept to show what went wrong.
const SAMPLES_KEPT: usize = 5;

type Socket = WebSocketStream<TcpStream>;

/// What the gateway saw on the connection.
#[derive(Default)]
struct Pushed {
    /// When frame `f<sequence>` went out, by sequence.
    sent_at: Vec<Instant>,
    /// When each frame was ACKed (200), by sequence.
    acked_at: Vec<Option<Instant>>,
    /// ACK latencies of the ACKs that arrived in the measured window.
    latencies: Vec<Duration>,
    /// ACKs with another code than 200, or not `OK`.
    refused: u64,
    /// ACKs for no frame in flight (unknown, or ACKed already), or unreadable frames.
    stray: u64,
    samples: Vec<String>,
    /// Why the connection ended before the run did, if it did.
    lost: Option<String>,
}

impl Pushed {
    fn problem(&mut self, text: String) {
        if self.samples.len() < SAMPLES_KEPT {
            self.samples.push(text);
        }
    }

    fn unacked(&self) -> u64 {
        self.acked_at.iter().filter(|acked| acked.is_none()).count() as u64
    }

    /// One text frame from botgate, at `at`.
    fn ack(&mut self, text: &str, at: Instant, window: (Instant, Instant)) {
        let ack: Ack = match serde_json::from_str(text) {
            Ok(ack) => ack,
            Err(error) => {
                self.stray += 1;
                self.problem(format!(
                    "an unreadable frame from botgate ({error}): {text}"
                ));
                return;
            }
        };
        let id = &ack.headers.message_id;
        let Some(sequence) = frame_sequence(id).filter(|s| *s < self.acked_at.len()) else {
            self.stray += 1;
            self.problem(format!("an ACK for no frame sent: {text}"));
            return;
        };
        if self.acked_at[sequence].is_some() {
            self.stray += 1;
            self.problem(format!("a second ACK for {id}: {text}"));
            return;
        }
        if ack.code != CODE_OK || ack.message != "OK" {
            self.refused += 1;
            self.problem(format!("{id} ACKed with {} {:?}", ack.code, ack.message));
        }
        self.acked_at[sequence] = Some(at);
        if at >= window.0 && at < window.1 {
            self.latencies
                .push(at.saturating_duration_since(self.sent_at[sequence]));
        }
    }
}

fn frame_id(sequence: usize) -> String {
    format!("f{sequence}")
}

fn frame_sequence(id: &str) -> Option<usize> {
    id.strip_prefix('f')?.parse().ok()
}

/// Accepts WebSocket connections (each with the ticket of its URL) and hands them over.
async fn accept(listener: TcpListener, sockets: mpsc::UnboundedSender<(Socket, String)>) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        let mut ticket = String::new();
        // The handshake callback's signature is tungstenite's, large error type included.
        #[allow(clippy::result_large_err)]
        let record_ticket = |request: &Request, response: Response| {
            ticket = request
                .uri()
                .query()
                .unwrap_or_default()
                .split('&')
                .find_map(|pair| pair.strip_prefix("ticket="))
                .unwrap_or_default()
                .to_owned();
            Ok(response)
        };
        if let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, record_ticket).await {
            if sockets.send((socket, ticket)).is_err() {
                return;
            }
        }
    }
}

/// Pushes frames with `window` in flight until `end`, then waits up to [`ACK_DRAIN`] for the
/// last ACKs. ACKs arriving within `measured` count towards the latencies.
async fn drive(
    socket: &mut Socket,
    webhook_base: &str,
    window: usize,
    end: Instant,
    measured: (Instant, Instant),
) -> Pushed {
    let mut pushed = Pushed::default();
    let mut in_flight = 0_usize;
    let mut drain_until = None;
    loop {
        let now = Instant::now();
        if now < end && in_flight < window {
            let time_ms = unix_ms().unwrap_or_default();
            while in_flight < window {
                let sequence = pushed.sent_at.len();
                let message = message(webhook_base, 0, sequence as u64);
                let frame = stream_callback_frame(&message, &frame_id(sequence), time_ms);
                pushed.sent_at.push(Instant::now());
                pushed.acked_at.push(None);
                in_flight += 1;
                if let Err(error) = socket.feed(Message::text(frame)).await {
                    pushed.lost = Some(format!("push: {error}"));
                    return pushed;
                }
            }
            if let Err(error) = socket.flush().await {
                pushed.lost = Some(format!("push: {error}"));
                return pushed;
            }
        }
        let deadline = if now < end {
            end
        } else if in_flight == 0 {
            return pushed;
        } else {
            *drain_until.get_or_insert(end + ACK_DRAIN)
        };
        tokio::select! {
            next = socket.next() => match next {
                Some(Ok(Message::Text(text))) => {
                    let before = pushed.unacked();
                    pushed.ack(text.as_str(), Instant::now(), measured);
                    if pushed.unacked() < before {
                        in_flight -= 1;
                    }
                }
                Some(Ok(Message::Close(_))) | None => {
                    pushed.lost = Some("botgate closed the socket".to_owned());
                    return pushed;
                }
                // Pings are answered by the socket itself.
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    pushed.lost = Some(format!("websocket: {error}"));
                    return pushed;
                }
            },
            _ = tokio::time::sleep_until(deadline.into()) => {
                if Instant::now() >= end + ACK_DRAIN {
                    return pushed;
                }
            }
        }
    }
}

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind the fake Stream gateway")?;
    let endpoint = format!("ws://{}/connect", listener.local_addr()?);
    let (sockets, mut connections) = mpsc::unbounded_channel();
    let mut gateway = JoinSet::new();
    gateway.spawn(accept(listener, sockets));
    // botgate is ready only once its Stream connection is up: the gateway accepts meanwhile.
    let mut stack = super::start_stack(options, Some(endpoint)).await?;
    let Ok(Some((mut socket, ticket))) =
        tokio::time::timeout(CONNECT_DEADLINE, connections.recv()).await
    else {
        bail!(
            "botgate did not open its Stream connection within {CONNECT_DEADLINE:?}; log:\n{}",
            stack.botgate.log_tail()
        );
    };
    let warmup = Duration::from_secs(options.warmup);
    let measure = Duration::from_secs(options.seconds);
    let window = options.window;

    let meter = CpuMeter::new(stack.botgate.pid());
    let before = meter.snapshot();
    let started = Instant::now();
    let end = started + warmup + measure;
    let measured = (started + warmup, end);
    let webhook_base = stack.api.url();
    let drive = drive(&mut socket, &webhook_base, window, end, measured);
    let mut pushed = stack.upstreams.while_clearing(drive).await;
    let acks_done = started.elapsed();
    // Only ACKed messages are durably queued and owed an answer; the sequence numbers of all
    // the frames name the conversations, so the answers are matched against all of them.
    let frames = pushed.sent_at.len() as u64;
    let unacked = pushed.unacked();
    let expected = frames - unacked;
    let awaited = summary::await_answers(&stack, expected, &meter, &before, started).await;
    let sends = stack.api.record().take_sends();
    let sent_at = vec![std::mem::take(&mut pushed.sent_at)];
    let mut checked = answers::check(&sends, &sent_at, measured);
    let end_to_end = Spread::new(std::mem::take(&mut checked.end_to_end));
    let ack_latency = Spread::new(std::mem::take(&mut pushed.latencies));
    let acked_in_window = ack_latency.count() as u64;
    let acks_per_sec = acked_in_window as f64 / measure.as_secs_f64();
    let last_answer = checked.last.map_or(Duration::ZERO, |last| {
        last.saturating_duration_since(started)
    });
    let reconnections = {
        let mut more = 0_u64;
        while connections.try_recv().is_ok() {
            more += 1;
        }
        more
    };
    gateway.abort_all();

    let mut report = Report::new(
        SCENARIO,
        format!(
            "1 Stream connection, {window} frames in flight, {MESSAGES_PER_CONVERSATION} messages per conversation, 1 in 4 a group, warm-up {} s, {}",
            options.warmup,
            stack.setup(options)
        ),
    );
    report.value("window", window as u64);
    report.value("workers", options.workers as u64);
    report.value("store", stack.upstreams.store_name());
    report.value("llm_stream", stack.llm.stream);
    report.value("llm_http2", stack.llm.http2);
    report.row(
        "frames/s ACKed",
        format!(
            "{acks_per_sec:.0}  ({acked_in_window} in {:.1} s)",
            measure.as_secs_f64()
        ),
    );
    report.row(
        "ACK latency p50/p99/max",
        format!("{}  (frame pushed → its ACK read)", ack_latency.text()),
    );
    report.row(
        "frames",
        format!(
            "{frames} pushed, {unacked} not ACKed at the end, {} refused, {} stray ACKs",
            pushed.refused, pushed.stray
        ),
    );
    let answers_per_sec = checked.answered as f64 / last_answer.as_secs_f64().max(f64::EPSILON);
    report.row(
        "answers/s",
        format!(
            "{answers_per_sec:.0}  ({} answers, first frame to last answer {:.1} s; ACKs done at {:.1} s)",
            checked.answered,
            last_answer.as_secs_f64(),
            acks_done.as_secs_f64()
        ),
    );
    report.row(
        "end to end p50/p99/max",
        format!(
            "{}  (frame pushed → session webhook received; {} frames pushed while measuring)",
            end_to_end.text(),
            end_to_end.count()
        ),
    );
    report.row(
        "answers checked",
        format!(
            "{} of {expected} ACKed messages answered once, on their conversation's webhook, with the fake's text; {} extra, {} missing, {} bad",
            checked.answered, checked.duplicates, checked.missing, checked.bad
        ),
    );
    report.cpu(&awaited.cores, awaited.drained, expected);
    report.row(
        "CPU window",
        format!(
            "first frame to last answer ({:.1} s), per message answered",
            awaited.drained.as_secs_f64()
        ),
    );
    summary::resources(&mut report, &stack, " (Stream connection open included)")?;
    let opens = stack.api.opens();
    let more = format!(", {opens} connections/open");
    let calls = summary::upstream_calls(&mut report, &stack, expected, &more);
    report.value("frames_per_sec", round(acks_per_sec, 0));
    report.value("frames_acked", acked_in_window);
    report.value("ack_p50_ms", round(ack_latency.ms(0.5), 2));
    report.value("ack_p99_ms", round(ack_latency.ms(0.99), 2));
    report.value("ack_max_ms", round(ack_latency.max_ms(), 2));
    report.value("frames_pushed", frames);
    report.value("unacked", unacked);
    report.value("refused_acks", pushed.refused);
    report.value("stray_acks", pushed.stray);
    summary::answer_values(
        &mut report,
        &checked,
        &end_to_end,
        answers_per_sec,
        last_answer,
    );
    report.value("connection_opens", opens);
    report.value("messages_sent", expected);

    if let Some(lost) = &pushed.lost {
        report.problem(format!(
            "the Stream connection ended during the run: {lost}"
        ));
    }
    if unacked > 0 || pushed.refused + pushed.stray > 0 {
        report.problem(format!(
            "ACKs: {unacked} of {frames} frames not ACKed within {ACK_DRAIN:?} of the last push, {} refused, {} stray; first problems: {}",
            pushed.refused,
            pushed.stray,
            pushed.samples.join(" | ")
        ));
    }
    if !ticket.starts_with(TICKET_PREFIX) {
        report.problem(format!(
            "botgate connected with ticket {ticket:?}, not one connections/open handed out"
        ));
    }
    if reconnections > 0 || opens != 1 {
        report.problem(format!(
            "{opens} connections/open and {} WebSocket connections: botgate reconnected",
            reconnections + 1
        ));
    }
    summary::stalled(&mut report, &stack, &awaited, expected);
    summary::wrong_answers(&mut report, &checked, expected);
    summary::not_one_call_each(&mut report, calls, expected);
    summary::close(&mut report, &mut stack);
    drop(socket);
    stack.botgate.stop().await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use botgate_dingtalk::stream::{ack_callback, ack_error};

    #[test]
    fn acks_free_their_frame_once() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut pushed = Pushed {
            sent_at: vec![at(0), at(1), at(2)],
            acked_at: vec![None; 3],
            ..Pushed::default()
        };
        let window = (at(0), at(100));
        pushed.ack(&ack_callback(&frame_id(1)), at(5), window);
        pushed.ack(&ack_callback(&frame_id(1)), at(6), window);
        pushed.ack(&ack_callback(&frame_id(7)), at(7), window);
        pushed.ack(&ack_error(&frame_id(2), "bad"), at(8), window);
        pushed.ack("not json", at(9), window);
        assert_eq!(pushed.unacked(), 1);
        assert_eq!((pushed.refused, pushed.stray), (1, 3));
        assert_eq!(
            pushed.latencies,
            [Duration::from_millis(4), Duration::from_millis(6)]
        );
    }
}
