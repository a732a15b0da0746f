//! Agents' audit trail and frontends: the hash chain detects tampering, profile versions,
//! chat without a model, the HTTP API (JSON and server-sent events) and the CLI.

use aegis_core::{
    agents::profile,
    audit,
    auth::{NewApiKey, Scope, reveal},
    tenancy::Caller,
};
use aegis_it::provider::{Reply, TestProvider};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::agents::{ingest_refunds, platform, say};

#[tokio::test]
async fn a_tampered_audit_row_is_detected() {
    let provider = TestProvider::start().await;
    let (aegis, scope) = platform(Some(&provider), |c| c.kb_context_hits = 0).await;
    for _ in 0..2 {
        provider.push(
            "m1",
            [Reply::ToolCalls(vec![("current_time".into(), "{}".into())]), Reply::text("It is late.", 10, 2)],
        );
        say(&aegis, &scope, "/agent kai time?").await;
    }
    let report = audit::verify(&scope).await.unwrap();
    assert_eq!((report.rows, report.broken), (4, None));
    let pool = aegis.db().pool();
    // The table refuses changes, even from the owner …
    let refused = sqlx::query("DELETE FROM tenant_acme.audit_logs WHERE seq = 1").execute(pool).await.unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    // … so a tamperer must switch that off first; the chain still tells.
    sqlx::query("ALTER TABLE tenant_acme.audit_logs DISABLE TRIGGER USER").execute(pool).await.unwrap();
    sqlx::query("UPDATE tenant_acme.audit_logs SET data = jsonb_set(data, '{tool}', '\"rm\"') WHERE seq = 2")
        .execute(pool)
        .await
        .unwrap();
    let broken = audit::verify(&scope).await.unwrap().broken.unwrap();
    assert_eq!(broken.seq, 2);
    assert!(broken.problem.contains("content"), "{}", broken.problem);

    // Restore the row, then cut the tail: the head still remembers it.
    sqlx::query("UPDATE tenant_acme.audit_logs SET data = jsonb_set(data, '{tool}', '\"current_time\"') WHERE seq = 2")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(audit::verify(&scope).await.unwrap().broken, None);
    sqlx::query("DELETE FROM tenant_acme.audit_logs WHERE seq = 4").execute(pool).await.unwrap();
    let broken = audit::verify(&scope).await.unwrap().broken.unwrap();
    assert!(broken.problem.contains("head records row 4"), "{}", broken.problem);
}

#[tokio::test]
async fn a_run_its_steps_and_its_payloads_cannot_be_rewritten_by_the_tenant_role() {
    let provider = TestProvider::start().await;
    let (aegis, scope) = platform(Some(&provider), |c| c.kb_context_hits = 0).await;
    provider.push("m1", [Reply::text("Refunds take 14 days.", 10, 4)]);
    say(&aegis, &scope, "/agent kai how long do refunds take?").await;
    let mut tx = scope.begin().await.unwrap();
    let (run, outcome): (uuid::Uuid, String) =
        sqlx::query_as("SELECT id, outcome FROM runs ORDER BY started_at DESC LIMIT 1")
            .fetch_one(tx.conn())
            .await
            .unwrap();
    assert_ne!(outcome, "running");
    tx.commit().await.unwrap();
    let refused = |sql: &'static str| {
        let scope = scope.clone();
        async move {
            let mut tx = scope.begin().await.unwrap();
            let err = sqlx::query(sql).bind(run).execute(tx.conn()).await.unwrap_err().to_string();
            assert!(
                err.contains("append-only") || err.contains("history") || err.contains("has ended"),
                "{sql}: {err}"
            );
        }
    };
    refused("UPDATE runs SET cost_micro_usd = 0 WHERE id = $1").await;
    refused("DELETE FROM runs WHERE id = $1").await;
    refused("UPDATE run_steps SET detail = '{}' WHERE run_id = $1").await;
    refused("DELETE FROM run_steps WHERE run_id = $1").await;
    refused("DELETE FROM model_payloads WHERE hash IN (SELECT request_hash FROM run_steps WHERE run_id = $1)").await;
    // Feedback on a finished run is still taken.
    let mut tx = scope.begin().await.unwrap();
    let rated = sqlx::query("UPDATE runs SET rating = 5 WHERE id = $1").bind(run).execute(tx.conn()).await.unwrap();
    assert_eq!(rated.rows_affected(), 1);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn profiles_are_versioned_diffed_and_reverted() {
    let (aegis, scope) = platform(None, |_| {}).await;
    let agents = aegis.agents();
    let mut luna = agents.agent(&scope, "luna").await.unwrap();
    assert_eq!(luna.version, 0);
    luna.profile.tone = "Short, punchy, playful.".into();
    assert_eq!(agents.save_profile(&scope, &luna.profile, "edit").await.unwrap(), 1);
    let current = agents.agent(&scope, "luna").await.unwrap();
    assert_eq!((current.version, current.profile.tone.as_str()), (1, "Short, punchy, playful."));
    let diff = agents.diff(&scope, "luna", 0, 1).await.unwrap();
    assert_eq!(diff.len(), 1);
    assert_eq!(diff[0].path, "tone");
    assert_eq!(agents.revert(&scope, "luna", 0).await.unwrap(), 2);
    let reverted = agents.agent(&scope, "luna").await.unwrap();
    assert_eq!(reverted.profile, profile::default_team().into_iter().find(|p| p.name == "luna").unwrap());
    let notes: Vec<Option<String>> =
        agents.versions(&scope, "luna").await.unwrap().into_iter().map(|v| v.note).collect();
    assert_eq!(notes, [Some("built-in default".into()), Some("edit".into()), Some("revert to 0".into())]);

    // A tool no build knows is a load error; nothing is stored.
    let mut bad = reverted.profile.clone();
    bad.tools.push("teleport".into());
    let err = agents.save_profile(&scope, &bad, "edit").await.unwrap_err();
    assert!(err.to_string().contains("unknown tool `teleport`"), "{err}");
    assert_eq!(agents.versions(&scope, "luna").await.unwrap().len(), 3);

    // A tenant may add an agent of its own.
    let mut own = reverted.profile.clone();
    own.name = "max".into();
    own.display_name = "Max".into();
    agents.save_profile(&scope, &own, "import").await.unwrap();
    assert_eq!(agents.team(&scope).await.unwrap().len(), 8);
    let events: Vec<i64> = sqlx::query_scalar("SELECT seq FROM tenant_acme.audit_logs WHERE event = 'profile_changed'")
        .fetch_all(aegis.db().pool())
        .await
        .unwrap();
    assert_eq!(events.len(), 3);
}

#[tokio::test]
async fn without_a_model_chat_says_so_and_offers_documents() {
    let (aegis, scope) = platform(None, |_| {}).await;
    ingest_refunds(&aegis, &scope).await;
    let reply = say(&aegis, &scope, "how many days do customers have for a refund?").await;
    assert_eq!(reply.outcome, "no_model");
    assert!(reply.text.starts_with("No language model is configured"), "{}", reply.text);
    assert!(reply.text.contains("14 days"), "{}", reply.text);
    assert_eq!(reply.citations[0].source_key, "refunds.md");
    assert_eq!(reply.route.unwrap()["method"], "keywords", "no routing model either");
    let timeline = audit::timeline(&scope, reply.run_id).await.unwrap();
    assert_eq!(timeline.runs[0].run.outcome, "no_model");
}

#[tokio::test]
async fn chat_over_http_as_json_and_as_events() {
    let provider = TestProvider::start().await;
    let (aegis, scope) = platform(Some(&provider), |c| c.kb_context_hits = 0).await;
    let key =
        NewApiKey { tenant: scope.tenant().clone(), name: "t".into(), scopes: vec![Scope::Api], expires_at: None };
    let key = reveal(&aegis.api_keys().create(&key, &Caller::system("test")).await.unwrap()).to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/tenants/acme", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    tokio::spawn(aegis_server::launch_with_listener(aegis.clone(), listener, shutdown));
    let http = reqwest::Client::new();
    let get = |path: String| {
        let (http, url, key) = (http.clone(), format!("{base}{path}"), key.clone());
        async move { aegis_it::get_json(&http, &url, &key).await }
    };

    provider.push("m1", [Reply::text("Refunds take 14 days.", 20, 5)]);
    let body = json!({ "message": "refunds?", "agent": "kai", "thread": "web-1", "source_id": "m-1" });
    let r = http.post(format!("{base}/chat")).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let reply: Value = r.json().await.unwrap();
    assert_eq!(
        (reply["text"].as_str(), reply["agent"].as_str(), reply["thread"].as_str()),
        (Some("Refunds take 14 days."), Some("kai"), Some("web-1"))
    );
    // A retry with the same source id is answered from the store.
    let again: Value =
        http.post(format!("{base}/chat")).bearer_auth(&key).json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!((again["run_id"].clone(), again["replayed"].clone()), (reply["run_id"].clone(), json!(true)));
    assert_eq!(provider.received_for("m1").len(), 1);

    let list = get("/conversations".into()).await;
    let conv = list["conversations"][0]["id"].as_str().unwrap().to_owned();
    let history = get(format!("/conversations/{conv}")).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 2);
    // Unknown conversations and runs are 404s, in OpenAI's error shape.
    for path in [format!("/conversations/{}", uuid::Uuid::now_v7()), format!("/runs/{}", uuid::Uuid::now_v7())] {
        let r = http.get(format!("{base}{path}")).bearer_auth(&key).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().starts_with("no "), "{body}");
    }
    let run = reply["run_id"].as_str().unwrap();
    let timeline = get(format!("/runs/{run}")).await;
    assert_eq!(timeline["runs"][0]["steps"][0]["request"], provider.received_for("m1")[0].body);
    let agents = get("/agents".into()).await;
    assert_eq!(agents["agents"].as_array().unwrap().len(), 7);

    // Streamed: routing, text deltas as they arrive, then the stored reply.
    provider.push("m1", [Reply::text("Gift cards cannot be refunded.", 20, 6)]);
    let body = json!({ "message": "@kai gift cards?", "stream": true });
    let r = http.post(format!("{base}/chat")).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(events.first(), Some(&"routed"));
    assert!(events.iter().filter(|e| **e == "delta").count() >= 3, "{text}");
    assert_eq!(events.last(), Some(&"done"));
    let done: Value =
        serde_json::from_str(text.lines().filter_map(|l| l.strip_prefix("data: ")).next_back().unwrap()).unwrap();
    assert_eq!(done["text"], "Gift cards cannot be refunded.");
    let streamed = &provider.received_for("m1")[1].body;
    assert_eq!(streamed["stream"], true);
    let timeline = get(format!("/runs/{}", done["run_id"].as_str().unwrap())).await;
    assert_eq!(&timeline["runs"][0]["steps"][0]["request"], streamed, "a streamed request is stored as sent");

    // No identity, no chat; an unknown agent is a 404.
    let r = http.post(format!("{base}/chat")).json(&json!({ "message": "hi" })).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{base}/chat"))
        .bearer_auth(&key)
        .json(&json!({ "message": "hi", "agent": "ghost" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn chat_agents_and_audit_from_the_cli() {
    let db = aegis_it::fresh_db().await;
    let url = db.url.as_str();
    let run = |args: &[&str]| aegis_it::aegis_ok(url, &[], args);
    run(&["tenant", "create", "acme", "--tier", "pro"]);
    let list = run(&["agents", "list", "acme"]);
    assert!(list.contains("luna") && list.contains("atlas"), "{list}");
    let exported = run(&["agents", "export", "acme", "luna"]);
    let file = std::env::temp_dir().join(format!("luna-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, exported.replace("video", "film")).unwrap();
    assert!(run(&["agents", "import", "acme", file.to_str().unwrap()]).contains("version 1"));
    assert!(run(&["agents", "diff", "acme", "luna", "0", "1"]).contains("film"));
    assert!(run(&["agents", "show", "acme", "luna"]).contains("version 1"));

    let reply: Value =
        serde_json::from_str(&run(&["chat", "acme", "--agent", "sage", "--json", "what is our refund policy?"]))
            .unwrap();
    assert_eq!(reply["outcome"], "no_model");
    let run_id = reply["run_id"].as_str().unwrap();
    let shown = run(&["audit", "show", "acme", run_id]);
    assert!(shown.contains(run_id) && shown.contains("no_model"), "{shown}");
    assert!(run(&["audit", "verify", "acme"]).contains("intact"));
    assert!(run(&["conversations", "list", "acme"]).contains("cli"));
}

// Multi-threaded: the loopback provider keeps serving while this thread waits for the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_chat_against_a_provider_is_audited_as_the_provider_saw_it() {
    let provider = TestProvider::start().await;
    let db = aegis_it::fresh_db().await;
    let url = db.url.as_str();
    // The shipped configuration, with its `groq` provider pointed at the loopback provider.
    let envs = [("AEGIS_MODELS__PROVIDERS__GROQ__BASE_URL", provider.base_url.as_str()), ("GROQ_API_KEY", "test-key")];
    let run = |args: &[&str]| aegis_it::aegis_ok(url, &envs, args);
    run(&["tenant", "create", "acme", "--tier", "free"]);
    let dir = std::env::temp_dir().join(format!("aegis-cli-kb-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("refunds.md"), crate::agents::REFUNDS).unwrap();
    run(&["ingest", "acme", dir.to_str().unwrap()]);
    let model = "llama-3.3-70b-versatile";
    provider.push(
        model,
        [
            Reply::ToolCalls(vec![("kb_search".into(), r#"{"query": "refund days"}"#.into())]),
            Reply::text("Within 14 days of delivery [1].", 90, 9),
        ],
    );
    let out = run(&["chat", "acme", "--agent", "kai", "how long do I have to return goods?"]);
    assert!(out.contains("Within 14 days of delivery [1].") && out.contains("refunds.md"), "{out}");
    let runs: Value = serde_json::from_str(&run(&["audit", "runs", "acme", "--json"])).unwrap();
    let run_id = runs[0]["id"].as_str().unwrap().to_owned();
    let timeline: Value = serde_json::from_str(&run(&["audit", "show", "acme", &run_id, "--json"])).unwrap();
    let stored: Vec<&Value> = timeline["runs"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.get("request").filter(|r| !r.is_null()))
        .collect();
    let seen = provider.received_for(model);
    assert_eq!(stored.len(), 2);
    for (stored, seen) in stored.iter().zip(&seen) {
        assert_eq!(audit::canonical::canonical_json(stored), audit::canonical::canonical_json(&seen.body));
    }
    assert_eq!(seen[0].auth.as_deref(), Some("test-key"));
    assert!(run(&["audit", "show", "acme", &run_id]).contains("tool_call"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `aegis chat` without a message reads one line per turn from standard input (without
/// holding the runtime's one thread while it waits) and ends at the end of input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_cli_chat_answers_each_line_until_the_input_ends() {
    use std::io::Write;
    let provider = TestProvider::start().await;
    let db = aegis_it::fresh_db().await;
    let url = db.url.as_str();
    let envs = [("AEGIS_MODELS__PROVIDERS__GROQ__BASE_URL", provider.base_url.as_str()), ("GROQ_API_KEY", "test-key")];
    aegis_it::aegis_ok(url, &envs, &["tenant", "create", "acme", "--tier", "free"]);
    provider.push("llama-3.3-70b-versatile", [Reply::text("Hello there.", 5, 2), Reply::text("Hello again.", 7, 2)]);
    let mut child = std::process::Command::new(aegis_it::aegis_bin())
        .arg("--database-url")
        .arg(url)
        .args(["chat", "acme", "--agent", "kai", "--thread", "t1"])
        .envs(envs)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\nand again\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (first, second) = (stdout.find("Hello there."), stdout.find("Hello again."));
    assert!(first.is_some() && second.is_some() && first < second, "{stdout}");
    let asked: Vec<String> = provider
        .received_for("llama-3.3-70b-versatile")
        .iter()
        .map(|r| r.body["messages"].as_array().unwrap().last().unwrap()["content"].to_string())
        .collect();
    assert_eq!(asked, ["\"hello\"", "\"and again\""]);
    let db = aegis_it::pool(&db, 1).await;
    let decisions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM public.ai_audit_log WHERE tenant_id = 'acme' AND intent = 'chat'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(decisions, 2, "one chat decision per turn, written before the process ended");
}
