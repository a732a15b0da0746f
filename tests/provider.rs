//! A loopback OpenAI-compatible provider for tests: real HTTP on 127.0.0.1, replies
//! scripted per model name, injected faults (status codes, hangs, malformed bodies,
//! disconnects mid-stream, missing usage), and a log of every request body it received.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};

/// One scripted reply.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A text answer (streamed in pieces when asked to stream).
    Text { text: String, usage: Option<(u64, u64)> },
    /// Tool calls `(name, arguments)`; streamed with arguments split across chunks. Usage
    /// 20 + 10 tokens.
    ToolCalls(Vec<(String, String)>),
    /// Tool calls with the given usage (prompt, completion).
    ToolCallsWithUsage(Vec<(String, String)>, (u64, u64)),
    /// An HTTP error with an OpenAI error body.
    Status(u16, String),
    /// 429 with `Retry-After` seconds.
    RateLimited(f64),
    /// Wait this long, then answer `Text "late"`.
    Hang(Duration),
    /// 200 with a body that is not JSON.
    Malformed,
    /// Stream some text, then drop the connection without `[DONE]`.
    Disconnect(String),
    /// Wait, then answer with text (to hold requests open concurrently).
    Slow(Duration, String, (u64, u64)),
    /// Wait, then give the inner reply.
    Delayed(Duration, Box<Reply>),
}

impl Reply {
    /// Text with usage (prompt, completion).
    pub fn text(text: &str, prompt: u64, completion: u64) -> Self {
        Reply::Text { text: text.into(), usage: Some((prompt, completion)) }
    }
}

/// A request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path.
    pub path: String,
    /// The JSON body.
    pub body: Value,
    /// The bearer token.
    pub auth: Option<String>,
    /// The `user-agent` header.
    pub user_agent: Option<String>,
}

#[derive(Default)]
struct Script {
    replies: HashMap<String, VecDeque<Reply>>,
    received: Vec<Received>,
}

/// A running test provider.
#[derive(Clone)]
pub struct TestProvider {
    /// `http://127.0.0.1:<port>/v1`.
    pub base_url: String,
    script: Arc<Mutex<Script>>,
}

impl TestProvider {
    /// Starts on a free loopback port.
    pub async fn start() -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/embeddings", post(embeddings))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base_url, script }
    }

    /// Queues replies for requests naming `model`; unscripted requests get `Text "ok"`.
    pub fn push(&self, model: &str, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().replies.entry(model.into()).or_default().extend(replies);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }

    /// Requests naming `model`.
    pub fn received_for(&self, model: &str) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.body["model"] == model).collect()
    }
}

type Shared = Arc<Mutex<Script>>;

fn record(script: &Shared, path: &str, headers: &HeaderMap, body: &Bytes) -> Value {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let auth =
        headers.get("authorization").and_then(|v| v.to_str().ok()).map(|v| v.trim_start_matches("Bearer ").to_owned());
    let user_agent = headers.get("user-agent").and_then(|v| v.to_str().ok()).map(str::to_owned);
    script.lock().unwrap().received.push(Received { path: path.into(), body: value.clone(), auth, user_agent });
    value
}

fn next_reply(script: &Shared, model: &str) -> Reply {
    script
        .lock()
        .unwrap()
        .replies
        .get_mut(model)
        .and_then(VecDeque::pop_front)
        .unwrap_or_else(|| Reply::text("ok", 10, 2))
}

fn error_body(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    (status, Json(json!({ "error": { "message": message, "type": "test", "code": status.as_u16() } }))).into_response()
}

/// 429 with `Retry-After` seconds.
fn rate_limited(secs: f64) -> Response {
    let mut r = error_body(429, "rate limited");
    r.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
    r
}

fn usage_json(usage: Option<(u64, u64)>) -> Value {
    usage.map_or(Value::Null, |(p, c)| json!({ "prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c }))
}

fn completion(model: &str, message: Value, finish: &str, usage: Option<(u64, u64)>) -> Value {
    let mut body = json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
    });
    if usage.is_some() {
        body["usage"] = usage_json(usage);
    }
    body
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
    let c = json!({ "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1, "model": model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] });
    format!("data: {c}\n\n")
}

fn sse(events: Vec<String>, then_fail: bool) -> Response {
    use futures::StreamExt;
    let items = futures::stream::iter(events.into_iter().map(|e| Ok::<_, std::io::Error>(Bytes::from(e))));
    // The cut comes after a pause, so the chunks before it are flushed to the client first.
    let cut = futures::stream::once(async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Err(std::io::Error::other("test disconnect"))
    })
    .filter(move |_| futures::future::ready(then_fail));
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(items.chain(cut))).unwrap()
}

async fn chat(State(script): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let request = record(&script, "/v1/chat/completions", &headers, &body);
    let model = request["model"].as_str().unwrap_or_default().to_owned();
    let stream = request["stream"] == true;
    let include_usage = request["stream_options"]["include_usage"] == true;
    let mut reply = next_reply(&script, &model);
    let mut tool_usage = (20, 10);
    loop {
        match reply {
            Reply::Hang(d) => {
                tokio::time::sleep(d).await;
                reply = Reply::text("late", 1, 1);
            }
            Reply::Slow(d, text, usage) => {
                tokio::time::sleep(d).await;
                reply = Reply::Text { text, usage: Some(usage) };
            }
            Reply::Delayed(d, inner) => {
                tokio::time::sleep(d).await;
                reply = *inner;
            }
            Reply::ToolCallsWithUsage(calls, usage) => {
                tool_usage = usage;
                reply = Reply::ToolCalls(calls);
            }
            _ => break,
        }
    }
    match reply {
        Reply::Status(status, message) => error_body(status, &message),
        Reply::RateLimited(secs) => rate_limited(secs),
        Reply::Malformed => {
            Response::builder().header("content-type", "application/json").body(Body::from("{not json")).unwrap()
        }
        Reply::Text { text, usage } if !stream => {
            Json(completion(&model, json!({ "role": "assistant", "content": text }), "stop", usage)).into_response()
        }
        Reply::ToolCalls(calls) if !stream => {
            let calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| json!({ "id": format!("call_{i}"), "type": "function", "function": { "name": name, "arguments": args } }))
                .collect();
            Json(completion(
                &model,
                json!({ "role": "assistant", "content": null, "tool_calls": calls }),
                "tool_calls",
                Some(tool_usage),
            ))
            .into_response()
        }
        Reply::Text { text, usage } => {
            let mut events = vec![chunk(&model, json!({ "role": "assistant", "content": "" }), None)];
            for piece in text.split_inclusive(' ') {
                events.push(chunk(&model, json!({ "content": piece }), None));
            }
            events.push(chunk(&model, json!({}), Some("stop")));
            if include_usage && usage.is_some() {
                let u = json!({ "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": usage_json(usage) });
                events.push(format!("data: {u}\n\n"));
            }
            events.push("data: [DONE]\n\n".into());
            sse(events, false)
        }
        Reply::ToolCalls(calls) => {
            let mut events = vec![chunk(&model, json!({ "role": "assistant" }), None)];
            for (i, (name, args)) in calls.iter().enumerate() {
                events.push(chunk(&model, json!({ "tool_calls": [{ "index": i, "id": format!("call_{i}"), "type": "function", "function": { "name": name, "arguments": "" } }] }), None));
                let (a, b) = args.split_at(args.len() / 2);
                for piece in [a, b] {
                    events.push(chunk(
                        &model,
                        json!({ "tool_calls": [{ "index": i, "function": { "arguments": piece } }] }),
                        None,
                    ));
                }
            }
            events.push(chunk(&model, json!({}), Some("tool_calls")));
            if include_usage {
                let u = json!({ "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": usage_json(Some(tool_usage)) });
                events.push(format!("data: {u}\n\n"));
            }
            events.push("data: [DONE]\n\n".into());
            sse(events, false)
        }
        Reply::Disconnect(text) => {
            let mut events = vec![chunk(&model, json!({ "role": "assistant", "content": "" }), None)];
            events.push(chunk(&model, json!({ "content": text }), None));
            sse(events, true)
        }
        Reply::Hang(_) | Reply::Slow(..) | Reply::Delayed(..) | Reply::ToolCallsWithUsage(..) => unreachable!(),
    }
}

/// Vectors for each input (a scripted `Status` or `RateLimited` reply is that error instead;
/// other scripted replies, and none, give vectors).
async fn embeddings(State(script): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let request = record(&script, "/v1/embeddings", &headers, &body);
    match next_reply(&script, request["model"].as_str().unwrap_or_default()) {
        Reply::Status(status, message) => return error_body(status, &message),
        Reply::RateLimited(secs) => return rate_limited(secs),
        _ => {}
    }
    let inputs: Vec<String> = match &request["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => vec![],
    };
    let dims = request["dimensions"].as_u64().unwrap_or(768) as usize;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut v = vec![0.0f32; dims];
            v[text.len() % dims] = 1.0;
            json!({ "object": "embedding", "index": i, "embedding": v })
        })
        .collect();
    Json(
        json!({ "object": "list", "data": data, "model": request["model"], "usage": { "prompt_tokens": inputs.len(), "total_tokens": inputs.len() } }),
    )
    .into_response()
}
