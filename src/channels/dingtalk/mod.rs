//! The DingTalk (钉钉) channel: an enterprise-internal robot's one-to-one chats and group
//! @-mentions. HTTP-mode callbacks are acknowledged with an empty 200 once durably queued;
//! in Stream mode ([`DingtalkStream`], a source) each frame is ACKed once durably queued.
//! Either way the message's reply context is stored first ([`Channel::remember`]), and answers
//! go through its session webhook, or the robot OpenAPI once that has expired; a card bot's
//! answers stream into an AI card (`card.rs`) and fall back to those.
//!
//! A Stream-mode bot keeps its signed HTTP route: DingTalk sends it nothing, but
//! `botgate simulate dingtalk` can.

mod api;
mod card;
mod hosts;
mod robot;
mod sender;
mod stream;

pub use hosts::WebhookHosts;
pub use robot::REPLY_CONTEXT_TTL;
pub use sender::DingtalkSender;

use robot::Robot;
pub use stream::DingtalkStream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use botgate_contract::InboundMessage;
use botgate_dingtalk::{DingtalkRobot, ReplyContext};
use secrecy::ExposeSecret;

use crate::channels::channel::Channel;
use crate::channels::source::Sources;
use crate::channels::wiring::Wiring;
use crate::config::{DingtalkMode, DingtalkReply};
use crate::store::StoreError;
use api::DingtalkApi;
use card::CardSettings;

pub struct DingtalkChannel {
    robot: DingtalkRobot,
    sender: DingtalkSender,
    /// Stream mode's connection, started with the application.
    stream: Option<Arc<DingtalkApi>>,
}

impl Channel for DingtalkChannel {
    type Adapter = DingtalkRobot;
    type Sender = DingtalkSender;
    const ROUTE: &'static str = "dingtalk";
    const HANDSHAKE: bool = false;

    fn build(wiring: &Wiring<'_>) -> anyhow::Result<HashMap<String, Self>> {
        let mut channels = HashMap::new();
        for (name, bot) in &wiring.settings.bots {
            let Some(dingtalk) = &bot.dingtalk else {
                continue;
            };
            let secret = dingtalk.app_secret.expose_secret();
            let robot = DingtalkRobot::new(secret)
                .robot_code(dingtalk.robot_code())
                .timestamp_window(Duration::from_secs(dingtalk.timestamp_window_secs));
            let api = Arc::new(DingtalkApi::new(
                wiring.http.clone(),
                &dingtalk.api_base,
                &dingtalk.app_key,
                dingtalk.app_secret.clone(),
                wiring.tokens.clone(),
                wiring.conversations.metrics().clone(),
            ));
            let stream = (dingtalk.mode == DingtalkMode::Stream).then(|| api.clone());
            let sender = DingtalkSender {
                robot: Arc::new(Robot {
                    api,
                    store: wiring.conversations.store().clone(),
                    keys: wiring.conversations.keys().clone(),
                    bot: name.clone(),
                    robot_code: dingtalk.robot_code().to_owned(),
                }),
                hosts: Arc::new(WebhookHosts::new(&dingtalk.session_webhook_hosts)),
                reply: dingtalk.reply,
                card: (dingtalk.reply == DingtalkReply::Card).then(|| {
                    Arc::new(CardSettings {
                        template_id: dingtalk.card_template_id().to_owned(),
                        content_key: dingtalk.card_content_key.clone(),
                        limits: wiring.conversations.limits().clone(),
                    })
                }),
            };
            channels.insert(
                name.clone(),
                DingtalkChannel {
                    robot,
                    sender,
                    stream,
                },
            );
        }
        Ok(channels)
    }

    fn adapter(&self) -> &DingtalkRobot {
        &self.robot
    }

    fn sender(&self) -> Option<DingtalkSender> {
        Some(self.sender.clone())
    }

    fn sources(&self, bot: &str, sources: &mut Sources) {
        if let Some(api) = &self.stream {
            sources.add(DingtalkStream {
                bot: bot.to_owned(),
                api: api.clone(),
                sender: self.sender.clone(),
            });
        }
    }

    async fn remember(
        &self,
        _bot: &str,
        message: &InboundMessage,
        reply: &ReplyContext,
    ) -> Result<(), StoreError> {
        self.sender.robot.remember(message, reply).await
    }
}
