//! Models: the `ChatModel` and `Embedder` traits, the OpenAI-compatible HTTP client that
//! reaches every supported provider, the offline embedder, the router that walks an
//! alias's fallback chain, and the provider ledger.

pub mod config;
mod error;
mod extra_fields;
pub mod ledger;
pub mod offline;
pub mod openai;
pub mod router;
mod service;
pub mod types;

pub use service::{AliasInfo, CallScope, Completion, ModelError, Models, Target};

pub use error::{ErrorClass, LlmError};

use async_trait::async_trait;
use futures::stream::BoxStream;

use types::{ChatChunk, ChatRequest, ChatResponse, Usage};

/// A stream of chat chunks; it ends after the last chunk (or the first error).
pub type ChatStream = BoxStream<'static, Result<ChatChunk, LlmError>>;

/// A chat model: one provider model, reached over its wire protocol.
#[async_trait]
pub trait ChatModel: Send + Sync + std::fmt::Debug {
    /// Answers in one response.
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;
    /// Answers as a stream of chunks. Errors before the first chunk are returned here;
    /// later ones arrive in the stream.
    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, LlmError>;
}

/// Vectors for a batch of texts.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per input text, in order.
    pub vectors: Vec<Vec<f32>>,
    /// The model that made them (recorded beside every stored vector).
    pub model: String,
    /// Usage, when the provider reports it.
    pub usage: Option<Usage>,
}

/// Turns texts into vectors.
#[async_trait]
pub trait Embedder: Send + Sync + std::fmt::Debug {
    /// The model id recorded with each vector.
    fn model_id(&self) -> &str;
    /// The vector length.
    fn dimensions(&self) -> usize;
    /// Embeds `texts` in one batch.
    async fn embed(&self, texts: &[String]) -> Result<Embeddings, LlmError>;
}
