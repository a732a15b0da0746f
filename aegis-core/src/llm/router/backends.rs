//! Building each configured model's backend: an OpenAI-compatible chat model or embedder,
//! the offline embedder, or "unavailable" with the reason (provider disabled, key unset).

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use secrecy::SecretString;

use crate::llm::{
    ChatModel, Embedder, Embeddings, ErrorClass, LlmError,
    config::{ModelConfig, ModelKind, ModelsConfig, ProviderConfig},
    offline::OfflineEmbedder,
    openai::{OpenAiClient, ProviderHttp, ProviderModel, Timeouts},
    types::{EmbeddingInput, EmbeddingRequest},
};

/// How a model is reached.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A chat model.
    Chat(Arc<dyn ChatModel>),
    /// An embedder.
    Embed(Arc<dyn Embedder>),
    /// Not reachable here, and why.
    Unavailable(String),
}

/// A configured model and its backend.
#[derive(Debug, Clone)]
pub struct RoutedModel {
    /// The model id.
    pub id: String,
    /// The provider's name.
    pub provider: String,
    /// Its configuration.
    pub config: ModelConfig,
    /// Its backend.
    pub backend: Backend,
}

impl RoutedModel {
    pub(super) fn not_chat(&self) -> LlmError {
        LlmError::new(ErrorClass::BadRequest, &self.provider, &self.config.name, "this model does not chat")
    }

    pub(super) fn not_embedding(&self) -> LlmError {
        LlmError::new(ErrorClass::BadRequest, &self.provider, &self.config.name, "this model does not embed")
    }

    /// Whether it can be called here.
    pub fn available(&self) -> bool {
        !matches!(self.backend, Backend::Unavailable(_))
    }
}

pub(super) fn build(config: &ModelsConfig, http: &ProviderHttp) -> HashMap<String, RoutedModel> {
    let mut clients: HashMap<String, Result<OpenAiClient, String>> = HashMap::new();
    for (name, provider) in &config.providers {
        if let ProviderConfig::Openai { base_url, api_key_env, api_key, enabled, timeout_secs, ca_file } = provider {
            let client = if !enabled {
                Err(format!("provider `{name}` is disabled"))
            } else {
                let key = match (api_key, api_key_env) {
                    (Some(key), _) => Ok(Some(key.clone())),
                    (None, Some(var)) => match std::env::var(var) {
                        Ok(value) if !value.is_empty() => Ok(Some(SecretString::from(value))),
                        _ => Err(format!("provider `{name}` has no API key: set {var}")),
                    },
                    (None, None) => Ok(None),
                };
                let timeouts = Timeouts { request: Duration::from_secs(*timeout_secs), ..Timeouts::default() };
                key.and_then(|key| {
                    let client = |http: &ProviderHttp| OpenAiClient::new(http, name.clone(), base_url, key, timeouts);
                    match ca_file {
                        Some(path) => http.trusting(path).and_then(|trusting| client(&trusting)),
                        None => client(http),
                    }
                    .map_err(|e| format!("provider `{name}`: {e}"))
                })
            };
            clients.insert(name.clone(), client);
        }
    }
    config
        .models
        .iter()
        .map(|(id, model)| {
            let backend = match (config.providers.get(&model.provider), model.kind) {
                (Some(ProviderConfig::Offline), _) => Backend::Embed(Arc::new(OfflineEmbedder)),
                (Some(ProviderConfig::Openai { .. }), kind) => match clients.get(&model.provider) {
                    Some(Ok(client)) if kind == ModelKind::Chat => {
                        Backend::Chat(Arc::new(ProviderModel::new(client.clone(), &model.name)))
                    }
                    Some(Ok(client)) => Backend::Embed(Arc::new(RemoteEmbedder {
                        client: client.clone(),
                        model: model.name.clone(),
                        dimensions: model.dimensions.unwrap_or(0),
                    })),
                    Some(Err(reason)) => Backend::Unavailable(reason.clone()),
                    None => Backend::Unavailable(format!("provider `{}` is not configured", model.provider)),
                },
                (None, _) => Backend::Unavailable(format!("provider `{}` is not configured", model.provider)),
            };
            (
                id.clone(),
                RoutedModel { id: id.clone(), provider: model.provider.clone(), config: model.clone(), backend },
            )
        })
        .collect()
}

/// An embedding model behind an OpenAI-compatible `/embeddings` endpoint.
#[derive(Debug, Clone)]
pub struct RemoteEmbedder {
    client: OpenAiClient,
    model: String,
    dimensions: u32,
}

#[async_trait]
impl Embedder for RemoteEmbedder {
    fn model_id(&self) -> &str {
        &self.model
    }

    fn dimensions(&self) -> usize {
        self.dimensions as usize
    }

    async fn embed(&self, texts: &[String]) -> Result<Embeddings, LlmError> {
        let request = EmbeddingRequest {
            model: self.model.clone(),
            input: EmbeddingInput::Many(texts.to_vec()),
            dimensions: Some(self.dimensions),
            encoding_format: None,
        };
        let mut response = self.client.embeddings(&request).await?;
        response.data.sort_by_key(|d| d.index);
        let malformed = |m: String| LlmError::new(ErrorClass::Malformed, self.client.provider(), &self.model, m);
        if response.data.len() != texts.len() {
            return Err(malformed(format!("{} vectors for {} texts", response.data.len(), texts.len())));
        }
        if let Some(bad) = response.data.iter().find(|d| d.embedding.len() != self.dimensions as usize) {
            return Err(malformed(format!(
                "a vector of {} dimensions, expected {}",
                bad.embedding.len(),
                self.dimensions
            )));
        }
        Ok(Embeddings {
            vectors: response.data.into_iter().map(|d| d.embedding).collect(),
            model: self.model.clone(),
            usage: response.usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// The shipped configuration with Ollama enabled, trusting `ca_file`.
    fn ollama_trusting(ca_file: PathBuf) -> ModelsConfig {
        let mut config = ModelsConfig::default();
        config.providers.insert(
            "ollama".into(),
            ProviderConfig::Openai {
                base_url: "https://llm.internal:11434/v1".into(),
                api_key_env: None,
                api_key: None,
                enabled: true,
                timeout_secs: 120,
                ca_file: Some(ca_file),
            },
        );
        config
    }

    #[test]
    fn a_provider_s_ca_file_is_trusted_and_one_that_cannot_be_read_makes_its_models_unavailable() {
        let http = ProviderHttp::new(Duration::from_secs(5));
        let ca = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/llm/openai/testdata/ca.pem");
        let models = build(&ollama_trusting(ca), &http);
        assert!(models["ollama/llama3.1"].available(), "{:?}", models["ollama/llama3.1"].backend);

        let models = build(&ollama_trusting(PathBuf::from("/nonexistent/internal-ca.pem")), &http);
        let Backend::Unavailable(reason) = &models["ollama/llama3.1"].backend else {
            panic!("available with a CA file that does not exist");
        };
        assert!(
            reason.starts_with("provider `ollama`: cannot read the CA file /nonexistent/internal-ca.pem"),
            "{reason}"
        );
        assert!(models["offline/hash-768"].available(), "the other providers' models are unaffected");
    }
}
