//! `/wechat/{bot}`: WeChat Official Account callbacks (GET URL verification, POST messages).

use super::inbound::Channel;
use super::AppState;
use crate::channels::passive::PassiveWindow;
use crate::channels::wechat::WechatChannel;
use crate::config::ReplyMode;
use crate::store::StoreError;

impl Channel for WechatChannel {
    type Adapter = botgate_wechat::WechatAccount;
    const ROUTE: &'static str = "wechat";
    const HANDSHAKE: bool = true;

    fn of<'a>(state: &'a AppState, bot: &str) -> Option<&'a Self> {
        state.wechat.get(bot)
    }

    fn adapter(&self) -> &Self::Adapter {
        &self.account
    }

    /// Passive accounts always answer in the request; active ones too while WeChat refuses
    /// their sends (48001).
    async fn window(
        &self,
        state: &AppState,
        bot: &str,
    ) -> Result<Option<&PassiveWindow>, StoreError> {
        if self.settings.reply_mode == ReplyMode::Active {
            let key = crate::channels::wechat::active::fallback_key(&state.key_prefix, bot);
            if state.conversations.store().get(&key).await?.is_none() {
                return Ok(None);
            }
        }
        Ok(Some(&self.window))
    }
}
