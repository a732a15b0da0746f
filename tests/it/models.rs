//! The model layer through the real OpenAI-compatible client against a loopback provider:
//! fallback, retries, faults, cooldown, streams, the ledger, the decision log and quotas.

use std::{sync::Arc, time::Duration};

use aegis_core::{
    Aegis,
    clock::ManualClock,
    llm::{
        CallScope, ModelError, Target,
        types::{ChatRequest, Message, StreamAccumulator},
    },
    policy::{
        Intent,
        meters::{PREMIUM_SPEND, Window},
    },
    tenancy::Tier,
};
use aegis_it::{
    aegis_with_models,
    provider::{Reply, TestProvider},
};
use futures::StreamExt;

fn scope(tier: Tier) -> CallScope {
    CallScope { tenant: format!("{tier}_t"), tier, caller: "test".into(), run_id: None }
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new(vec![Message::user(text)])
}

fn chat() -> Target {
    Target::Intent(Intent::Chat)
}

/// (model, attempt, outcome, error_class, priced, cost, stream) of a decision's ledger rows.
type Row = (String, i32, String, Option<String>, bool, Option<i64>, bool);

async fn ledger(aegis: &Aegis, decision: uuid::Uuid) -> Vec<Row> {
    aegis.models().flush().await;
    sqlx::query_as(
        "SELECT model, attempt, outcome, error_class, priced, cost_micro_usd, stream FROM public.provider_ledger \
         WHERE decision_id = $1 ORDER BY at, attempt",
    )
    .bind(decision)
    .fetch_all(aegis.db().pool())
    .await
    .unwrap()
}

async fn last_decision(aegis: &Aegis, tenant: &str) -> uuid::Uuid {
    aegis.models().flush().await;
    sqlx::query_scalar("SELECT id FROM public.ai_audit_log WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1")
        .bind(tenant)
        .fetch_one(aegis.db().pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn falls_back_in_order_and_records_every_attempt() {
    let provider = TestProvider::start().await;
    let aegis = aegis_with_models(&provider, None).await;
    provider.push("m1", [Reply::Status(500, "boom".into()), Reply::Status(503, "still down".into())]);
    provider.push("m2", [Reply::text("from m2", 12, 3)]);
    let done = aegis.models().complete(&scope(Tier::Free), &chat(), &ask("hi")).await.unwrap();
    assert_eq!(done.model, "beta/m2");
    assert_eq!(done.response.message().unwrap().text(), "from m2");
    assert_eq!(done.cost_micro_usd, Some(9)); // 12 × 0.5 + 3 × 1.0 µ$
    let rows = ledger(&aegis, done.decision.id).await;
    let summary: Vec<(&str, i32, &str, Option<&str>)> =
        rows.iter().map(|r| (r.0.as_str(), r.1, r.2.as_str(), r.3.as_deref())).collect();
    assert_eq!(
        summary,
        [
            ("alpha/m1", 1, "error", Some("server_error")),
            ("alpha/m1", 2, "error", Some("server_error")),
            ("beta/m2", 1, "ok", None)
        ]
    );
    assert!(rows.iter().all(|r| r.4), "HTTP errors cost nothing and are priced at 0");
    // The decision is in the audit log, with the chain it permitted.
    let (alias, chain, reason, allowed): (String, serde_json::Value, String, bool) =
        sqlx::query_as("SELECT alias, chain, reason, allowed FROM public.ai_audit_log WHERE id = $1")
            .bind(done.decision.id)
            .fetch_one(aegis.db().pool())
            .await
            .unwrap();
    assert_eq!((alias.as_str(), reason.as_str(), allowed), ("fast", "intent_default", true));
    assert_eq!(chain, serde_json::json!(["alpha/m1", "beta/m2"]));
    // The provider got the upstream model name, the provider's key and AEGIS's user agent.
    let sent = provider.received_for("m2");
    assert_eq!(sent[0].auth.as_deref(), Some("beta-key"));
    assert_eq!(sent[0].user_agent, Some(format!("aegis/{}", env!("CARGO_PKG_VERSION"))));
    assert_eq!(sent[0].body["messages"][0]["content"], "hi");
}

/// An intent walks every alias its tier lists, in turn: the business tier's chat is
/// `premium` then `fast`, so when every model of `premium` fails, `fast`'s own model
/// answers; each attempt's ledger row names the alias it was permitted through.
#[tokio::test]
async fn an_intent_falls_back_across_the_aliases_its_tier_lists() {
    let provider = TestProvider::start().await;
    let aegis = aegis_with_models(&provider, None).await;
    provider.push("p1", [Reply::Status(500, "down".into()), Reply::Status(500, "down".into())]);
    provider.push("m1", [Reply::Status(503, "down".into()), Reply::Status(503, "down".into())]);
    provider.push("m2", [Reply::text("from fast", 10, 2)]);
    let done = aegis.models().complete(&scope(Tier::Business), &chat(), &ask("hi")).await.unwrap();
    assert_eq!(done.model, "beta/m2");
    assert_eq!(done.decision.chain, ["alpha/p1", "alpha/m1", "beta/m2"]);
    aegis.models().flush().await;
    let rows: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT alias, model, attempt FROM public.provider_ledger WHERE decision_id = $1 ORDER BY at, attempt",
    )
    .bind(done.decision.id)
    .fetch_all(aegis.db().pool())
    .await
    .unwrap();
    let rows: Vec<(&str, &str, i32)> = rows.iter().map(|(a, m, n)| (a.as_str(), m.as_str(), *n)).collect();
    assert_eq!(
        rows,
        [
            ("premium", "alpha/p1", 1),
            ("premium", "alpha/p1", 2),
            ("premium", "alpha/m1", 1),
            ("premium", "alpha/m1", 2),
            ("fast", "beta/m2", 1)
        ]
    );
    // Asked for by name, an alias is walked alone.
    provider.push("p1", [Reply::Status(500, "down".into()), Reply::Status(500, "down".into())]);
    provider.push("m1", [Reply::Status(503, "down".into()), Reply::Status(503, "down".into())]);
    let premium = Target::parse("premium", Intent::Chat).unwrap();
    let err = aegis.models().complete(&scope(Tier::Business), &premium, &ask("hi")).await.unwrap_err();
    let ModelError::AllFailed(err) = err else { panic!("{err}") };
    assert!(err.attempts.iter().all(|a| a.model != "beta/m2"), "{err}");
}

#[tokio::test]
async fn a_bad_request_stops_the_walk_and_all_failures_are_listed() {
    let provider = TestProvider::start().await;
    let aegis = aegis_with_models(&provider, None).await;
    provider.push("m1", [Reply::Status(400, "temperature must be <= 2".into())]);
    let err = aegis.models().complete(&scope(Tier::Free), &chat(), &ask("hi")).await.unwrap_err();
    let ModelError::AllFailed(err) = err else { panic!("{err}") };
    assert!(err.is_bad_request());
    assert!(provider.received_for("m2").is_empty(), "a bad request is not retried elsewhere");

    provider.push("m1", [Reply::RateLimited(0.001), Reply::Malformed]);
    provider.push("m2", [Reply::Status(502, "bad gateway".into()), Reply::Status(401, "bad key".into())]);
    let err = aegis.models().complete(&scope(Tier::Free), &chat(), &ask("hi")).await.unwrap_err();
    let ModelError::AllFailed(err) = err else { panic!("{err}") };
    let classes: Vec<&str> = err.attempts.iter().map(|a| a.class.as_str()).collect();
    assert_eq!(classes, ["rate_limited", "malformed", "server_error", "auth"]);
    let text = err.to_string();
    assert!(text.contains("alpha/m1 #1") && text.contains("beta/m2 #2") && text.contains("bad key"), "{text}");
}

#[tokio::test]
async fn a_timeout_is_retried_and_recorded_as_unpriced() {
    let provider = TestProvider::start().await;
    let aegis = aegis_with_models(&provider, None).await;
    provider.push("m1", [Reply::Hang(Duration::from_secs(3))]);
    let before = aegis.models().ledger().unpriced_calls();
    let done = aegis.models().complete(&scope(Tier::Pro), &chat(), &ask("hi")).await.unwrap();
    assert_eq!(done.model, "alpha/m1", "the retry on the same model answered");
    let rows = ledger(&aegis, done.decision.id).await;
    assert_eq!(rows[0].3.as_deref(), Some("timeout"));
    assert!(!rows[0].4 && rows[0].5.is_none(), "a timed-out call may have been billed: unpriced, not 0");
    assert!(rows[1].4);
    assert_eq!(aegis.models().ledger().unpriced_calls(), before + 1);
}

#[tokio::test]
async fn streams_fall_back_only_before_the_first_chunk() {
    let provider = TestProvider::start().await;
    let aegis = aegis_with_models(&provider, None).await;
    provider.push("m1", [Reply::Status(500, "a".into()), Reply::Status(500, "b".into())]);
    provider.push("m2", [Reply::text("hello from the fallback", 15, 5)]);
    let (decision, mut stream) = aegis.models().stream(&scope(Tier::Free), &chat(), &ask("hi")).await.unwrap();
    assert_eq!(stream.model(), "beta/m2");
    let mut acc = StreamAccumulator::default();
    while let Some(chunk) = stream.next().await {
        acc.push(&chunk.unwrap());
    }
    assert_eq!(acc.clone().finish().message().unwrap().text(), "hello from the fallback");
    // Upstream was asked for usage, and the streamed attempt is priced in the ledger.
    assert_eq!(provider.received_for("m2")[0].body["stream_options"]["include_usage"], true);
    let rows = ledger(&aegis, decision.id).await;
    let last = rows.last().unwrap();
    assert_eq!((last.0.as_str(), last.2.as_str(), last.4, last.5, last.6), ("beta/m2", "ok", true, Some(13), true)); // 15 × 0.5 + 5 × 1.0, rounded up
    assert_eq!(rows.len(), 3);

    // After the first chunk, a broken stream is the caller's error, not a fallback.
    provider.push("m1", [Reply::Disconnect("partial ".into())]);
    let (decision, mut stream) = aegis.models().stream(&scope(Tier::Free), &chat(), &ask("hi")).await.unwrap();
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item);
    }
    assert!(items[..items.len() - 1].iter().all(Result::is_ok));
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.class.as_str(), "connection");
    drop(stream);
    let rows = ledger(&aegis, decision.id).await;
    assert_eq!(rows.len(), 1, "no fallback after the first chunk");
    assert_eq!((rows[0].2.as_str(), rows[0].4), ("error", false), "cut off mid-stream: unpriced");
}

#[tokio::test]
async fn tool_call_pieces_split_across_chunks_are_reassembled() {
    let provider = TestProvider::start().await;
    let aegis = aegis_with_models(&provider, None).await;
    let args = r#"{"query":"refund policy","k":3}"#;
    provider
        .push("m1", [Reply::ToolCalls(vec![("kb_search".into(), args.into()), ("current_time".into(), "{}".into())])]);
    let (_, mut stream) = aegis.models().stream(&scope(Tier::Free), &chat(), &ask("refunds?")).await.unwrap();
    let mut acc = StreamAccumulator::default();
    while let Some(chunk) = stream.next().await {
        acc.push(&chunk.unwrap());
    }
    let response = acc.finish();
    let calls = response.message().unwrap().tool_calls.clone().unwrap();
    assert_eq!(calls[0].function.name, "kb_search");
    assert_eq!(calls[0].function.arguments, args);
    assert_eq!(calls[1].function.name, "current_time");
    assert_eq!(response.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(response.usage.unwrap().total_tokens, 30);
}

#[tokio::test]
async fn a_failing_model_cools_down_and_is_retried_after_the_cooldown() {
    let provider = TestProvider::start().await;
    let clock = ManualClock::new();
    let aegis = aegis_with_models(&provider, Some(Arc::new(clock.clone()))).await;
    let down = || Reply::Status(500, "down".into());
    provider.push("m1", [down(), down(), down()]);
    // Call 1: two failures on m1, then m2. Call 2: the third failure starts the cooldown.
    for _ in 0..2 {
        let done = aegis.models().complete(&scope(Tier::Free), &chat(), &ask("hi")).await.unwrap();
        assert_eq!(done.model, "beta/m2");
    }
    assert_eq!(provider.received_for("m1").len(), 3);
    // Call 3: m1 is skipped without a request.
    let done = aegis.models().complete(&scope(Tier::Free), &chat(), &ask("hi")).await.unwrap();
    assert_eq!(done.model, "beta/m2");
    assert_eq!(provider.received_for("m1").len(), 3, "a cooling model gets no requests");
    // After the cooldown, m1 is tried again and answers.
    clock.advance(chrono::Duration::seconds(31));
    let done = aegis.models().complete(&scope(Tier::Free), &chat(), &ask("hi")).await.unwrap();
    assert_eq!(done.model, "alpha/m1");
    assert_eq!(provider.received_for("m1").len(), 4);
}

#[tokio::test]
async fn an_unsettled_reservation_is_freed_after_its_ttl() {
    let provider = TestProvider::start().await;
    let clock = ManualClock::new();
    let aegis = aegis_with_models(&provider, Some(Arc::new(clock.clone()))).await;
    let meters = aegis.models().meters();
    let held = meters
        .reserve("business_t", PREMIUM_SPEND, Window::CalendarMonth, 1_000, 400, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(meters.usage("business_t", PREMIUM_SPEND, Window::CalendarMonth).await.unwrap().reserved, 400);
    assert_eq!(meters.sweep_expired().await.unwrap(), 0, "not yet expired");
    clock.advance(chrono::Duration::seconds(61));
    assert_eq!(meters.sweep_expired().await.unwrap(), 1);
    let usage = meters.usage("business_t", PREMIUM_SPEND, Window::CalendarMonth).await.unwrap();
    assert_eq!((usage.used, usage.reserved), (0, 0));
    assert!(!meters.settle(&held, Some(10)).await.unwrap(), "a freed reservation cannot be settled");
}

#[tokio::test]
async fn finished_reservations_are_deleted_once_kept_long_enough_and_held_ones_never() {
    let provider = TestProvider::start().await;
    let clock = ManualClock::new();
    let aegis = aegis_with_models(&provider, Some(Arc::new(clock.clone()))).await;
    let meters = aegis.models().meters();
    let reserve = |ttl_days: u64| {
        meters.reserve(
            "business_t",
            PREMIUM_SPEND,
            Window::CalendarMonth,
            1_000,
            100,
            Duration::from_secs(ttl_days * 86_400),
        )
    };
    let settled = reserve(1).await.unwrap();
    assert!(meters.settle(&settled, Some(40)).await.unwrap());
    let released = reserve(1).await.unwrap();
    assert!(meters.release(&released).await.unwrap());
    let _held = reserve(100).await.unwrap();
    let rows = || async {
        let statuses: Vec<String> = sqlx::query_scalar(
            "SELECT status FROM public.usage_reservations WHERE tenant_id = 'business_t' ORDER BY status",
        )
        .fetch_all(aegis.db().pool())
        .await
        .unwrap();
        let spent: (i64, i64) = sqlx::query_as(
            "SELECT sum(used)::bigint, sum(reserved)::bigint FROM public.usage_meters WHERE tenant_id = 'business_t'",
        )
        .fetch_one(aegis.db().pool())
        .await
        .unwrap();
        (statuses, spent)
    };
    let kept = Duration::from_secs(35 * 86_400);
    clock.advance(chrono::Duration::days(34));
    assert_eq!(meters.prune_finished(kept).await.unwrap(), 0, "not kept long enough yet");
    assert_eq!(rows().await.0, ["held", "released", "settled"]);
    clock.advance(chrono::Duration::days(2));
    assert_eq!(meters.prune_finished(kept).await.unwrap(), 2);
    assert_eq!(rows().await, (vec!["held".to_owned()], (40, 100)), "the meter keeps the spend and the hold");
    assert_eq!(meters.prune_finished(kept).await.unwrap(), 0);
}

#[tokio::test]
async fn a_tenants_limit_override_wins_over_the_default_at_once() {
    let provider = TestProvider::start().await;
    let aegis = aegis_with_models(&provider, None).await;
    let meters = aegis.models().meters();
    let reserve = |amount| {
        meters.reserve("business_t", PREMIUM_SPEND, Window::CalendarMonth, 1_000, amount, Duration::from_secs(60))
    };
    reserve(400).await.unwrap();
    meters.set_limit_override("business_t", PREMIUM_SPEND, Some(500)).await.unwrap();
    match reserve(400).await {
        Err(aegis_core::policy::meters::MeterError::Exceeded { limit, reserved, .. }) => {
            assert_eq!((limit, reserved), (500, 400))
        }
        other => panic!("the override of 500 must refuse 400 + 400: {other:?}"),
    }
    meters.set_limit_override("business_t", PREMIUM_SPEND, Some(2_000)).await.unwrap();
    reserve(1_200).await.expect("the raised override admits what the default would not");
    meters.set_limit_override("business_t", PREMIUM_SPEND, None).await.unwrap();
    assert!(reserve(1).await.is_err(), "back on the default of 1,000 with 1,600 held");
    assert_eq!(meters.usage("business_t", PREMIUM_SPEND, Window::CalendarMonth).await.unwrap().reserved, 1_600);
}

#[tokio::test]
async fn free_and_pro_never_reach_premium() {
    let provider = TestProvider::start().await;
    let aegis = aegis_with_models(&provider, None).await;
    for tier in [Tier::Free, Tier::Trial, Tier::Pro] {
        let target = Target::Alias { alias: "premium".into(), intent: Intent::Chat };
        let err = aegis.models().complete(&scope(tier), &target, &ask("hi")).await.unwrap_err();
        assert!(matches!(err, ModelError::Denied { reason: "alias_not_allowed", .. }), "{err}");
        for intent in Intent::ALL.into_iter().filter(|i| *i != Intent::Embedding) {
            let done = aegis.models().complete(&scope(tier), &Target::Intent(intent), &ask("hi")).await.unwrap();
            assert!(!done.decision.metered);
            assert_ne!(done.model, "alpha/p1");
        }
    }
    assert!(provider.received_for("p1").is_empty());
    aegis.models().flush().await;
    let denied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM public.ai_audit_log WHERE NOT allowed AND reason = 'alias_not_allowed'",
    )
    .fetch_one(aegis.db().pool())
    .await
    .unwrap();
    assert_eq!(denied, 3);
}

#[tokio::test]
async fn concurrent_premium_calls_never_exceed_the_quota() {
    let provider = TestProvider::start().await;
    let aegis = aegis_with_models(&provider, None).await;
    let tenant = "business_t";
    // Each call is estimated at its input plus max_tokens 100 × 4000 µ$ = 400,000+ µ$;
    // a limit of 3,000,000 µ$ lets about seven be in flight at once.
    let limit = 3_000_000;
    aegis.models().meters().set_limit_override(tenant, PREMIUM_SPEND, Some(limit)).await.unwrap();
    provider.push("p1", (0..64).map(|_| Reply::Slow(Duration::from_millis(300), "premium answer".into(), (30, 50))));
    let mut request = ask("a premium question");
    request.max_tokens = Some(100);
    let calls = (0..64).map(|_| {
        let aegis = aegis.clone();
        let request = request.clone();
        tokio::spawn(async move { aegis.models().complete(&scope(Tier::Business), &chat(), &request).await })
    });
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    let quota = results.iter().filter(|r| matches!(r, Ok(Err(ModelError::Quota(_))))).count();
    assert_eq!(ok + quota, 64, "every call either ran or was refused for quota");
    assert!(quota > 0, "the quota must have refused some calls");
    let usage = aegis.models().meters().usage(tenant, PREMIUM_SPEND, Window::CalendarMonth).await.unwrap();
    assert_eq!(usage.reserved, 0, "everything settled");
    assert!(usage.used <= limit, "spent {} > limit {limit}", usage.used);
    // The meter equals what the ledger priced for the premium model, except for calls with
    // an attempt that timed out on a loaded box (the upstream may have run it): those stay
    // charged at their reservation, as unpriced.
    aegis.models().flush().await;
    let priced_clean: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(cost_micro_usd), 0)::bigint FROM public.provider_ledger l \
         WHERE tenant_id = $1 AND premium AND NOT EXISTS ( \
           SELECT 1 FROM public.provider_ledger u WHERE u.decision_id = l.decision_id AND u.cost_micro_usd IS NULL)",
    )
    .bind(tenant)
    .fetch_one(aegis.db().pool())
    .await
    .unwrap();
    let (unpriced_calls, charged_unpriced): (i64, i64) = sqlx::query_as(
        "SELECT count(*), COALESCE(sum(actual), 0)::bigint FROM public.usage_reservations WHERE tenant_id = $1 AND unpriced",
    )
    .bind(tenant)
    .fetch_one(aegis.db().pool())
    .await
    .unwrap();
    assert_eq!(usage.used, priced_clean + charged_unpriced);
    assert_eq!(priced_clean, (ok as i64 - unpriced_calls) * (30 * 1000 + 50 * 4000));
}

#[tokio::test]
async fn a_metered_call_without_usage_stays_charged_at_its_reservation() {
    let provider = TestProvider::start().await;
    let aegis = aegis_with_models(&provider, None).await;
    provider.push("p1", [Reply::Text { text: "no usage here".into(), usage: None }]);
    let mut request = ask("hi");
    request.max_tokens = Some(10);
    let before = aegis.models().ledger().unpriced_calls();
    let done = aegis.models().complete(&scope(Tier::Enterprise), &chat(), &request).await.unwrap();
    assert_eq!(done.model, "alpha/p1");
    assert_eq!(done.cost_micro_usd, None);
    assert_eq!(aegis.models().ledger().unpriced_calls(), before + 1);
    let usage = aegis.models().meters().usage("enterprise_t", PREMIUM_SPEND, Window::CalendarMonth).await.unwrap();
    assert!(usage.used > 0, "charged at the reservation, not 0");
    assert_eq!((usage.reserved, usage.unpriced_calls), (0, 1));
    let rows = ledger(&aegis, done.decision.id).await;
    assert_eq!((rows[0].4, rows[0].5), (false, None));
}

#[tokio::test]
async fn embeddings_default_to_the_offline_model() {
    let provider = TestProvider::start().await;
    let aegis = aegis_with_models(&provider, None).await;
    let texts = vec!["refund policy".to_owned(), "shipping times".to_owned()];
    let (decision, embeddings) =
        aegis.models().embed(&scope(Tier::Free), &Target::Intent(Intent::Embedding), &texts).await.unwrap();
    assert_eq!(decision.alias.as_deref(), Some("embed"));
    assert_eq!(embeddings.model, aegis_core::llm::offline::OFFLINE_MODEL_ID);
    assert_eq!(embeddings.vectors.len(), 2);
    assert!(embeddings.vectors.iter().all(|v| v.len() == 768));
    assert!(provider.received().is_empty(), "no network");
    let recorded = last_decision(&aegis, "free_t").await;
    assert_eq!(recorded, decision.id);
    let intent: String = sqlx::query_scalar("SELECT intent FROM public.ai_audit_log WHERE id = $1")
        .bind(recorded)
        .fetch_one(aegis.db().pool())
        .await
        .unwrap();
    assert_eq!(intent, "embedding");
}

/// Ends the other backends of the test's database whose `application_name` is `LIKE
/// application`, waiting for each to exit (as a restart of PostgreSQL would end them).
async fn terminate_backends(aegis: &Aegis, application: &str) -> Vec<bool> {
    sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name LIKE $1",
    )
    .bind(application)
    .fetch_all(aegis.db().pool())
    .await
    .unwrap()
}

/// The decision and ledger writers keep their connection between batches; when it breaks
/// (here: its backend terminated, as a restart of PostgreSQL would), the next batch is
/// retried on a new one and nothing is lost.
#[tokio::test]
async fn the_writers_survive_losing_their_connection() {
    let provider = TestProvider::start().await;
    let aegis = aegis_with_models(&provider, None).await;
    provider.push("m1", [Reply::text("one", 5, 1), Reply::text("two", 5, 1)]);
    let first = aegis.models().complete(&scope(Tier::Free), &chat(), &ask("one")).await.unwrap();
    assert_eq!(ledger(&aegis, first.decision.id).await.len(), 1);
    let writers = terminate_backends(&aegis, aegis_core::db::BATCH_WRITERS_APPLICATION).await;
    assert!(!writers.is_empty(), "the writers hold their connections between batches");
    let second = aegis.models().complete(&scope(Tier::Free), &chat(), &ask("two")).await.unwrap();
    assert_eq!(ledger(&aegis, second.decision.id).await.len(), 1);
    assert_eq!(last_decision(&aegis, "free_t").await, second.decision.id);
    assert_eq!((aegis.models().decisions_lost(), aegis.models().ledger().lost_rows()), (0, 0));
}

/// The meters' pool hands out connections without testing them first; when they were lost
/// while idle (here: every backend of the database terminated, as a restart of PostgreSQL
/// would), a metered call runs its statements again on new ones, charged once.
#[tokio::test]
async fn a_metered_call_survives_its_idle_connections_being_lost() {
    let provider = TestProvider::start().await;
    let aegis = aegis_with_models(&provider, None).await;
    provider.push("p1", [Reply::text("one", 5, 1), Reply::text("two", 5, 1)]);
    let first = aegis.models().complete(&scope(Tier::Enterprise), &chat(), &ask("one")).await.unwrap();
    let terminated = terminate_backends(&aegis, "aegis%").await;
    assert!(terminated.len() >= 2 && terminated.iter().all(|t| *t), "{terminated:?}");
    let second = aegis.models().complete(&scope(Tier::Enterprise), &chat(), &ask("two")).await.unwrap();
    let usage = aegis.models().meters().usage("enterprise_t", PREMIUM_SPEND, Window::CalendarMonth).await.unwrap();
    let charged = first.cost_micro_usd.unwrap() + second.cost_micro_usd.unwrap();
    assert_eq!((usage.used, usage.reserved), (charged, 0));
}
