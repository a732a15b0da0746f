//! Agents end to end through the real OpenAI-compatible client against the loopback test
//! provider: routing, the tool-calling loop, step cap, failing tools, budgets, delegation,
//! the boardroom, idempotent inbound messages, conversation summaries.

use std::{path::PathBuf, time::Duration};

use aegis_core::{
    Aegis,
    agents::{AgentsConfig, ChatReply, InboundMessage},
    audit,
    knowledge::collect_files,
    tenancy::{Caller, NewTenant, TenantId, TenantScope, Tier},
};
use aegis_it::{
    config_for, fresh_db,
    provider::{Reply, TestProvider},
    test_models,
};
use serde_json::Value;

/// A platform whose models are the test provider's, with one pro tenant `acme`.
pub(crate) async fn platform(
    provider: Option<&TestProvider>,
    tune: impl FnOnce(&mut AgentsConfig),
) -> (Aegis, TenantScope) {
    let db = fresh_db().await;
    let mut config = config_for(&db);
    if let Some(provider) = provider {
        config.models = test_models(provider);
    }
    tune(&mut config.agents);
    let aegis = Aegis::builder().config(config).build().await.unwrap();
    let id = TenantId::parse("acme").unwrap();
    aegis
        .tenants()
        .create(&NewTenant { id: id.clone(), tier: Tier::Pro, name: None }, &Caller::system("test"))
        .await
        .unwrap();
    let scope = aegis.tenants().scope(&id, Caller::system("test")).await.unwrap();
    (aegis, scope)
}

pub(crate) fn message(channel: &str, thread: &str, text: &str) -> InboundMessage {
    InboundMessage {
        channel: channel.into(),
        source_id: uuid::Uuid::new_v4().to_string(),
        thread: thread.into(),
        sender: "ana".into(),
        text: text.into(),
        agent: None,
        boardroom: None,
    }
}

pub(crate) async fn say(aegis: &Aegis, scope: &TenantScope, text: &str) -> ChatReply {
    aegis.agents().handle(scope, &message("test", "t1", text), None).await.unwrap()
}

pub(crate) const REFUNDS: &str = "# Refund policy\n\nCustomers may return goods within 14 days of delivery for a full refund.\n\n## Exceptions\n\nGift cards cannot be refunded.\n";

pub(crate) async fn ingest_refunds(aegis: &Aegis, scope: &TenantScope) {
    let dir: PathBuf = std::env::temp_dir().join(format!("aegis-agents-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("refunds.md"), REFUNDS).unwrap();
    let files = collect_files(std::slice::from_ref(&dir)).unwrap();
    let outcomes = aegis.knowledge().ingest_files(scope, files, |_, _| {}).await;
    assert_eq!(outcomes.len(), 1);
}

fn tool_messages(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn routing_by_command_mention_binding_classifier_and_keywords() {
    let provider = TestProvider::start().await;
    let (aegis, scope) = platform(Some(&provider), |_| {}).await;
    let agents = aegis.agents();

    let reply = say(&aegis, &scope, "/agent luna a hook for our spring sale video").await;
    assert_eq!(reply.agent.as_deref(), Some("luna"));
    assert_eq!(reply.route.as_ref().unwrap()["method"], "command");
    assert_eq!(provider.received().len(), 1);

    let reply = say(&aegis, &scope, "@vera, is the supplier invoice due?").await;
    assert_eq!(reply.agent.as_deref(), Some("vera"));
    assert_eq!(reply.route.as_ref().unwrap()["method"], "mention");

    agents.bind(&scope, "telegram", "", "kai").await.unwrap();
    let reply = agents.handle(&scope, &message("telegram", "chat-9", "hello there"), None).await.unwrap();
    assert_eq!(reply.agent.as_deref(), Some("kai"));
    assert_eq!(reply.route.as_ref().unwrap()["method"], "binding");
    assert!(agents.bind(&scope, "telegram", "", "nobody").await.is_err(), "binding to an unknown agent is refused");

    // The classifier: a routing-intent call whose JSON answer names the agent.
    provider.push(
        "m1",
        [
            Reply::text(r#"{"agent": "echo", "confidence": 0.8, "reason": "a blog post"}"#, 30, 10),
            Reply::text("Here is a draft.", 50, 20),
        ],
    );
    let before = provider.received().len();
    let reply = agents.handle(&scope, &message("web", "w1", "we need something for the website"), None).await.unwrap();
    assert_eq!(reply.agent.as_deref(), Some("echo"));
    let route = reply.route.clone().unwrap();
    assert_eq!(route["method"], "classifier");
    assert_eq!(route["confidence"], 0.8);
    assert_eq!(route["candidates"].as_array().unwrap().len(), 7);
    let classifier = &provider.received()[before].body;
    assert_eq!(classifier["response_format"]["type"], "json_object");
    assert!(classifier["messages"][0]["content"].as_str().unwrap().contains("luna"));
    assert_eq!(reply.text, "Here is a draft.");

    // An unusable classifier answer falls back to the keywords, and says so.
    provider.push("m1", [Reply::text("I think support?", 30, 10)]);
    let reply =
        agents.handle(&scope, &message("web", "w2", "my order arrived damaged, I want a refund"), None).await.unwrap();
    assert_eq!(reply.agent.as_deref(), Some("kai"));
    let route = reply.route.unwrap();
    assert_eq!(route["method"], "keywords");
    assert!(route["reason"].as_str().unwrap().contains("classifier"), "{route}");

    // `/agent <name>` alone makes the conversation stick to that agent.
    say(&aegis, &scope, "/agent sage").await;
    let reply = say(&aegis, &scope, "what do our documents say about onboarding?").await;
    assert_eq!(reply.agent.as_deref(), Some("sage"));
    assert_eq!(reply.route.unwrap()["method"], "conversation");

    // Read-only commands never reach a model.
    let before = provider.received().len();
    for command in ["/help", "/agents", "/status", "/nonsense", "/agent ghost hi"] {
        let reply = say(&aegis, &scope, command).await;
        assert_eq!(reply.outcome, "command", "{command}");
    }
    assert_eq!(provider.received().len(), before);
    assert!(say(&aegis, &scope, "/agents").await.text.contains("Luna"));
    assert!(say(&aegis, &scope, "/agent ghost hi").await.text.contains("no agent `ghost`"));
}

#[tokio::test]
async fn the_model_calls_kb_search_and_answers_citing_the_document() {
    let provider = TestProvider::start().await;
    let (aegis, scope) = platform(Some(&provider), |c| c.kb_context_hits = 0).await;
    ingest_refunds(&aegis, &scope).await;
    provider.push(
        "m1",
        [
            Reply::ToolCalls(vec![("kb_search".into(), r#"{"query": "refund days"}"#.into())]),
            Reply::text("Returns are refunded within 14 days of delivery [1].", 80, 15),
        ],
    );
    let mut finished = aegis.agents().subscribe();
    let reply = say(&aegis, &scope, "/agent kai how long do refunds take?").await;
    assert_eq!(reply.outcome, "ok");
    assert_eq!(reply.text, "Returns are refunded within 14 days of delivery [1].");
    let event = finished.try_recv().expect("a finished run is announced");
    assert_eq!((event.run_id, event.agent.as_str(), event.tenant.as_str()), (reply.run_id, "kai", "acme"));
    // Citations are the passages the tool returned, in rank order, each with its anchor.
    assert!(reply.citations.iter().all(|c| c.source_key == "refunds.md"), "{:?}", reply.citations);
    assert!(reply.citations[0].span.contains("14 **days**"), "{:?}", reply.citations);
    assert!(reply.citations[0].anchor.contains("Refund policy"));
    let received = provider.received_for("m1");
    assert_eq!(received.len(), 2);
    assert!(received[0].body["tools"].as_array().unwrap().iter().any(|t| t["function"]["name"] == "kb_search"));
    let results = tool_messages(&received[1].body);
    assert_eq!(results.len(), 1);
    assert!(results[0].contains("refunds.md") && results[0].contains("14 days"), "{results:?}");

    // The run's stored requests are, as canonical JSON, exactly what the provider received.
    let timeline = audit::timeline(&scope, reply.run_id).await.unwrap();
    let stored: Vec<String> = timeline.runs[0]
        .steps
        .iter()
        .filter_map(|s| s.request.as_ref())
        .map(audit::canonical::canonical_json)
        .collect();
    let seen: Vec<String> = received.iter().map(|r| audit::canonical::canonical_json(&r.body)).collect();
    assert_eq!(stored, seen);
    let kinds: Vec<&str> = timeline.runs[0].steps.iter().map(|s| s.step.kind.as_str()).collect();
    assert_eq!(kinds, ["model_call", "tool_call", "model_call"]);
    let run = &timeline.runs[0].run;
    assert_eq!((run.tokens_in, run.tokens_out), (20 + 80, 10 + 15), "tokens come from the ledger");
    assert_eq!(run.prompt_hash.as_deref(), Some(audit::canonical::content_hash(&received[0].body).as_str()));
    let events: Vec<&str> = timeline.runs[0].events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(events, ["agent_routed", "tool_called"]);
    assert_eq!(audit::verify(&scope).await.unwrap().broken, None);

    // The conversation holds every message: user, the tool call, its result, the answer.
    let history = aegis.agents().conversation(&scope, reply.conversation_id).await.unwrap();
    let roles: Vec<&str> = history.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "tool", "assistant"]);
    assert!(history.messages[1].tool_calls.is_some());
    let kinds: Vec<(&str, &str)> = history.participants.iter().map(|p| (p.kind.as_str(), p.name.as_str())).collect();
    assert_eq!(kinds, [("user", "ana"), ("agent", "kai")]);
}

#[tokio::test]
async fn the_step_cap_stops_a_looping_model() {
    let provider = TestProvider::start().await;
    let (aegis, scope) = platform(Some(&provider), |c| c.max_steps = 3).await;
    provider.push("m1", (0..6).map(|_| Reply::ToolCalls(vec![("current_time".into(), "{}".into())])));
    let reply = say(&aegis, &scope, "/agent kai what time is it?").await;
    assert_eq!(reply.outcome, "step_limit");
    assert!(reply.text.contains("3 steps"), "{}", reply.text);
    assert_eq!(provider.received_for("m1").len(), 3);
}

#[tokio::test]
async fn a_failing_tool_goes_back_to_the_model_as_a_tool_message() {
    let provider = TestProvider::start().await;
    let (aegis, scope) = platform(Some(&provider), |c| c.kb_context_hits = 0).await;
    provider.push(
        "m1",
        [
            // Two calls in one reply: one with broken arguments, one to a tool kai may not use.
            Reply::ToolCalls(vec![
                ("kb_search".into(), "{not json".into()),
                ("ask_agent".into(), r#"{"agent":"nova","question":"x"}"#.into()),
            ]),
            Reply::text("Sorry, I could not look that up.", 40, 10),
        ],
    );
    let reply = say(&aegis, &scope, "/agent kai refunds?").await;
    assert_eq!(reply.outcome, "ok");
    let received = provider.received_for("m1");
    let results = tool_messages(&received[1].body);
    assert_eq!(results.len(), 2);
    assert!(results[0].starts_with("error: invalid arguments for `kb_search`"), "{results:?}");
    assert!(results[1].contains("not available to this agent"), "{results:?}");
    let timeline = audit::timeline(&scope, reply.run_id).await.unwrap();
    let outcomes: Vec<&Value> =
        timeline.runs[0].events.iter().filter(|e| e.event == "tool_called").map(|e| &e.data["outcome"]).collect();
    assert_eq!(outcomes, ["error", "error"]);
}

#[tokio::test]
async fn a_budget_exhausted_mid_turn_is_a_recorded_outcome() {
    let provider = TestProvider::start().await;
    // Each reply reports 1,500 + 500 tokens: the second call fits, the third would not.
    let (aegis, scope) = platform(Some(&provider), |c| c.turn_token_budget = 2_800).await;
    let time = || vec![("current_time".to_owned(), "{}".to_owned())];
    provider.push("m1", (0..5).map(|_| Reply::ToolCallsWithUsage(time(), (1_500, 500))));
    let reply = say(&aegis, &scope, "/agent kai what time is it?").await;
    assert_eq!(reply.outcome, "budget_exhausted");
    assert!(reply.text.contains("budget"), "{}", reply.text);
    let received = provider.received_for("m1");
    assert_eq!(received.len(), 2);
    // 800 tokens were left for the second call, its prompt included.
    assert!(received[1].body["max_tokens"].as_u64().unwrap() < 800, "the last call may only spend what is left");
    let timeline = audit::timeline(&scope, reply.run_id).await.unwrap();
    let run = &timeline.runs[0].run;
    assert_eq!(run.outcome, "budget_exhausted");
    assert_eq!(run.tokens_in + run.tokens_out, 4_000, "counted from the ledger");
    assert!(timeline.runs[0].steps.last().unwrap().step.detail["note"].as_str().unwrap().contains("budget"));

    // A budget the prompt alone exceeds makes no call at all.
    let (aegis, scope) = platform(Some(&provider), |c| c.turn_token_budget = 100).await;
    let before = provider.received().len();
    let reply = say(&aegis, &scope, "/agent kai what time is it?").await;
    assert_eq!(reply.outcome, "budget_exhausted");
    assert_eq!(provider.received().len(), before);
}

#[tokio::test]
async fn delegation_makes_child_runs_up_to_the_depth_limit() {
    let provider = TestProvider::start().await;
    let (aegis, scope) = platform(Some(&provider), |c| {
        c.max_delegation_depth = 1;
        c.kb_context_hits = 0;
    })
    .await;
    provider.push(
        "m1",
        [
            Reply::ToolCalls(vec![("ask_agent".into(), r#"{"agent": "nova", "question": "pipeline status?"}"#.into())]),
            Reply::ToolCalls(vec![("ask_agent".into(), r#"{"agent": "vera", "question": "cash?"}"#.into())]),
            Reply::text("Three deals are open.", 30, 5),
            Reply::text("Nova says three deals are open.", 30, 5),
        ],
    );
    let reply = say(&aegis, &scope, "/agent atlas how is sales doing?").await;
    assert_eq!(reply.outcome, "ok");
    assert_eq!(reply.text, "Nova says three deals are open.");
    let received = provider.received_for("m1");
    assert_eq!(received.len(), 4);
    assert!(
        tool_messages(&received[2].body)[0].contains("delegation depth limit (1)"),
        "nova may not delegate further"
    );
    assert!(tool_messages(&received[3].body)[0].contains("Three deals are open."));
    let timeline = audit::timeline(&scope, reply.run_id).await.unwrap();
    let tree: Vec<(Option<&str>, i32)> = timeline.runs.iter().map(|r| (r.run.agent.as_deref(), r.run.depth)).collect();
    assert_eq!(tree, [(Some("atlas"), 0), (Some("nova"), 1)]);
    assert_eq!(timeline.runs[1].run.parent_run_id, Some(reply.run_id));
}

#[tokio::test]
async fn a_delegation_is_not_cut_by_the_tool_timeout() {
    let provider = TestProvider::start().await;
    let (aegis, scope) = platform(Some(&provider), |c| {
        c.tool_timeout_secs = 1;
        c.kb_context_hits = 0;
    })
    .await;
    let slow = |reply: Reply| Reply::Delayed(Duration::from_millis(700), Box::new(reply));
    provider.push(
        "m1",
        [
            Reply::ToolCalls(vec![("ask_agent".into(), r#"{"agent": "nova", "question": "pipeline?"}"#.into())]),
            // Nova's run takes two 0.7 s calls: longer than one tool may take, as a run it may.
            slow(Reply::ToolCalls(vec![("current_time".into(), "{}".into())])),
            slow(Reply::text("Three deals are open.", 30, 5)),
            Reply::text("Nova says three deals are open.", 30, 5),
        ],
    );
    let reply = say(&aegis, &scope, "/agent atlas how is sales doing?").await;
    assert_eq!(reply.text, "Nova says three deals are open.");
    let received = provider.received_for("m1");
    assert!(
        tool_messages(&received[3].body)[0].contains("Three deals are open."),
        "{:?}",
        tool_messages(&received[3].body)
    );
}

#[tokio::test]
async fn the_boardroom_asks_in_parallel_and_the_chief_synthesizes() {
    let provider = TestProvider::start().await;
    let (aegis, scope) = platform(Some(&provider), |c| c.kb_context_hits = 0).await;
    let reply = say(&aegis, &scope, "/boardroom @vera @nova should we raise prices?").await;
    assert_eq!(reply.agent.as_deref(), Some("atlas"));
    let members: Vec<&str> = reply.members.iter().map(|m| m.agent.as_str()).collect();
    assert_eq!(members, ["vera", "nova"]);
    let received = provider.received_for("m1");
    assert_eq!(received.len(), 3);
    let synthesis =
        received.iter().find(|r| r.body["messages"][1]["content"].as_str().unwrap().contains("Synthesize")).unwrap();
    let brief = synthesis.body["messages"][1]["content"].as_str().unwrap();
    assert!(brief.contains("[vera] ok") && brief.contains("[nova] ok"), "{brief}");
    let timeline = audit::timeline(&scope, reply.run_id).await.unwrap();
    assert_eq!(timeline.runs[0].run.kind, "boardroom");
    assert_eq!(timeline.runs.len(), 4);
    assert!(timeline.runs[1..].iter().all(|r| r.run.parent_run_id == Some(reply.run_id)));
    assert_eq!(timeline.runs[0].run.tokens_in, 30, "the boardroom run sums its children's ledger rows");
}

#[tokio::test]
async fn calls_in_flight_at_once_never_hold_more_than_the_turn_budget() {
    let provider = TestProvider::start().await;
    let (budget, output) = (2_000i64, 400u32);
    let (aegis, scope) = platform(Some(&provider), |c| {
        c.kb_context_hits = 0;
        c.turn_token_budget = budget;
        c.max_output_tokens = output;
    })
    .await;
    // The members answer slowly, so that all of them are in flight together.
    let slow = || Reply::Slow(Duration::from_millis(400), "ok".into(), (1, 1));
    provider.push("m1", (0..4).map(|_| slow()));
    let reply = say(&aegis, &scope, "/boardroom @vera @nova @sage should we raise prices?").await;
    let members: Vec<Value> = provider
        .received_for("m1")
        .into_iter()
        .map(|r| r.body)
        .filter(|b| !b["messages"][1]["content"].as_str().unwrap_or_default().contains("Synthesize"))
        .collect();
    // What each call could spend at most: its prompt (estimated as AEGIS does, bytes / 3)
    // plus the output it was allowed.
    let worst: Vec<i64> = members
        .iter()
        .map(|b| (serde_json::to_vec(&b["messages"]).unwrap().len() / 3) as i64 + b["max_tokens"].as_i64().unwrap())
        .collect();
    assert!(worst.iter().sum::<i64>() <= budget, "the members in flight together were allowed {worst:?} of {budget}");
    assert!(!members.is_empty() && members.len() < 3, "{} members called a model", members.len());
    let outcomes: Vec<&str> = reply.members.iter().map(|m| m.outcome.as_str()).collect();
    assert!(outcomes.contains(&"budget_exhausted"), "{outcomes:?}");
}

#[tokio::test]
async fn the_same_inbound_message_twice_gives_one_model_call_and_the_same_reply() {
    let provider = TestProvider::start().await;
    let (aegis, scope) = platform(Some(&provider), |_| {}).await;
    provider.push("m1", [Reply::Slow(Duration::from_millis(300), "Hello from Kai.".into(), (10, 3))]);
    let mut m = message("telegram", "chat-1", "/agent kai hi");
    m.source_id = "update-4711".into();
    let (a, b) = tokio::join!(aegis.agents().handle(&scope, &m, None), aegis.agents().handle(&scope, &m, None));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.text, "Hello from Kai.");
    assert_eq!((a.text.as_str(), a.run_id), (b.text.as_str(), b.run_id));
    assert!(a.replayed != b.replayed, "one answered, the other replayed");
    let again = aegis.agents().handle(&scope, &m, None).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.run_id, a.run_id);
    assert_eq!(provider.received_for("m1").len(), 1);
    let history = aegis.agents().conversation(&scope, a.conversation_id).await.unwrap();
    assert_eq!(history.messages.len(), 2, "stored once");

    // The same id with other content is refused, not answered from the store.
    let mut forged = m.clone();
    forged.text = "/agent kai transfer the money".into();
    let err = aegis.agents().handle(&scope, &forged, None).await.unwrap_err();
    assert!(matches!(err, aegis_core::agents::AgentError::Conflict(_)), "{err}");
    let mut empty = message("telegram", "chat-1", "   ");
    empty.source_id = "update-4712".into();
    assert!(aegis.agents().handle(&scope, &empty, None).await.is_err());
    let mut nul = message("telegram", "chat-1", "a\0b");
    nul.source_id = "update-4713".into();
    assert!(aegis.agents().handle(&scope, &nul, None).await.is_err());

    // A delivery that crashed mid-answer left its claim to lapse: the next one answers.
    let mut crashed = message("telegram", "chat-2", "/agent kai are you there?");
    crashed.source_id = "update-5000".into();
    sqlx::query(
        "INSERT INTO tenant_acme.inbound_messages (channel, source_id, thread, sender, text, status, claimed_until, received_at) \
         VALUES ($1, $2, $3, $4, $5, 'processing', now() - interval '1 second', now())",
    )
    .bind(&crashed.channel)
    .bind(&crashed.source_id)
    .bind(&crashed.thread)
    .bind(&crashed.sender)
    .bind(&crashed.text)
    .execute(aegis.db().pool())
    .await
    .unwrap();
    let reply = aegis.agents().handle(&scope, &crashed, None).await.unwrap();
    assert_eq!((reply.outcome.as_str(), reply.replayed), ("ok", false));
    let attempts: i32 =
        sqlx::query_scalar("SELECT attempts FROM tenant_acme.inbound_messages WHERE source_id = 'update-5000'")
            .fetch_one(aegis.db().pool())
            .await
            .unwrap();
    assert_eq!(attempts, 2);

    // An answered message is history, even to the tenant's own role: a rewritten reply
    // would be replayed as the agent's, a deleted row would let a replay run again.
    let calls = provider.received_for("m1").len();
    for sql in [
        "UPDATE inbound_messages SET reply = jsonb_set(reply, '{text}', '\"pay now\"') WHERE source_id = 'update-4711'",
        "UPDATE inbound_messages SET status = 'failed' WHERE source_id = 'update-4711'",
        "DELETE FROM inbound_messages WHERE source_id = 'update-4711'",
    ] {
        let mut tx = scope.begin().await.unwrap();
        let err = sqlx::query(sql).execute(tx.conn()).await.unwrap_err().to_string();
        assert!(err.contains("history"), "{sql}: {err}");
    }
    let again = aegis.agents().handle(&scope, &m, None).await.unwrap();
    assert_eq!((again.text.as_str(), again.replayed), ("Hello from Kai.", true));
    assert_eq!(provider.received_for("m1").len(), calls, "answered from the store");
}

#[tokio::test]
async fn a_long_history_is_summarized_and_never_deleted() {
    let provider = TestProvider::start().await;
    let (aegis, scope) = platform(Some(&provider), |c| {
        c.history_token_budget = 10;
        c.keep_recent_messages = 2;
        c.kb_context_hits = 0;
    })
    .await;
    provider.push(
        "m1",
        [
            Reply::text("answer one", 10, 2),
            Reply::text("answer two", 10, 2),
            Reply::text("SUMMARY: Ana asked about the first topic.", 10, 8),
            Reply::text("answer three", 10, 2),
        ],
    );
    for text in ["first question about topic one", "second question", "third question"] {
        let mut m = message("web", "long", text);
        m.agent = Some("sage".into());
        aegis.agents().handle(&scope, &m, None).await.unwrap();
    }
    let received = provider.received_for("m1");
    assert_eq!(received.len(), 4);
    let last: Vec<String> = received[3].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(last.iter().any(|c| c.contains("SUMMARY: Ana asked")), "{last:?}");
    assert!(
        !last.iter().any(|c| c == "first question about topic one"),
        "the summary replaces the old turns: {last:?}"
    );
    assert!(last.iter().any(|c| c == "second question"));
    let list = aegis.agents().conversations(&scope, 10).await.unwrap();
    let history = aegis.agents().conversation(&scope, list[0].id).await.unwrap();
    let roles: Vec<&str> = history.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant", "summary", "user", "assistant"]);
    assert_eq!(history.messages[4].covers_through, Some(history.messages[1].seq));
}
