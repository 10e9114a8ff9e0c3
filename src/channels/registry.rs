//! The platforms botgate serves. Adding one is one line in [`platforms!`]'s invocation below:
//! it gives the platform a field in [`Channels`], a variant in [`Sender`] and its routes.

use std::collections::HashMap;

use tokio::sync::oneshot;

use super::channel::{Channel, Deliver};
use super::dingtalk::DingtalkChannel;
use super::live::LiveAnswer;
use super::send::SendError;
use super::source::Sources;
use super::web::WebChannel;
use super::webhook::WebhookChannel;
use super::wechat::WechatChannel;
use super::wecom::WecomChannel;
use super::wiring::Wiring;
use crate::core::job::JobPayload;
use crate::store::StoreError;

/// Implemented by [`platforms!`] for each registered channel type: where its bots' channels
/// are kept.
pub trait Registered: Sized {
    fn all(channels: &Channels) -> &HashMap<String, Self>;

    /// `bot`'s channel on this platform, if it has one.
    fn of<'a>(channels: &'a Channels, bot: &str) -> Option<&'a Self> {
        Self::all(channels).get(bot)
    }
}

/// Called once per registered platform (e.g. to mount its routes).
pub trait Visitor {
    fn visit<C: Channel + Registered>(&mut self, channels: &HashMap<String, C>);
}

macro_rules! platforms {
    ($($field:ident: $variant:ident($channel:ty)),+ $(,)?) => {
        /// Every bot's channel on every platform.
        pub struct Channels {
            $(pub $field: HashMap<String, $channel>,)+
        }

        /// Where answers go when they do not travel in the platform's own request: a closed
        /// set, one variant per platform.
        pub enum Sender {
            $($variant(<$channel as Channel>::Sender),)+
        }

        /// A job's answer shown while it is generated: one variant per platform, of which
        /// only those with a [`Deliver::Live`] can be made.
        pub enum Live {
            $($variant(<<$channel as Channel>::Sender as Deliver>::Live),)+
        }

        impl Live {
            pub fn push(&self, delta: &str) {
                match self { $(Live::$variant(live) => LiveAnswer::push(live, delta),)+ }
            }

            pub async fn finish(&self, text: &str, failed: bool) -> Result<(), SendError> {
                match self { $(Live::$variant(live) => LiveAnswer::finish(live, text, failed).await,)+ }
            }

            pub async fn abandon(&self) {
                match self { $(Live::$variant(live) => LiveAnswer::abandon(live).await,)+ }
            }
        }

        $(impl Registered for $channel {
            fn all(channels: &Channels) -> &HashMap<String, Self> {
                &channels.$field
            }
        })+

        impl Channels {
            pub fn build(wiring: &Wiring<'_>) -> anyhow::Result<Self> {
                Ok(Channels {
                    $($field: <$channel as Channel>::build(wiring)?,)+
                })
            }

            pub fn visit(&self, visitor: &mut impl Visitor) {
                $(visitor.visit(&self.$field);)+
            }

            /// Every bot's inbound sources besides its routes (see [`Channel::sources`]).
            pub fn sources(&self, sources: &mut Sources) {
                $(for (bot, channel) in &self.$field {
                    channel.sources(bot, sources);
                })+
            }

            /// The sender of every bot on every platform that has one, by (bot, platform).
            pub fn senders(&self) -> HashMap<(String, String), Sender> {
                let mut senders = HashMap::new();
                $(for (bot, channel) in &self.$field {
                    if let Some(sender) = channel.sender() {
                        let platform = botgate_contract::Adapter::platform(channel.adapter());
                        senders.insert(
                            (bot.clone(), platform.as_str().to_owned()),
                            Sender::$variant(sender),
                        );
                    }
                })+
                senders
            }
        }

        impl Sender {
            pub fn parts(&self, job: &JobPayload, text: &str) -> Vec<String> {
                match self { $(Sender::$variant(sender) => Deliver::parts(sender, job, text),)+ }
            }

            pub async fn send(
                &self,
                job: &JobPayload,
                chunk: usize,
                chunks: usize,
                part: &str,
            ) -> Result<(), SendError> {
                match self { $(Sender::$variant(sender) => Deliver::send(sender, job, chunk, chunks, part).await,)+ }
            }

            pub fn typing(&self, job: &JobPayload) -> Option<oneshot::Sender<()>> {
                match self { $(Sender::$variant(sender) => Deliver::typing(sender, job),)+ }
            }

            pub fn live(&self, job: &JobPayload) -> Option<Live> {
                match self { $(Sender::$variant(sender) => Deliver::live(sender, job).map(Live::$variant),)+ }
            }

            pub async fn fall_back(&self, job: &JobPayload, unsent: &[String]) -> Result<(), StoreError> {
                match self { $(Sender::$variant(sender) => Deliver::fall_back(sender, job, unsent).await,)+ }
            }
        }
    };
}

platforms! {
    wechat: Wechat(WechatChannel),
    webhook: Webhook(WebhookChannel),
    wecom: Wecom(WecomChannel),
    dingtalk: Dingtalk(DingtalkChannel),
    web: Web(WebChannel),
}
