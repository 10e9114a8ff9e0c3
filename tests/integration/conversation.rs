//! The conversation core on both stores: memory, expiry, commands, farewell, rules, welcome, sources.

use std::time::Duration;

use crate::common::{core, echo, message, say, Extra, StoreKind, BOT, FAREWELL, WELCOME};
use botgate::core::commands::{HELP_TEXT, RESET_CONFIRMATION};
use botgate::core::{Reply, ReplyKind};
use botgate_contract::Content;
use botgate_testkit::Answer;

on_both_stores!(
    memory_grows_turn_by_turn,
    memory_keeps_only_max_turns,
    memory_expires_after_idle_ttl,
    activity_keeps_memory_alive,
    reset_commands_clear_memory,
    farewell_answers_without_llm_and_clears_memory,
    leaving_clears_memory,
);

// Answer::Echo reports the number of *messages* before the question: two per remembered turn.

async fn memory_grows_turn_by_turn(store: StoreKind) {
    let core = core(store, Extra::default()).await;

    let first = core.say("alice", "你好").await;
    let second = core.say("alice", "我的订单呢").await;
    let third = core.say("alice", "谢谢").await;
    let stranger = core.say("bob", "你好").await;

    assert_eq!(first, answer(&echo("你好", 0)));
    assert_eq!(second, answer(&echo("我的订单呢", 2)));
    assert_eq!(third, answer(&echo("谢谢", 4)));
    assert_eq!(
        stranger,
        answer(&echo("你好", 0)),
        "conversations share no memory"
    );
    let last = core.fake.requests().pop().expect("a request was sent");
    assert_eq!(last.body["input"]["messages"][0]["content"], "你好");
}

async fn memory_keeps_only_max_turns(store: StoreKind) {
    let core = core(
        store,
        Extra {
            store: "max_turns = 2",
            ..Extra::default()
        },
    )
    .await;

    let mut histories = Vec::new();
    for turn in 1..=5 {
        let reply = core.say("alice", &format!("第{turn}句")).await;
        histories.push(crate::common::echoed_history(&reply.text));
    }

    assert_eq!(histories, [0, 2, 4, 4, 4]);
    let last = core.fake.requests().pop().expect("a request was sent");
    let messages = last.body["input"]["messages"]
        .as_array()
        .expect("input.messages is an array");
    let users: Vec<&str> = messages
        .iter()
        .filter(|message| message["role"] == "user")
        .filter_map(|message| message["content"].as_str())
        .collect();
    assert_eq!(
        users,
        ["第3句", "第4句", "第5句"],
        "the oldest turns went first"
    );
}

async fn memory_expires_after_idle_ttl(store: StoreKind) {
    let core = core(
        store,
        Extra {
            store: "session_ttl_secs = 1",
            ..Extra::default()
        },
    )
    .await;
    core.say("alice", "你好").await;
    let before = core.say("alice", "还在吗").await;

    // The feature under test is a 1 s idle timeout: waiting past it is the scenario itself.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let after = core.say("alice", "又来了").await;

    assert_eq!(before.text, echo("还在吗", 2));
    assert_eq!(after.text, echo("又来了", 0), "memory expired while idle");
}

async fn activity_keeps_memory_alive(store: StoreKind) {
    let core = core(
        store,
        Extra {
            store: "session_ttl_secs = 1",
            ..Extra::default()
        },
    )
    .await;

    // Five turns half a TTL apart: 2 s in all, but never 1 s idle.
    let mut histories = Vec::new();
    for turn in 0..5 {
        if turn > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let reply = core.say("alice", &format!("第{turn}句")).await;
        histories.push(crate::common::echoed_history(&reply.text));
    }

    assert_eq!(
        histories,
        [0, 2, 4, 6, 8],
        "each turn restarts the idle TTL"
    );
}

async fn reset_commands_clear_memory(store: StoreKind) {
    let core = core(store, Extra::default()).await;
    for command in ["/reset", "/new", "清除记忆", "新对话", " /RESET "] {
        core.say("alice", "记住我").await;
        let calls = core.fake.calls();

        let confirmation = core.say("alice", command).await;
        let next = core.say("alice", "你还记得吗").await;

        assert_eq!(
            confirmation,
            Reply {
                text: RESET_CONFIRMATION.to_owned(),
                kind: ReplyKind::Command,
            },
            "{command}"
        );
        assert_eq!(next.text, echo("你还记得吗", 0), "{command} cleared memory");
        assert_eq!(core.fake.calls(), calls + 1, "{command} made no LLM call");
    }
}

async fn farewell_answers_without_llm_and_clears_memory(store: StoreKind) {
    let core = core(store, Extra::default()).await;
    for farewell in ["再见", "Bye!", "谢谢，再见。"] {
        core.say("alice", "记住我").await;
        let calls = core.fake.calls();

        let reply = core.say("alice", farewell).await;

        assert_eq!(
            reply,
            Reply {
                text: FAREWELL.to_owned(),
                kind: ReplyKind::Farewell,
            },
            "{farewell}"
        );
        assert_eq!(core.fake.calls(), calls, "{farewell} made no LLM call");
        let next = core.say("alice", "又是我").await;
        assert_eq!(next.text, echo("又是我", 0), "{farewell} cleared memory");
    }
}

async fn leaving_clears_memory(store: StoreKind) {
    let core = core(store, Extra::default()).await;
    core.say("alice", "记住我").await;

    let reply = core
        .conversations
        .handle(BOT, &message("alice", Content::Left), None)
        .await
        .expect("the core handles the message");

    assert_eq!(reply, None, "leaving gets no reply");
    let next = core.say("alice", "我回来了").await;
    assert_eq!(next.text, echo("我回来了", 0));
}

#[tokio::test]
async fn replicas_on_one_redis_share_memory() {
    let core = core(StoreKind::Redis, Extra::default()).await;
    let redis = core.redis.as_ref().expect("a Redis core");
    let text = crate::common::config_text(&core.fake, Some(&redis.url()), Extra::default());
    let replica = crate::common::conversations(&crate::common::parse(&text)).await;
    core.say("alice", "你好").await;

    let reply = say(&replica, "alice", "还是我").await;

    assert_eq!(
        reply.text,
        echo("还是我", 2),
        "the other replica saw the turn"
    );
}

#[tokio::test]
async fn help_lists_the_commands_without_llm() {
    let core = core(StoreKind::Embedded, Extra::default()).await;

    let reply = core.say("alice", "/help").await;
    let chinese = core.say("alice", "帮助").await;

    assert_eq!(reply.kind, ReplyKind::Command);
    assert_eq!(reply.text, HELP_TEXT);
    assert_eq!(chinese, reply);
    for command in ["/reset", "/new", "/help", "再见"] {
        assert!(reply.text.contains(command), "help mentions {command}");
    }
    assert_eq!(core.fake.calls(), 0);
}

#[tokio::test]
async fn commands_are_whole_messages_only() {
    let core = core(StoreKind::Embedded, Extra::default()).await;

    let reply = core.say("alice", "/reset my password please").await;
    let not_farewell = core.say("alice", "再见面的时候").await;

    assert_eq!(reply, answer(&echo("/reset my password please", 0)));
    assert_eq!(not_farewell, answer(&echo("再见面的时候", 2)));
}

const FAQ: &str = r#"
[llm.faq]
kind = "rules"

[[llm.faq.rules]]
keywords = ["退货"]
answer = "七天无理由退货。"
"#;

#[tokio::test]
async fn a_rule_hit_costs_no_llm_call() {
    let core = core(
        StoreKind::Embedded,
        Extra {
            bot: r#"rules = "faq""#,
            tables: FAQ,
            ..Extra::default()
        },
    )
    .await;

    let hit = core.say("alice", "我想退货").await;
    let miss = core.say("alice", "今天发货吗").await;

    assert_eq!(
        hit,
        Reply {
            text: "七天无理由退货。".to_owned(),
            kind: ReplyKind::Rule,
        }
    );
    assert_eq!(
        miss,
        answer(&echo("今天发货吗", 2)),
        "the rule's turn is remembered for the LLM"
    );
    assert_eq!(core.fake.calls(), 1, "only the miss reached the LLM");
}

#[tokio::test]
async fn a_bot_without_any_llm_answers_from_embedded_rules() {
    let settings = crate::common::parse("[bots.shop]\n");
    let conversations = crate::common::conversations(&settings).await;

    let reply = say(&conversations, "alice", "你们几点开门？").await;

    assert_eq!(
        reply,
        Reply {
            text: botgate::config::default_rules_answer(),
            kind: ReplyKind::Rule,
        }
    );
}

#[tokio::test]
async fn first_contact_gets_the_welcome() {
    let core = core(StoreKind::Embedded, Extra::default()).await;

    let reply = core
        .conversations
        .handle(BOT, &message("alice", Content::FirstContact), None)
        .await
        .expect("the core handles the message");

    assert_eq!(
        reply,
        Some(Reply {
            text: WELCOME.to_owned(),
            kind: ReplyKind::Welcome,
        })
    );
    assert_eq!(core.fake.calls(), 0);
}

#[tokio::test]
async fn sources_are_appended_when_the_bot_shows_them() {
    for stream in [true, false] {
        let core = core(
            StoreKind::Embedded,
            Extra {
                llm: &format!("stream = {stream}"),
                bot: "show_sources = true",
                ..Extra::default()
            },
        )
        .await;
        core.fake.set_answer(with_references());

        let reply = core.say("alice", "怎么退货？").await;

        assert_eq!(
            reply.text, "请在订单页申请售后。\n\n来源：\n1. 退货政策.pdf\n2. 售后手册.docx",
            "stream = {stream}"
        );
        assert_eq!(reply.kind, ReplyKind::Answer);
    }
}

#[tokio::test]
async fn sources_stay_hidden_by_default() {
    let core = core(StoreKind::Embedded, Extra::default()).await;
    core.fake.set_answer(with_references());

    let reply = core.say("alice", "怎么退货？").await;

    assert_eq!(reply.text, "请在订单页申请售后。");
}

#[tokio::test]
async fn an_unknown_bot_is_an_error() {
    let core = core(StoreKind::Embedded, Extra::default()).await;

    let result = core
        .conversations
        .handle("nobody", &crate::common::text("alice", "你好"), None)
        .await;

    assert!(
        matches!(result, Err(botgate::core::CoreError::UnknownBot(ref name)) if name == "nobody"),
        "{result:?}"
    );
    assert_eq!(core.fake.calls(), 0);
}

/// An answer citing two documents, one of them twice (listed once).
fn with_references() -> Answer {
    Answer::WithReferences {
        text: "请在订单页申请售后。".to_owned(),
        references: vec![
            ("退货政策.pdf".to_owned(), "退货".to_owned()),
            ("售后手册.docx".to_owned(), "售后".to_owned()),
            ("退货政策.pdf".to_owned(), "退货（续）".to_owned()),
        ],
    }
}

fn answer(text: &str) -> Reply {
    Reply {
        text: text.to_owned(),
        kind: ReplyKind::Answer,
    }
}
