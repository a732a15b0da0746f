//! The OpenAI-compatible HTTP client. One protocol reaches OpenAI, OpenRouter, Groq,
//! Gemini's compatible endpoint, Ollama, vLLM, llama.cpp and a LiteLLM proxy: only the
//! base URL and key differ.

mod classify;
mod sse;
mod stream;

pub use sse::{SseEvent, SseParser};

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::{
    ChatModel, ChatStream, ErrorClass, LlmError,
    types::{ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, StreamOptions},
};

/// Timeouts of one provider.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting.
    pub connect: Duration,
    /// A whole non-streamed request, and a stream's first chunk.
    pub request: Duration,
    /// The longest silence between two chunks of a stream.
    pub stream_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(120),
            stream_idle: Duration::from_secs(60),
        }
    }
}

/// A client for one provider's OpenAI-compatible API.
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    provider: String,
    base_url: String,
    /// Parsed once: URL parsing (with IDNA) showed up in the gateway's profile.
    chat_url: Option<reqwest::Url>,
    embeddings_url: Option<reqwest::Url>,
    api_key: Option<SecretString>,
    timeouts: Timeouts,
}

impl OpenAiClient {
    /// A client for `provider` at `base_url` (which includes the version path, e.g.
    /// `https://api.openai.com/v1`). `http` is shared so connections are pooled.
    pub fn new(
        http: reqwest::Client,
        provider: impl Into<String>,
        base_url: &str,
        api_key: Option<SecretString>,
        timeouts: Timeouts,
    ) -> Self {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let chat_url = reqwest::Url::parse(&format!("{base_url}/chat/completions")).ok();
        let embeddings_url = reqwest::Url::parse(&format!("{base_url}/embeddings")).ok();
        Self { http, provider: provider.into(), base_url, chat_url, embeddings_url, api_key, timeouts }
    }

    /// A plain HTTP client suitable for sharing between providers.
    pub fn http_client(connect_timeout: Duration) -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default()
    }

    /// The provider's name.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        let parsed = match path {
            "/chat/completions" => self.chat_url.clone(),
            "/embeddings" => self.embeddings_url.clone(),
            _ => None,
        };
        // An unparsable base URL still goes through reqwest, which reports the error.
        let request = match parsed {
            Some(url) => self.http.post(url),
            None => self.http.post(format!("{}{path}", self.base_url)),
        };
        match &self.api_key {
            Some(key) => request.bearer_auth(key.expose_secret()),
            None => request,
        }
    }

    /// `POST /chat/completions` without streaming.
    pub async fn chat(&self, mut request: ChatRequest) -> Result<ChatResponse, LlmError> {
        request.stream = None;
        request.stream_options = None;
        let response = self
            .post("/chat/completions")
            .timeout(self.timeouts.request)
            .json(&request)
            .send()
            .await
            .map_err(|e| classify::transport(&self.provider, &request.model, &e))?;
        let response = classify::check_status(&self.provider, &request.model, response).await?;
        let bytes = response.bytes().await.map_err(|e| classify::transport(&self.provider, &request.model, &e))?;
        let parsed: ChatResponse = serde_json::from_slice(&bytes).map_err(|e| {
            LlmError::new(
                ErrorClass::Malformed,
                &self.provider,
                &request.model,
                format!("response is not a chat completion: {e}"),
            )
        })?;
        if parsed.choices.is_empty() {
            return Err(LlmError::new(
                ErrorClass::Malformed,
                &self.provider,
                &request.model,
                "response has no choices",
            ));
        }
        Ok(parsed)
    }

    /// `POST /chat/completions` with `stream: true`, asking for usage in the last chunk.
    pub async fn chat_stream(&self, mut request: ChatRequest) -> Result<ChatStream, LlmError> {
        request.stream = Some(true);
        request.stream_options = Some(StreamOptions { include_usage: true });
        let send = self.post("/chat/completions").header("accept", "text/event-stream").json(&request).send();
        let response = tokio::time::timeout(self.timeouts.request, send)
            .await
            .map_err(|_| {
                LlmError::new(ErrorClass::Timeout, &self.provider, &request.model, "no response headers in time")
            })?
            .map_err(|e| classify::transport(&self.provider, &request.model, &e))?;
        let response = classify::check_status(&self.provider, &request.model, response).await?;
        Ok(stream::chunks(response, self.provider.clone(), request.model.clone(), self.timeouts))
    }

    /// `POST /embeddings`.
    pub async fn embeddings(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse, LlmError> {
        let response = self
            .post("/embeddings")
            .timeout(self.timeouts.request)
            .json(request)
            .send()
            .await
            .map_err(|e| classify::transport(&self.provider, &request.model, &e))?;
        let response = classify::check_status(&self.provider, &request.model, response).await?;
        let bytes = response.bytes().await.map_err(|e| classify::transport(&self.provider, &request.model, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            LlmError::new(
                ErrorClass::Malformed,
                &self.provider,
                &request.model,
                format!("response is not an embedding list: {e}"),
            )
        })
    }
}

/// One model of a provider, as a [`ChatModel`].
#[derive(Debug, Clone)]
pub struct ProviderModel {
    client: OpenAiClient,
    model: String,
}

impl ProviderModel {
    /// `model` (the provider's name for it) at `client`.
    pub fn new(client: OpenAiClient, model: impl Into<String>) -> Self {
        Self { client, model: model.into() }
    }

    fn request_for(&self, request: &ChatRequest) -> ChatRequest {
        let mut request = request.clone();
        request.model.clone_from(&self.model);
        request
    }
}

#[async_trait]
impl ChatModel for ProviderModel {
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.client.chat(self.request_for(request)).await
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, LlmError> {
        self.client.chat_stream(self.request_for(request)).await
    }
}
