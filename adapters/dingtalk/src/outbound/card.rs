//! AI cards with streamed content (outbound.md §4.4): one `createAndDeliver` call puts the card
//! in the conversation, `PUT /v1.0/card/streaming` replaces its content (always the whole text,
//! `isFull: true`), and `PUT /v1.0/card/instances` sets its `flowStatus`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::reply::{ConversationType, ReplyContext};

pub const CARD_CREATE_AND_DELIVER_PATH: &str = "/v1.0/card/instances/createAndDeliver";
pub const CARD_STREAMING_PATH: &str = "/v1.0/card/streaming";
pub const CARD_INSTANCES_PATH: &str = "/v1.0/card/instances";

/// The public AI markdown card template shipped with DingTalk's Stream SDK; its streaming
/// variable is [`AI_CARD_CONTENT_KEY`].
pub const AI_MARKDOWN_CARD_TEMPLATE: &str = "382e4302-551d-4880-bf29-a30acfab2e71.schema";
pub const AI_CARD_CONTENT_KEY: &str = "msgContent";

/// The scopes the card calls need; a token without one gets 403 `AccessTokenPermissionDenied`.
pub const CARD_SCOPES: [&str; 2] = ["Card.Instance.Write", "Card.Streaming.Write"];

/// `AICardStatus`, sent as a string because the SDK's enum is a str-enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowStatus {
    Processing,
    Inputting,
    Finished,
    Failed,
}

impl FlowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowStatus::Processing => "1",
            FlowStatus::Inputting => "2",
            FlowStatus::Finished => "3",
            FlowStatus::Failed => "5",
        }
    }
}

/// The card's `outTrackId` for one message of one bot: the same on every replica and every
/// retry of the job, so a retry streams into the card its predecessor created.
pub fn out_track_id(bot: &str, message_id: &str) -> String {
    let digest = Sha256::digest(format!("botgate-card\n{bot}\n{message_id}").as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardData {
    pub card_param_map: BTreeMap<String, String>,
}

impl CardData {
    fn new(status: FlowStatus, content: Option<(&str, &str)>) -> Self {
        let mut card_param_map = BTreeMap::new();
        card_param_map.insert("flowStatus".to_owned(), status.as_str().to_owned());
        if let Some((key, text)) = content {
            card_param_map.insert(key.to_owned(), text.to_owned());
        }
        CardData { card_param_map }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportForward {
    pub support_forward: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupDeliver {
    pub robot_code: String,
    /// userid → the name shown in the @-mention.
    pub at_user_ids: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RobotDeliver {
    pub space_type: String,
    pub robot_code: String,
}

/// `POST /v1.0/card/instances/createAndDeliver`: create (§4.4 step 1) and deliver (step 2) in one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardCreateAndDeliver {
    pub card_template_id: String,
    pub out_track_id: String,
    pub card_data: CardData,
    pub callback_type: String,
    /// `dtv1.card//IM_GROUP.<conversationId>` or `dtv1.card//IM_ROBOT.<staffId>`.
    pub open_space_id: String,
    pub user_id_type: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub im_group_open_space_model: Option<SupportForward>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub im_group_open_deliver_model: Option<GroupDeliver>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub im_robot_open_space_model: Option<SupportForward>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub im_robot_open_deliver_model: Option<RobotDeliver>,
}

impl CardCreateAndDeliver {
    /// The card for the answer to the message `reply` came with, in its conversation (the
    /// sender @-mentioned in a group). `None` when the message lacks what delivery needs: a
    /// `robotCode`, or a userid for a one-to-one chat.
    pub fn new(template_id: &str, out_track_id: &str, reply: &ReplyContext) -> Option<Self> {
        let robot_code = reply.robot_code.clone()?;
        let forward = Some(SupportForward {
            support_forward: true,
        });
        let mut body = CardCreateAndDeliver {
            card_template_id: template_id.to_owned(),
            out_track_id: out_track_id.to_owned(),
            card_data: CardData::new(FlowStatus::Processing, None),
            callback_type: "STREAM".to_owned(),
            open_space_id: String::new(),
            user_id_type: 1,
            im_group_open_space_model: None,
            im_group_open_deliver_model: None,
            im_robot_open_space_model: None,
            im_robot_open_deliver_model: None,
        };
        match reply.conversation_type {
            ConversationType::Group => {
                body.open_space_id = format!("dtv1.card//IM_GROUP.{}", reply.conversation_id);
                body.im_group_open_space_model = forward;
                let at_user_ids = reply
                    .sender_staff_id
                    .iter()
                    .map(|staff_id| {
                        let nick = reply.sender_nick.clone().unwrap_or_default();
                        (staff_id.clone(), nick)
                    })
                    .collect();
                body.im_group_open_deliver_model = Some(GroupDeliver {
                    robot_code,
                    at_user_ids,
                });
            }
            ConversationType::Single => {
                let staff_id = reply.sender_staff_id.as_deref()?;
                body.open_space_id = format!("dtv1.card//IM_ROBOT.{staff_id}");
                body.im_robot_open_space_model = forward;
                body.im_robot_open_deliver_model = Some(RobotDeliver {
                    space_type: "IM_ROBOT".to_owned(),
                    robot_code,
                });
            }
        }
        Some(body)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `PUT /v1.0/card/streaming`: the card's whole content so far (`isFull: true`, as the SDK
/// always sends), `guid` unique per call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardStreamingUpdate {
    pub out_track_id: String,
    pub guid: String,
    pub key: String,
    pub content: String,
    pub is_full: bool,
    pub is_finalize: bool,
    pub is_error: bool,
}

impl CardStreamingUpdate {
    pub fn new(out_track_id: &str, guid: &str, key: &str, content: &str) -> Self {
        CardStreamingUpdate {
            out_track_id: out_track_id.to_owned(),
            guid: guid.to_owned(),
            key: key.to_owned(),
            content: content.to_owned(),
            is_full: true,
            is_finalize: false,
            is_error: false,
        }
    }

    /// The last update: the finished answer, or the failure notice when `failed`.
    pub fn last(mut self, failed: bool) -> Self {
        self.is_finalize = true;
        self.is_error = failed;
        self
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `PUT /v1.0/card/instances`: the card's state, and its final content with it so the card
/// shows the stored answer whatever streaming updates were lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardInstanceUpdate {
    pub out_track_id: String,
    pub card_data: CardData,
}

impl CardInstanceUpdate {
    /// `content` is `(key, text)`, for the final states.
    pub fn new(out_track_id: &str, status: FlowStatus, content: Option<(&str, &str)>) -> Self {
        CardInstanceUpdate {
            out_track_id: out_track_id.to_owned(),
            card_data: CardData::new(status, content),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn reply(conversation_type: ConversationType) -> ReplyContext {
        ReplyContext {
            session_webhook: None,
            session_webhook_expires_ms: None,
            conversation_type,
            conversation_id: "cidGroup==".into(),
            sender_staff_id: Some("staff-1".into()),
            sender_id: "sender-1".into(),
            sender_nick: Some("小王".into()),
            robot_code: Some("dingrobot".into()),
        }
    }

    fn json_of(body: &str) -> Value {
        serde_json::from_str(body).unwrap_or_default()
    }

    #[test]
    fn a_group_card_goes_to_the_group_mentioning_the_sender() {
        let body =
            CardCreateAndDeliver::new("tpl.schema", "track", &reply(ConversationType::Group));

        assert_eq!(
            json_of(&body.map(|body| body.to_json()).unwrap_or_default()),
            json!({
                "cardTemplateId": "tpl.schema",
                "outTrackId": "track",
                "cardData": {"cardParamMap": {"flowStatus": "1"}},
                "callbackType": "STREAM",
                "openSpaceId": "dtv1.card//IM_GROUP.cidGroup==",
                "userIdType": 1,
                "imGroupOpenSpaceModel": {"supportForward": true},
                "imGroupOpenDeliverModel": {"robotCode": "dingrobot", "atUserIds": {"staff-1": "小王"}},
            })
        );
    }

    #[test]
    fn a_one_to_one_card_goes_to_the_senders_robot_chat() {
        let body =
            CardCreateAndDeliver::new("tpl.schema", "track", &reply(ConversationType::Single));

        let body = json_of(&body.map(|body| body.to_json()).unwrap_or_default());
        assert_eq!(body["openSpaceId"], "dtv1.card//IM_ROBOT.staff-1");
        assert_eq!(
            body["imRobotOpenDeliverModel"],
            json!({"spaceType": "IM_ROBOT", "robotCode": "dingrobot"})
        );
        assert_eq!(
            body["imRobotOpenSpaceModel"],
            json!({"supportForward": true})
        );
        assert!(body.get("imGroupOpenDeliverModel").is_none());
    }

    #[test]
    fn no_card_without_a_robot_code_or_a_one_to_one_userid() {
        let mut no_robot = reply(ConversationType::Group);
        no_robot.robot_code = None;
        let mut no_userid = reply(ConversationType::Single);
        no_userid.sender_staff_id = None;

        assert!(CardCreateAndDeliver::new("t", "o", &no_robot).is_none());
        assert!(CardCreateAndDeliver::new("t", "o", &no_userid).is_none());
    }

    #[test]
    fn streaming_updates_are_full_and_the_last_one_finalizes_or_fails() {
        let update = CardStreamingUpdate::new("track", "g1", "msgContent", "你好");

        assert_eq!(
            json_of(&update.to_json()),
            json!({"outTrackId": "track", "guid": "g1", "key": "msgContent", "content": "你好",
                   "isFull": true, "isFinalize": false, "isError": false})
        );
        let finished = json_of(&update.clone().last(false).to_json());
        assert_eq!(
            (finished["isFinalize"].clone(), finished["isError"].clone()),
            (json!(true), json!(false))
        );
        let failed = json_of(&update.last(true).to_json());
        assert_eq!(
            (failed["isFinalize"].clone(), failed["isError"].clone()),
            (json!(true), json!(true))
        );
    }

    #[test]
    fn instance_updates_carry_the_flow_status_as_a_string() {
        let finished =
            CardInstanceUpdate::new("track", FlowStatus::Finished, Some(("msgContent", "答")));
        let failed = CardInstanceUpdate::new("track", FlowStatus::Failed, None);

        assert_eq!(
            json_of(&finished.to_json()),
            json!({"outTrackId": "track", "cardData": {"cardParamMap": {"flowStatus": "3", "msgContent": "答"}}})
        );
        assert_eq!(
            json_of(&failed.to_json())["cardData"]["cardParamMap"],
            json!({"flowStatus": "5"})
        );
        assert_eq!(FlowStatus::Inputting.as_str(), "2");
    }

    #[test]
    fn the_out_track_id_is_stable_per_bot_and_message() {
        let id = out_track_id("shop", "msg-1");

        assert_eq!(id, out_track_id("shop", "msg-1"));
        assert_ne!(id, out_track_id("shop", "msg-2"));
        assert_ne!(id, out_track_id("other", "msg-1"));
        assert_eq!(id.len(), 64);
    }
}
