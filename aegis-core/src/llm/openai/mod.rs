//! The OpenAI-compatible HTTP client. One protocol reaches OpenAI, OpenRouter, Groq,
//! Gemini's compatible endpoint, Ollama, vLLM, llama.cpp and a LiteLLM proxy: only the
//! base URL and key differ.

mod classify;
mod forward;
mod sse;
mod stream;
mod transport;

pub use sse::{SseEvent, SseParser};
pub use transport::{ProviderHttp, Transport};

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{
    HeaderValue, Method, Request, Response, Uri,
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT},
};
use http_body_util::Full;
use hyper::body::Incoming;
use secrecy::{ExposeSecret, SecretString};

use super::{
    ChatModel, ChatStream, ErrorClass, LlmError,
    types::{ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, StreamOptions},
};

/// Timeouts of one provider. Connecting (TCP, a proxy's `CONNECT`, TLS) is bounded by the
/// [`ProviderHttp`] its client was made with, shared by every provider.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A whole non-streamed request, and a stream's first chunk.
    pub request: Duration,
    /// The longest silence between two chunks of a stream.
    pub stream_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { request: Duration::from_secs(120), stream_idle: Duration::from_secs(60) }
    }
}

/// A client for one provider's OpenAI-compatible API.
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    transport: Transport,
    provider: String,
    /// `{base}/chat/completions` and `{base}/embeddings`, parsed once.
    chat_uri: Uri,
    embeddings_uri: Uri,
    /// `Bearer <key>`, marked sensitive so it is never logged.
    authorization: Option<HeaderValue>,
    timeouts: Timeouts,
}

impl OpenAiClient {
    /// A client for `provider` at `base_url` (which includes the version path, e.g.
    /// `https://api.openai.com/v1`). `http` is shared so connections are pooled. A base
    /// URL that is not a valid URL, or a key a header cannot carry, is the error.
    pub fn new(
        http: &ProviderHttp,
        provider: impl Into<String>,
        base_url: &str,
        api_key: Option<SecretString>,
        timeouts: Timeouts,
    ) -> Result<Self, String> {
        let base_url = base_url.trim_end_matches('/');
        let uri = |path: &str| {
            let uri = format!("{base_url}{path}")
                .parse::<Uri>()
                .map_err(|e| format!("the base URL `{base_url}` is not a valid URL: {e}"))?;
            match (uri.scheme_str(), uri.host()) {
                (Some("http" | "https"), Some(_)) => Ok(uri),
                _ => Err(format!("the base URL `{base_url}` is not an http:// or https:// URL with a host")),
            }
        };
        let chat_uri = uri("/chat/completions")?;
        let embeddings_uri = uri("/embeddings")?;
        let transport = http.transport(&chat_uri);
        let authorization = match api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                    .map_err(|_| "the API key has characters a header cannot carry".to_owned())?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Self { transport, provider: provider.into(), chat_uri, embeddings_uri, authorization, timeouts })
    }

    /// The provider's name.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    fn error(&self, class: ErrorClass, model: &str, message: impl Into<String>) -> LlmError {
        LlmError::new(class, &self.provider, model, message)
    }

    /// Sends `body` as JSON to `uri` and returns the 2xx response (anything else is its
    /// classified error).
    async fn post(
        &self,
        uri: &Uri,
        model: &str,
        body: &impl serde::Serialize,
        accept: &'static str,
    ) -> Result<Response<Incoming>, LlmError> {
        let body = Bytes::from(
            serde_json::to_vec(body)
                .map_err(|e| self.error(ErrorClass::BadRequest, model, format!("the request is not JSON: {e}")))?,
        );
        let build = || {
            let mut request = Request::new(Full::new(body.clone()));
            *request.method_mut() = Method::POST;
            *request.uri_mut() = uri.clone();
            let headers = request.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(ACCEPT, HeaderValue::from_static(accept));
            headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
            if let Some(authorization) = &self.authorization {
                headers.insert(AUTHORIZATION, authorization.clone());
            }
            request
        };
        let response = self.transport.send(build).await.map_err(|e| self.error(ErrorClass::Connection, model, e))?;
        classify::check_status(&self.provider, model, response).await
    }

    /// Posts and reads the whole JSON answer within the request timeout.
    async fn post_for<T: serde::de::DeserializeOwned>(
        &self,
        uri: &Uri,
        model: &str,
        body: &impl serde::Serialize,
        what: &str,
    ) -> Result<T, LlmError> {
        let exchange = async {
            let response = self.post(uri, model, body, "application/json").await?;
            classify::read_body(&self.provider, model, response.into_body(), MAX_RESPONSE_BYTES).await
        };
        let bytes = tokio::time::timeout(self.timeouts.request, exchange)
            .await
            .map_err(|_| self.error(ErrorClass::Timeout, model, "no complete response in time"))??;
        serde_json::from_slice(&bytes)
            .map_err(|e| self.error(ErrorClass::Malformed, model, format!("response is not {what}: {e}")))
    }

    /// `POST /chat/completions` without streaming.
    pub async fn chat(&self, mut request: ChatRequest) -> Result<ChatResponse, LlmError> {
        request.stream = None;
        request.stream_options = None;
        let parsed: ChatResponse = self.post_for(&self.chat_uri, &request.model, &request, "a chat completion").await?;
        if parsed.choices.is_empty() {
            return Err(self.error(ErrorClass::Malformed, &request.model, "response has no choices"));
        }
        Ok(parsed)
    }

    /// `POST /chat/completions` with `stream: true`, asking for usage in the last chunk.
    pub async fn chat_stream(&self, mut request: ChatRequest) -> Result<ChatStream, LlmError> {
        request.stream = Some(true);
        request.stream_options = Some(StreamOptions { include_usage: true });
        let send = self.post(&self.chat_uri, &request.model, &request, "text/event-stream");
        let response = tokio::time::timeout(self.timeouts.request, send)
            .await
            .map_err(|_| self.error(ErrorClass::Timeout, &request.model, "no response headers in time"))??;
        Ok(stream::chunks(response.into_body(), self.provider.clone(), request.model.clone(), self.timeouts))
    }

    /// `POST /embeddings`.
    pub async fn embeddings(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse, LlmError> {
        self.post_for(&self.embeddings_uri, &request.model, request, "an embedding list").await
    }
}

/// What provider calls name themselves: some API front ends turn away requests without one.
const USER_AGENT_VALUE: &str = concat!("aegis/", env!("CARGO_PKG_VERSION"));

/// The largest successful response body read (a chat completion or an embedding list).
const MAX_RESPONSE_BYTES: usize = 256 << 20;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_must_be_http_or_https_with_a_host_and_a_key_must_fit_a_header() {
        let http = ProviderHttp::new(Duration::from_secs(1));
        let client = |base: &str, key: Option<&str>| {
            OpenAiClient::new(&http, "p", base, key.map(SecretString::from), Timeouts::default()).map(|c| c.chat_uri)
        };
        assert_eq!(client("https://api.example.com/v1/", None).unwrap(), "https://api.example.com/v1/chat/completions");
        assert_eq!(client("http://llm-box/v1", None).unwrap(), "http://llm-box/v1/chat/completions");
        assert_eq!(
            client("http://127.0.0.1:11434/v1", Some("k")).unwrap(),
            "http://127.0.0.1:11434/v1/chat/completions"
        );
        for bad in ["localhost:11434/v1", "ftp://example.com/v1", "/v1", "http://exa mple.com"] {
            let err = client(bad, None).unwrap_err();
            assert!(err.contains(bad.trim_end_matches('/')), "{bad}: {err}");
        }
        let err = client("https://api.example.com/v1", Some("line\nbreak")).unwrap_err();
        assert!(err.contains("API key"), "{err}");
    }

    #[tokio::test]
    async fn a_redirect_is_a_configuration_error_naming_where_it_points() {
        let reply = "HTTP/1.1 308 Permanent Redirect\r\nlocation: https://api.example.com/v2/chat/completions\r\ncontent-length: 0\r\n\r\n";
        let port = transport::tests::upstream_replying(reply).await;
        let http = ProviderHttp::new(Duration::from_secs(5));
        let client =
            OpenAiClient::new(&http, "p", &format!("http://127.0.0.1:{port}/v1"), None, Timeouts::default()).unwrap();
        let request: ChatRequest =
            serde_json::from_value(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
                .unwrap();
        let err = client.chat(request).await.unwrap_err();
        assert_eq!((err.class, err.status), (ErrorClass::NotConfigured, Some(308)), "{err}");
        assert!(err.to_string().contains("https://api.example.com/v2/chat/completions"), "{err}");
    }
}
