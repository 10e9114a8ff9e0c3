//! What botgate asks of Redis: a minimal RESP client to the private redis-server for
//! `CONFIG RESETSTAT`, `INFO commandstats` and a `SLOWLOG` sample, and the pid of that server.
//!
//! Redis counts in `commandstats` every command it executes, those run by a script
//! (`EVALSHA`, `FCALL`) included, as well as the script call itself: [`RedisProbe::inner_counted`]
//! checks that on the server at hand. The slowlog sample tells which ones came from a script:
//! with `slowlog-log-slower-than 0` Redis logs every command, a script's own with the client
//! `?:0` (Redis 7) instead of a real address.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Entries the slowlog keeps while sampling: a few hundred messages' worth.
const SAMPLE_ENTRIES: u64 = 20_000;
/// Redis's defaults, restored after sampling.
const DEFAULT_SLOWER_THAN: &str = "10000";
const DEFAULT_MAX_LEN: &str = "128";
/// Our own commands, left out of the counts.
const OWN_COMMANDS: &[&str] = &["config|resetstat", "info", "config|set", "slowlog|reset"];

/// A RESP value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resp {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

impl Resp {
    fn text(&self) -> Option<String> {
        match self {
            Resp::Simple(text) => Some(text.clone()),
            Resp::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }
}

/// One connection to a redis-server.
pub struct RedisProbe {
    stream: TcpStream,
    buffer: BytesMut,
}

/// Commands executed per command name, over a window.
pub type CommandCounts = BTreeMap<String, u64>;

/// Who issued the commands of a slowlog sample, per command name: `(from clients, from scripts)`.
#[derive(Debug, Default, Clone)]
pub struct Origins {
    pub commands: BTreeMap<String, (u64, u64)>,
}

impl Origins {
    pub fn sent_by_clients(&self) -> u64 {
        self.commands.values().map(|(clients, _)| clients).sum()
    }

    pub fn run_by_scripts(&self) -> u64 {
        self.commands.values().map(|(_, scripts)| scripts).sum()
    }
}

impl RedisProbe {
    pub async fn connect(port: u16) -> anyhow::Result<RedisProbe> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connect to redis-server on {address}"))?;
        stream.set_nodelay(true)?;
        Ok(RedisProbe {
            stream,
            buffer: BytesMut::with_capacity(64 * 1024),
        })
    }

    async fn command(&mut self, args: &[&str]) -> anyhow::Result<Resp> {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        self.stream.write_all(request.as_bytes()).await?;
        loop {
            if let Some((value, used)) = parse(&self.buffer)? {
                self.buffer.advance(used);
                if let Resp::Error(error) = &value {
                    bail!("redis {}: {error}", args.join(" "));
                }
                return Ok(value);
            }
            self.buffer.reserve(64 * 1024);
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                bail!("redis-server closed the connection");
            }
        }
    }

    /// `CONFIG RESETSTAT`: the counters start from zero.
    pub async fn reset_stats(&mut self) -> anyhow::Result<()> {
        self.command(&["CONFIG", "RESETSTAT"]).await.map(drop)
    }

    /// `INFO commandstats`: calls per command since the last reset, our own left out.
    pub async fn command_stats(&mut self) -> anyhow::Result<CommandCounts> {
        let info = self
            .command(&["INFO", "commandstats"])
            .await?
            .text()
            .context("INFO answered no text")?;
        Ok(parse_commandstats(&info))
    }

    /// Whether this Redis counts the commands a script runs in `commandstats` (besides the
    /// script call): one `EVAL` of a script calling `ECHO` once, on a server nobody else uses yet.
    pub async fn inner_counted(&mut self) -> anyhow::Result<bool> {
        self.reset_stats().await?;
        self.command(&["EVAL", "return redis.call('echo', 'probe')", "0"])
            .await?;
        let counts = self.command_stats().await?;
        self.reset_stats().await?;
        Ok(counts.get("echo").copied().unwrap_or(0) == 1
            && counts.get("eval").copied().unwrap_or(0) == 1)
    }

    /// Starts logging every command in the slowlog (the last [`SAMPLE_ENTRIES`]).
    pub async fn start_sample(&mut self) -> anyhow::Result<()> {
        self.command(&[
            "CONFIG",
            "SET",
            "slowlog-max-len",
            &SAMPLE_ENTRIES.to_string(),
        ])
        .await?;
        self.command(&["SLOWLOG", "RESET"]).await?;
        self.command(&["CONFIG", "SET", "slowlog-log-slower-than", "0"])
            .await?;
        Ok(())
    }

    /// Stops logging, reads the sample and restores Redis's defaults.
    pub async fn finish_sample(&mut self) -> anyhow::Result<Origins> {
        self.command(&[
            "CONFIG",
            "SET",
            "slowlog-log-slower-than",
            DEFAULT_SLOWER_THAN,
        ])
        .await?;
        let entries = self
            .command(&["SLOWLOG", "GET", &SAMPLE_ENTRIES.to_string()])
            .await?;
        self.command(&["SLOWLOG", "RESET"]).await?;
        self.command(&["CONFIG", "SET", "slowlog-max-len", DEFAULT_MAX_LEN])
            .await?;
        Ok(origins(&entries))
    }
}

/// Classifies slowlog entries `[id, time, micros, [argv…], client, name]` by command and
/// origin; our own configuration commands are left out.
fn origins(entries: &Resp) -> Origins {
    let mut origins = Origins::default();
    let Resp::Array(Some(entries)) = entries else {
        return origins;
    };
    for entry in entries {
        let Resp::Array(Some(fields)) = entry else {
            continue;
        };
        let Some(Resp::Array(Some(argv))) = fields.get(3) else {
            continue;
        };
        let Some(name) = argv.first().and_then(Resp::text) else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        if name == "config" || name == "slowlog" {
            continue;
        }
        // Redis 7 logs a script's commands with the fake client's address `?:0`.
        let client = fields.get(4).and_then(Resp::text).unwrap_or_default();
        let from_script = client.is_empty() || client.starts_with('?');
        let counts = origins.commands.entry(name).or_default();
        if from_script {
            counts.1 += 1;
        } else {
            counts.0 += 1;
        }
    }
    origins
}

/// `cmdstat_NAME:calls=N,…` lines, our own commands left out.
fn parse_commandstats(info: &str) -> CommandCounts {
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .filter(|(name, _)| !OWN_COMMANDS.contains(&name.as_str()))
        .collect()
}

/// The RESP value at the start of `buffer` and its length, or `None` if incomplete.
fn parse(buffer: &[u8]) -> anyhow::Result<Option<(Resp, usize)>> {
    let Some(line_end) = buffer.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = std::str::from_utf8(&buffer[1..line_end]).context("RESP line is not UTF-8")?;
    let after = line_end + 2;
    let Some(&kind) = buffer.first() else {
        return Ok(None);
    };
    let number = || -> anyhow::Result<i64> { line.parse().context("bad RESP length") };
    Ok(match kind {
        b'+' => Some((Resp::Simple(line.to_owned()), after)),
        b'-' => Some((Resp::Error(line.to_owned()), after)),
        b':' => Some((Resp::Integer(number()?), after)),
        b'$' => {
            let length = number()?;
            if length < 0 {
                return Ok(Some((Resp::Bulk(None), after)));
            }
            let end = after + usize::try_from(length)?;
            if buffer.len() < end + 2 {
                return Ok(None);
            }
            Some((Resp::Bulk(Some(buffer[after..end].to_vec())), end + 2))
        }
        b'*' => {
            let count = number()?;
            if count < 0 {
                return Ok(Some((Resp::Array(None), after)));
            }
            let mut items = Vec::with_capacity(usize::try_from(count)?.min(1 << 16));
            let mut at = after;
            for _ in 0..count {
                match parse(&buffer[at..])? {
                    Some((item, used)) => {
                        items.push(item);
                        at += used;
                    }
                    None => return Ok(None),
                }
            }
            Some((Resp::Array(Some(items)), at))
        }
        other => bail!("unexpected RESP type byte {other:#04x}"),
    })
}

/// The pid of this process's `redis-server` child listening on `port` (Redis names itself
/// `redis-server 127.0.0.1:PORT`); an exited one, not yet reaped, has no command line.
pub fn redis_pid(port: u16) -> Option<u32> {
    let suffix = format!(":{port}");
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .filter_map(|pid| pid.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .find(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            comm.trim() == "redis-server"
                && cmdline
                    .split(['\0', ' '])
                    .any(|word| word.ends_with(&suffix))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_are_parsed_without_our_own() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=3,usec=116,usec_per_call=38.67,rejected_calls=0,failed_calls=0\r\n\
                    cmdstat_get:calls=12,usec=2\r\ncmdstat_config|resetstat:calls=1,usec=54\r\n";
        let counts = parse_commandstats(info);
        assert_eq!(counts.len(), 2);
        assert_eq!(counts["evalsha"], 3);
        assert_eq!(counts["get"], 12);
    }

    #[test]
    fn resp_values_parse_whole_or_not_at_all() {
        let reply = b"*2\r\n$3\r\nget\r\n*2\r\n:5\r\n$-1\r\n";
        for end in 0..reply.len() {
            assert!(parse(&reply[..end]).unwrap().is_none(), "at {end}");
        }
        let (value, used) = parse(reply).unwrap().unwrap();
        assert_eq!(used, reply.len());
        assert_eq!(
            value,
            Resp::Array(Some(vec![
                Resp::Bulk(Some(b"get".to_vec())),
                Resp::Array(Some(vec![Resp::Integer(5), Resp::Bulk(None)])),
            ]))
        );
    }

    #[test]
    fn slowlog_entries_are_split_by_origin() {
        let entry = |command: &str, client: &str| {
            Resp::Array(Some(vec![
                Resp::Integer(1),
                Resp::Integer(1_700_000_000),
                Resp::Integer(3),
                Resp::Array(Some(vec![
                    Resp::Bulk(Some(command.as_bytes().to_vec())),
                    Resp::Bulk(Some(b"key".to_vec())),
                ])),
                Resp::Bulk(Some(client.as_bytes().to_vec())),
                Resp::Bulk(Some(Vec::new())),
            ]))
        };
        let entries = Resp::Array(Some(vec![
            entry("EVALSHA", "127.0.0.1:5000"),
            entry("set", "?:0"),
            entry("SET", "127.0.0.1:5000"),
            entry("config", "127.0.0.1:5001"),
        ]));
        let origins = origins(&entries);
        assert_eq!(origins.commands["evalsha"], (1, 0));
        assert_eq!(origins.commands["set"], (1, 1));
        assert!(!origins.commands.contains_key("config"));
        assert_eq!(
            (origins.sent_by_clients(), origins.run_by_scripts()),
            (2, 1)
        );
    }
}
