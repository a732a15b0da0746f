//! The OpenAI-compatible gateway and the tenant API over real HTTP: identities, policy
//! refusals in OpenAI's error shape, streaming, quotas, upstream failures.

use std::collections::HashMap;

use aegis_core::{
    Aegis,
    auth::{NewApiKey, Scope, reveal},
    policy::meters::PREMIUM_SPEND,
    tenancy::{Caller, NewTenant, TenantId, Tier},
};
use aegis_it::{
    config_for, fresh_db,
    provider::{Reply, TestProvider},
    test_models,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const OPERATOR: &str = "operator-secret-for-tests";

struct Gateway {
    aegis: Aegis,
    base: String,
    keys: HashMap<Tier, String>,
    http: reqwest::Client,
    _shutdown: tokio_util::sync::DropGuard,
}

impl Gateway {
    async fn start(provider: &TestProvider) -> Self {
        let db = fresh_db().await;
        let mut config = config_for(&db);
        config.models = test_models(provider);
        config.secrets.operator_key = Some(OPERATOR.to_owned().into());
        let aegis = Aegis::builder().config(config).build().await.unwrap();
        let op = Caller::system("test");
        let mut keys = HashMap::new();
        for tier in Tier::ALL {
            let id = TenantId::parse(&format!("{tier}_t")).unwrap();
            aegis.tenants().create(&NewTenant { id: id.clone(), tier, name: None }, &op).await.unwrap();
            let key = NewApiKey {
                tenant: id,
                name: "test".into(),
                scopes: vec![Scope::Gateway, Scope::Api],
                expires_at: None,
            };
            keys.insert(tier, reveal(&aegis.api_keys().create(&key, &op).await.unwrap()).to_owned());
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(aegis_server::launch_with_listener(aegis.clone(), listener, shutdown.clone()));
        Self { aegis, base, keys, http: reqwest::Client::new(), _shutdown: shutdown.drop_guard() }
    }

    async fn post(&self, tier: Tier, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.keys[&tier])
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, token: Option<&str>, path: &str) -> (StatusCode, Value) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

fn chat(model: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "hello" }] })
}

#[tokio::test]
async fn keys_are_required_and_checked() {
    let provider = TestProvider::start().await;
    let gw = Gateway::start(&provider).await;
    let (status, body) = gw.get(None, "/v1/models").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["type"], "authentication_error");
    let (status, _) = gw.get(Some("aegis_not-a-real-key-at-all-xxxxxxxxxxxxxxxxxx"), "/v1/models").await;
    assert_eq!(status, 401);
    let (status, _) = gw.get(Some("garbage"), "/v1/models").await;
    assert_eq!(status, 401);

    // A revoked key stops working at once.
    let tenant = TenantId::parse("pro_t").unwrap();
    let key_id = gw.aegis.api_keys().list(&tenant).await.unwrap()[0].id;
    assert_eq!(gw.get(Some(&gw.keys[&Tier::Pro]), "/v1/models").await.0, 200);
    gw.aegis.api_keys().revoke(&tenant, key_id, &Caller::system("test")).await.unwrap();
    let (status, body) = gw.get(Some(&gw.keys[&Tier::Pro]), "/v1/models").await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"].as_str().unwrap().contains("revoked"));
    // Health needs no identity.
    assert_eq!(gw.http.get(format!("{}/healthz", gw.base)).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn the_model_list_follows_the_tier() {
    let provider = TestProvider::start().await;
    let gw = Gateway::start(&provider).await;
    let ids = |body: &Value| {
        body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let (_, free) = gw.get(Some(&gw.keys[&Tier::Free]), "/v1/models").await;
    assert_eq!(ids(&free), ["embed", "fast"]);
    let (_, business) = gw.get(Some(&gw.keys[&Tier::Business]), "/v1/models").await;
    assert_eq!(ids(&business), ["embed", "fast", "premium"]);
    assert_eq!(business["data"][2]["metered"], true);
}

#[tokio::test]
async fn a_free_tenant_asking_for_premium_is_refused_with_the_reason() {
    let provider = TestProvider::start().await;
    let gw = Gateway::start(&provider).await;
    let (status, body) = gw.post(Tier::Free, "/v1/chat/completions", chat("premium")).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "alias_not_allowed");
    assert!(body["error"]["message"].as_str().unwrap().contains("may not use `premium`"), "{body}");
    assert!(provider.received().is_empty(), "refused before any call, never downgraded");
    let (status, body) = gw.post(Tier::Business, "/v1/chat/completions", chat("premium")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(provider.received_for("p1").len(), 1);
}

#[tokio::test]
async fn chat_completions_by_alias_and_intent() {
    let provider = TestProvider::start().await;
    let gw = Gateway::start(&provider).await;
    provider.push("m1", [Reply::text("hi there", 9, 2)]);
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(&gw.keys[&Tier::Pro])
        .json(&chat("fast"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-aegis-model"], "alpha/m1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "hi there");
    assert_eq!(body["usage"]["total_tokens"], 11);
    let (status, _) = gw.post(Tier::Pro, "/v1/chat/completions", chat("intent:code")).await;
    assert_eq!(status, 200);
    let (status, body) = gw.post(Tier::Pro, "/v1/chat/completions", chat("intent:dreaming")).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("unknown intent"));
    let (status, body) = gw.post(Tier::Pro, "/v1/chat/completions", json!({ "model": "fast" })).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = gw.post(Tier::Pro, "/v1/chat/completions", chat("no-such-alias")).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (404, Some("model_not_found")),
        "as OpenAI answers it"
    );
}

#[tokio::test]
async fn streamed_chat_is_server_sent_events_ending_in_done() {
    let provider = TestProvider::start().await;
    let gw = Gateway::start(&provider).await;
    provider.push("m1", [Reply::text("one two three", 5, 3), Reply::text("four five", 5, 2)]);
    let read = |with_usage: bool| {
        let mut body = chat("fast");
        body["stream"] = json!(true);
        if with_usage {
            body["stream_options"] = json!({ "include_usage": true });
        }
        let request =
            gw.http.post(format!("{}/v1/chat/completions", gw.base)).bearer_auth(&gw.keys[&Tier::Free]).json(&body);
        async move {
            let text = request.send().await.unwrap().text().await.unwrap();
            text.lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_owned).collect::<Vec<_>>()
        }
    };
    let events = read(false).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "one two three");
    assert!(chunks.iter().all(|c| c.get("usage").is_none() && !c["choices"].as_array().unwrap().is_empty()));
    let events = read(true).await;
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["total_tokens"], 7);
}

#[tokio::test]
async fn quota_and_upstream_failures_have_their_status_codes() {
    let provider = TestProvider::start().await;
    let gw = Gateway::start(&provider).await;
    gw.aegis.models().meters().set_limit_override("business_t", PREMIUM_SPEND, Some(0)).await.unwrap();
    let (status, body) = gw.post(Tier::Business, "/v1/chat/completions", chat("premium")).await;
    assert_eq!(status, 429);
    // A call without usage is counted on /metrics (operator only).
    provider.push("m1", [Reply::Text { text: "no usage".into(), usage: None }]);
    assert_eq!(gw.post(Tier::Free, "/v1/chat/completions", chat("fast")).await.0, 200);
    let metrics =
        gw.http.get(format!("{}/metrics", gw.base)).bearer_auth(OPERATOR).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("aegis_provider_calls_unpriced_total 1"), "{metrics}");
    assert_eq!(gw.get(Some(&gw.keys[&Tier::Free]), "/metrics").await.0, 403);
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert!(provider.received_for("p1").is_empty());

    let down = || Reply::Status(500, "down".into());
    provider.push("m1", [down(), down()]);
    provider.push("m2", [down(), down()]);
    let (status, body) = gw.post(Tier::Free, "/v1/chat/completions", chat("fast")).await;
    assert_eq!(status, 502);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("alpha/m1 #2") && message.contains("beta/m2 #2"), "{message}");
}

#[tokio::test]
async fn embeddings_are_768_dimensions() {
    let provider = TestProvider::start().await;
    let gw = Gateway::start(&provider).await;
    let (status, body) =
        gw.post(Tier::Free, "/v1/embeddings", json!({ "model": "embed", "input": ["a", "b c"] })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["data"][1]["embedding"].as_array().unwrap().len(), 768);
    let (status, encoded) =
        gw.post(Tier::Free, "/v1/embeddings", json!({ "input": "b c", "encoding_format": "base64" })).await;
    assert_eq!(status, 200);
    let bytes = base64_decode(encoded["data"][0]["embedding"].as_str().unwrap());
    let floats: Vec<f64> = bytes.chunks(4).map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap()))).collect();
    let plain: Vec<f64> =
        body["data"][1]["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(floats, plain, "base64 carries the same little-endian f32 vector");
    let (status, _) = gw.post(Tier::Free, "/v1/embeddings", json!({ "input": "x", "dimensions": 1536 })).await;
    assert_eq!(status, 400);
    let (status, _) = gw.post(Tier::Free, "/v1/embeddings", json!({ "model": "fast", "input": "x" })).await;
    assert_eq!(status, 403, "a chat alias is not allowed for embeddings");
}

#[tokio::test]
async fn the_tenant_api_requires_an_identity_allowed_on_the_tenant() {
    let provider = TestProvider::start().await;
    let gw = Gateway::start(&provider).await;
    let (status, body) = gw.get(Some(&gw.keys[&Tier::Pro]), "/api/tenants/pro_t").await;
    assert_eq!(status, 200);
    assert_eq!(body["tier"], "pro");
    let (status, body) = gw.get(Some(&gw.keys[&Tier::Pro]), "/api/tenants/free_t").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(gw.get(None, "/api/tenants/pro_t").await.0, 401);
    assert_eq!(gw.get(Some(OPERATOR), "/api/tenants/free_t").await.0, 200);
    assert_eq!(gw.get(Some(OPERATOR), "/api/tenants/nobody").await.0, 404);
    assert_eq!(gw.get(Some(OPERATOR), "/api/tenants/BAD").await.0, 400);
    let (status, body) = gw.get(Some(&gw.keys[&Tier::Business]), "/api/tenants/business_t/usage").await;
    assert_eq!(status, 200);
    assert_eq!(body["meter"], PREMIUM_SPEND);

    // A gateway-only key cannot use the tenant API.
    let key = NewApiKey {
        tenant: TenantId::parse("pro_t").unwrap(),
        name: "gw".into(),
        scopes: vec![Scope::Gateway],
        expires_at: None,
    };
    let created = gw.aegis.api_keys().create(&key, &Caller::system("test")).await.unwrap();
    assert_eq!(gw.get(Some(reveal(&created)), "/api/tenants/pro_t").await.0, 403);
    assert_eq!(gw.get(Some(reveal(&created)), "/v1/models").await.0, 200);
    // The operator acts for a tenant on the gateway through a header.
    let r = gw
        .http
        .get(format!("{}/v1/models", gw.base))
        .bearer_auth(OPERATOR)
        .header("x-aegis-tenant", "business_t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_key_records_its_use_once_a_minute_across_cache_refreshes() {
    let provider = TestProvider::start().await;
    let gw = Gateway::start(&provider).await;
    let key = &gw.keys[&Tier::Pro];
    let last_used = || async {
        sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
            "SELECT last_used_at FROM public.api_keys WHERE tenant_id = 'pro_t' AND name = 'test'",
        )
        .fetch_one(gw.aegis.db().pool())
        .await
        .unwrap()
    };
    assert_eq!(gw.get(Some(key), "/v1/models").await.0, 200);
    let mut first = None;
    for _ in 0..100 {
        first = last_used().await;
        if first.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(first.is_some(), "the first use is recorded");
    // Past the 5 s cache: the key is read again, but its use was written under a minute ago.
    tokio::time::sleep(std::time::Duration::from_millis(5_200)).await;
    assert_eq!(gw.get(Some(key), "/v1/models").await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(last_used().await, first, "not written again within the minute");
}

/// A key in steady use is reloaded in the background, not on the request path; a tier
/// change and a revocation made by another process (straight in the database, so this
/// process's cache is not told) still reach it within the caches' 5 s.
#[tokio::test]
async fn a_key_in_use_follows_a_tier_change_and_a_revocation_made_elsewhere() {
    let provider = TestProvider::start().await;
    let gw = Gateway::start(&provider).await;
    let key = &gw.keys[&Tier::Free];
    let premium = |body: &Value| body["data"].as_array().is_some_and(|m| m.iter().any(|m| m["id"] == "premium"));
    let (status, body) = gw.get(Some(key), "/v1/models").await;
    assert_eq!(status, 200);
    assert!(!premium(&body));
    let pool = gw.aegis.db().pool();
    sqlx::query("UPDATE public.tenants SET tier = 'business' WHERE id = 'free_t'").execute(pool).await.unwrap();
    let changed = std::time::Instant::now();
    loop {
        let (status, body) = gw.get(Some(key), "/v1/models").await;
        assert_eq!(status, 200);
        if premium(&body) {
            break;
        }
        assert!(changed.elapsed().as_secs_f64() < 6.5, "the new tier is seen within the TTL");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    sqlx::query("UPDATE public.api_keys SET revoked_at = now() WHERE tenant_id = 'free_t'")
        .execute(pool)
        .await
        .unwrap();
    let revoked = std::time::Instant::now();
    loop {
        let (status, _) = gw.get(Some(key), "/v1/models").await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(revoked.elapsed().as_secs_f64() < 6.5, "the revocation takes effect within the TTL");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}
