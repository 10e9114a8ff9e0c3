//! Wiring: settings in, a running [`Application`] out (tests start it on port 0).

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::channels::{Channels, Wiring};
use crate::config::{LlmSettings, Settings};
use crate::core::{Bot, Conversations};
use crate::delivery::{Acceptor, Engine, Queue, TokenCache};
use crate::llm::{Bailian, Llm, LlmHttp, LlmProtocol, OpenAi, Rules};
use crate::sources::{Inlet, Source, Sources};
use crate::store::{MemoryStore, RedisStore, Store};

pub use crate::routes::AppState;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

/// Name of the provider a bot gets when no `[llm]` is configured at all.
const EMBEDDED_RULES: &str = "embedded-rules";

pub use crate::http::http_client;

pub async fn build_store(settings: &Settings) -> anyhow::Result<Store> {
    let redis = RedisStore::open(&settings.store)
        .await
        .context("connect to Redis (store.redis_url)")?;
    Ok(match redis {
        None => Store::Memory(MemoryStore::new()),
        Some(store) => Store::Redis(store),
    })
}

/// Builds providers once and the bots that share them.
pub fn build_bots(settings: &Settings) -> anyhow::Result<HashMap<String, Bot>> {
    let mut providers: HashMap<String, Arc<Llm>> = HashMap::new();
    for (name, llm) in &settings.llm {
        let client = LlmHttp::new(LlmProtocol::from_setting(llm.http2()))?;
        let provider = match llm {
            LlmSettings::Bailian(bailian) => Llm::Bailian(
                Bailian::new(bailian, client)
                    .with_context(|| format!("llm.{name}: base_url and app_id make no URL"))?,
            ),
            LlmSettings::Openai(openai) => Llm::OpenAi(
                OpenAi::new(openai, client)
                    .with_context(|| format!("llm.{name}: base_url makes no URL"))?,
            ),
            LlmSettings::Rules(rules) => {
                Llm::Rules(Rules::new(rules).with_context(|| format!("llm.{name}: compile rules"))?)
            }
        };
        providers.insert(name.clone(), Arc::new(provider));
    }
    let embedded = Arc::new(Llm::Rules(Rules::empty(
        crate::config::default_rules_answer(),
    )));
    let mut bots = HashMap::new();
    for (name, bot_settings) in &settings.bots {
        let llm_name = bot_settings
            .llm
            .clone()
            .or_else(|| settings.llm.keys().next().cloned())
            .unwrap_or_else(|| EMBEDDED_RULES.to_owned());
        let llm = providers
            .get(&llm_name)
            .cloned()
            .unwrap_or_else(|| embedded.clone());
        let rules = bot_settings
            .rules
            .as_ref()
            .and_then(|rules| providers.get(rules).cloned());
        let settings = bot_settings.clone();
        bots.insert(
            name.clone(),
            Bot {
                name: name.clone(),
                llm,
                rules,
                farewells: crate::core::commands::normalized_phrases(&settings.farewell_phrases),
                settings,
            },
        );
    }
    Ok(bots)
}

pub async fn build_conversations(settings: &Settings) -> anyhow::Result<Conversations> {
    let store = build_store(settings).await?;
    let bots = build_bots(settings)?;
    Ok(Conversations::new(
        store,
        bots,
        settings.store.keyspace(),
        settings.store.max_turns,
        Duration::from_secs(settings.store.session_ttl_secs),
    ))
}

pub struct Application {
    port: u16,
    server: Server,
    engine: Arc<Engine>,
    /// Answers being generated inside platform requests.
    passive: TaskTracker,
    sources: Sources,
    inlet: Inlet,
    shutdown_timeout: Duration,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&settings.server.listen)
            .with_context(|| format!("bind {}", settings.server.listen))?;
        Self::build_with_listener(settings, listener).await
    }

    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let port = listener
            .local_addr()
            .context("read the bound address")?
            .port();
        let http = http_client()?;
        let conversations = Arc::new(build_conversations(&settings).await?);
        let visibility = Duration::from_secs(settings.delivery.visibility_timeout_secs);
        let keys = conversations.keys().clone();
        let prefix = keys.prefix();
        let (queue, tokens) = match conversations.store() {
            Store::Memory(memory) => (
                Queue::memory(visibility, memory.clone()),
                TokenCache::memory(),
            ),
            Store::Redis(redis) => (
                Queue::redis(redis.connection(), &keys, visibility),
                TokenCache::redis(redis.connection(), prefix),
            ),
        };
        let tasks = TaskTracker::new();
        let channels = Channels::build(&Wiring {
            settings: &settings,
            http: &http,
            conversations: &conversations,
            tokens: &tokens,
            tasks: &tasks,
        })?;
        let dedup_ttl = Duration::from_secs(settings.delivery.dedup_ttl_secs);
        let acceptor = Arc::new(Acceptor::new(queue.clone(), keys.clone(), dedup_ttl));
        let mut sources = Sources::default();
        channels.sources(&mut sources);
        let inlet = Inlet::new(conversations.clone(), acceptor.clone());
        let engine = Arc::new(Engine::new(
            queue,
            conversations.clone(),
            channels.senders(),
            settings.delivery.clone(),
        ));
        let state = web::Data::new(AppState {
            channels,
            conversations,
            acceptor,
            inlet: inlet.clone(),
            sources: sources.statuses(),
        });
        let max_body = settings.server.max_body_bytes;
        let redis = match state.conversations.store() {
            Store::Redis(redis) => Some(redis.connection()),
            Store::Memory(_) => None,
        };
        let mut server = HttpServer::new(move || {
            // Called once on each worker thread: Redis round trips from requests stay on it.
            if let Some(redis) = &redis {
                if let Err(error) = redis.bind_to_this_thread() {
                    tracing::warn!(%error, "no Redis connection of this worker's own; using the shared one");
                }
            }
            App::new()
                .wrap(TracingLogger::<crate::routes::RequestSpan>::new())
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .configure(|config| {
                    crate::routes::configure(config, &state.channels)
                })
        })
        .listen(listener)
        .context("listen")?
        // Our own signal handling stops the delivery workers first; see run_until_stopped.
        .disable_signals()
        // Replies are small and answer a waiting platform: never hold them back for Nagle.
        .tcp_nodelay(true)
        .shutdown_timeout(settings.server.shutdown_timeout_secs);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        Ok(Application {
            port,
            server: server.run(),
            engine,
            passive: tasks,
            sources,
            inlet,
            shutdown_timeout: Duration::from_secs(settings.server.shutdown_timeout_secs),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// An inbound source that is not a route (see [`crate::sources`]): it runs from
    /// [`Application::run_until_stopped`] on, and shows in `/readyz` and `/metrics`.
    pub fn add_source<S: Source>(&mut self, source: S) {
        self.sources.add(source);
    }

    /// Runs until SIGTERM/SIGINT. Then the delivery workers stop taking jobs, the HTTP server
    /// stops accepting connections, and answers in flight (queued jobs and passive answers
    /// being generated) get `server.shutdown_timeout_secs` to finish; a job not finished by
    /// then stays un-acknowledged and another replica takes it over after the visibility
    /// timeout, and a passive answer's lease lapses so a waiting request adopts it.
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
        let (stop_workers, stopped) = watch::channel(false);
        let inlet: Arc<dyn crate::channels::Admit> = Arc::new(self.inlet.clone());
        let sources = self.sources.start(&inlet, &stopped);
        let workers = self.engine.start(stopped);
        let handle = self.server.handle();
        let passive = self.passive.clone();
        let shutdown_timeout = self.shutdown_timeout;
        crate::spawn_traced(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested: draining");
            let _ = stop_workers.send(true);
            // Passive answers run on the HTTP workers' runtimes, which end with the server:
            // let them finish before the workers stop.
            handle.pause().await;
            passive.close();
            if tokio::time::timeout(shutdown_timeout, passive.wait())
                .await
                .is_err()
            {
                tracing::warn!("passive answers still in the making at the shutdown timeout; their leases lapse and other replicas adopt them");
            }
            handle.stop(true).await;
        });
        let served = self.server.await;
        let stopped = async move {
            futures_util::future::join(workers, futures_util::future::join_all(sources)).await
        };
        if tokio::time::timeout(self.shutdown_timeout, stopped)
            .await
            .is_err()
        {
            tracing::warn!("delivery workers or sources still busy at the shutdown timeout; their jobs will be taken over");
        }
        served
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops botgate");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
