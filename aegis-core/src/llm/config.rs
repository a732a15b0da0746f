//! Model configuration: providers, models with prices, aliases (ordered fallback chains)
//! and the tier × intent matrix of allowed aliases. The shipped default mirrors the seed
//! platform; [`ModelsConfig::validate`] rejects a configuration that could let a tier
//! reach what it must not, before anything runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{policy::Intent, tenancy::Tier};

/// Dimensions every embedding model must have (the knowledge base stores `vector(768)`).
pub const EMBEDDING_DIMENSIONS: u32 = 768;

/// How a provider is reached.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProviderConfig {
    /// An OpenAI-compatible HTTP API.
    Openai {
        /// Base URL including the version path, e.g. `https://api.openai.com/v1`.
        base_url: String,
        /// Environment variable holding the API key (none for local servers).
        #[serde(default)]
        api_key_env: Option<String>,
        /// The key itself (prefer `api_key_env`; printed redacted).
        #[serde(default, serialize_with = "crate::config::serialize_secret_opt")]
        api_key: Option<secrecy::SecretString>,
        /// Whether to use it at all.
        #[serde(default = "yes")]
        enabled: bool,
        /// Seconds for a whole request (and a stream's first chunk).
        #[serde(default = "default_timeout")]
        timeout_secs: u64,
        /// A PEM file of CA certificates trusted for this provider besides the public roots
        /// (a server on a private network with an internal CA's certificate).
        #[serde(default)]
        ca_file: Option<std::path::PathBuf>,
    },
    /// The built-in offline embedder.
    Offline,
}

fn yes() -> bool {
    true
}

fn default_timeout() -> u64 {
    120
}

/// What a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Chat completions.
    Chat,
    /// Embeddings.
    Embedding,
}

/// One provider model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Key into `providers`.
    pub provider: String,
    /// The provider's name for it.
    pub name: String,
    /// What it does.
    #[serde(default = "chat_kind")]
    pub kind: ModelKind,
    /// USD per million input tokens.
    #[serde(default)]
    pub input_price_per_mtok: f64,
    /// USD per million output tokens.
    #[serde(default)]
    pub output_price_per_mtok: f64,
    /// Context window in tokens.
    #[serde(default = "default_context")]
    pub context_window: u32,
    /// Premium: only business and enterprise may reach it, and it is metered.
    #[serde(default)]
    pub premium: bool,
    /// Vector length (embedding models).
    #[serde(default)]
    pub dimensions: Option<u32>,
}

fn chat_kind() -> ModelKind {
    ModelKind::Chat
}

fn default_context() -> u32 {
    8192
}

/// An alias: an ordered fallback chain of models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasConfig {
    /// Model ids, tried in order.
    pub models: Vec<String>,
    /// For people.
    #[serde(default)]
    pub description: String,
}

/// Retries, backoff and cooldown of the router.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RouterConfig {
    /// Attempts per model for retryable errors.
    pub attempts_per_model: u32,
    /// First backoff, doubled per retry, with jitter.
    pub backoff_ms: u64,
    /// Longest backoff.
    pub max_backoff_ms: u64,
    /// Consecutive failures that put a model into cooldown.
    pub cooldown_after_failures: u32,
    /// Cooldown length.
    pub cooldown_secs: u64,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            attempts_per_model: 2,
            backoff_ms: 200,
            max_backoff_ms: 2_000,
            cooldown_after_failures: 3,
            cooldown_secs: 30,
        }
    }
}

/// Premium spend limits, micro-USD per calendar month, by tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PremiumBudgets {
    /// Business tier default.
    pub business: i64,
    /// Enterprise tier default.
    pub enterprise: i64,
    /// Seconds after which an unsettled reservation is freed by the sweeper.
    pub reservation_ttl_secs: u64,
    /// Days a finished (settled, released, expired) reservation is kept before the sweeper
    /// deletes it; 0 keeps them for ever. The spend itself is in the meters and the ledger.
    pub finished_reservations_kept_days: u32,
    /// Output tokens assumed when a request sets no limit.
    pub default_max_output_tokens: u32,
}

impl PremiumBudgets {
    /// How long the sweeper keeps finished reservations (`finished_reservations_kept_days`);
    /// `None` keeps them for ever.
    pub fn finished_reservations_kept(&self) -> Option<std::time::Duration> {
        let days = u64::from(self.finished_reservations_kept_days);
        (days > 0).then(|| std::time::Duration::from_secs(days * 86_400))
    }
}

impl Default for PremiumBudgets {
    fn default() -> Self {
        Self {
            business: 50_000_000,
            enterprise: 500_000_000,
            reservation_ttl_secs: 900,
            finished_reservations_kept_days: 35,
            default_max_output_tokens: 4096,
        }
    }
}

/// The whole `[models]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelsConfig {
    /// Providers by name.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Models by id.
    pub models: BTreeMap<String, ModelConfig>,
    /// Aliases by name.
    pub aliases: BTreeMap<String, AliasConfig>,
    /// Allowed aliases per tier and intent, preferred first.
    pub policy: BTreeMap<Tier, BTreeMap<Intent, Vec<String>>>,
    /// Router behaviour.
    pub router: RouterConfig,
    /// Premium budgets.
    pub premium: PremiumBudgets,
    /// Milliseconds between the batched writes of decisions and ledger rows (decision 8):
    /// at most this much of them is lost when AEGIS crashes.
    pub log_interval_ms: u64,
}

/// Why a models configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid models configuration: {0}")]
pub struct ModelsConfigError(pub String);

impl ModelsConfig {
    /// Checks references, kinds, prices, dimensions and the premium rules.
    pub fn validate(&self) -> Result<(), ModelsConfigError> {
        let fail = |msg: String| Err(ModelsConfigError(msg));
        if self.log_interval_ms == 0 || self.log_interval_ms > 60_000 {
            return fail(format!("log_interval_ms must be 1 to 60000, not {}", self.log_interval_ms));
        }
        for (id, model) in &self.models {
            if !self.providers.contains_key(&model.provider) {
                return fail(format!("model `{id}` names unknown provider `{}`", model.provider));
            }
            for (what, price) in [("input", model.input_price_per_mtok), ("output", model.output_price_per_mtok)] {
                if !price.is_finite() || price < 0.0 {
                    return fail(format!("model `{id}` has an invalid {what} price {price}"));
                }
            }
            if model.kind == ModelKind::Embedding && model.dimensions != Some(EMBEDDING_DIMENSIONS) {
                return fail(format!(
                    "embedding model `{id}` has {} dimensions; AEGIS stores {EMBEDDING_DIMENSIONS}",
                    model.dimensions.map_or("unknown".into(), |d| d.to_string())
                ));
            }
            let offline = matches!(self.providers.get(&model.provider), Some(ProviderConfig::Offline));
            if offline && model.kind != ModelKind::Embedding {
                return fail(format!("model `{id}`: the offline provider only embeds"));
            }
        }
        for (name, alias) in &self.aliases {
            if alias.models.is_empty() {
                return fail(format!("alias `{name}` has no models"));
            }
            let kinds: Vec<ModelKind> = alias
                .models
                .iter()
                .map(|m| {
                    self.models
                        .get(m)
                        .map(|c| c.kind)
                        .ok_or_else(|| ModelsConfigError(format!("alias `{name}` names unknown model `{m}`")))
                })
                .collect::<Result<_, _>>()?;
            if kinds.windows(2).any(|k| k[0] != k[1]) {
                return fail(format!("alias `{name}` mixes chat and embedding models"));
            }
        }
        for (tier, intents) in &self.policy {
            for (intent, aliases) in intents {
                for alias in aliases {
                    let Some(config) = self.aliases.get(alias) else {
                        return fail(format!("policy {tier}.{intent} names unknown alias `{alias}`"));
                    };
                    let kind = self.models.get(&config.models[0]).map(|m| m.kind);
                    let wanted = if *intent == Intent::Embedding { ModelKind::Embedding } else { ModelKind::Chat };
                    if kind != Some(wanted) {
                        return fail(format!(
                            "policy {tier}.{intent} allows `{alias}`, which is not a {wanted:?} alias"
                        ));
                    }
                    if !tier.may_use_premium()
                        && let Some(premium) =
                            config.models.iter().find(|m| self.models.get(*m).is_some_and(|c| c.premium))
                    {
                        return fail(format!(
                            "the {tier} tier could reach premium model `{premium}` through alias `{alias}` ({intent}); \
                             only business and enterprise may use premium models"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// A stable fingerprint of this configuration, recorded with every decision.
    pub fn version(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical = serde_json::to_value(self).map(|v| v.to_string()).unwrap_or_default();
        let digest = Sha256::digest(canonical.as_bytes());
        format!("p-{}", &hex::encode(digest)[..16])
    }

    /// The premium budget of a tier (micro-USD per month).
    pub fn premium_budget(&self, tier: Tier) -> i64 {
        match tier {
            Tier::Business => self.premium.business,
            Tier::Enterprise => self.premium.enterprise,
            _ => 0,
        }
    }
}

fn openai(base_url: &str, key: Option<&str>, enabled: bool) -> ProviderConfig {
    ProviderConfig::Openai {
        base_url: base_url.into(),
        api_key_env: key.map(Into::into),
        api_key: None,
        enabled,
        timeout_secs: 120,
        ca_file: None,
    }
}

fn model(provider: &str, name: &str, input: f64, output: f64, context: u32, premium: bool) -> ModelConfig {
    ModelConfig {
        provider: provider.into(),
        name: name.into(),
        kind: ModelKind::Chat,
        input_price_per_mtok: input,
        output_price_per_mtok: output,
        context_window: context,
        premium,
        dimensions: None,
    }
}

fn alias(models: &[&str], description: &str) -> AliasConfig {
    AliasConfig { models: models.iter().map(|m| (*m).to_owned()).collect(), description: description.into() }
}

impl Default for ModelsConfig {
    fn default() -> Self {
        let providers = BTreeMap::from([
            ("groq".into(), openai("https://api.groq.com/openai/v1", Some("GROQ_API_KEY"), true)),
            (
                "gemini".into(),
                openai("https://generativelanguage.googleapis.com/v1beta/openai", Some("GEMINI_API_KEY"), true),
            ),
            ("openrouter".into(), openai("https://openrouter.ai/api/v1", Some("OPENROUTER_API_KEY"), true)),
            ("ollama".into(), openai("http://127.0.0.1:11434/v1", None, false)),
            ("offline".into(), ProviderConfig::Offline),
        ]);
        let mut models = BTreeMap::from([
            ("groq/llama-3.3-70b".into(), model("groq", "llama-3.3-70b-versatile", 0.59, 0.79, 131_072, false)),
            ("groq/llama-3.1-8b".into(), model("groq", "llama-3.1-8b-instant", 0.05, 0.08, 131_072, false)),
            ("gemini/flash".into(), model("gemini", "gemini-2.0-flash", 0.10, 0.40, 1_048_576, false)),
            ("openrouter/gpt-4o-mini".into(), model("openrouter", "openai/gpt-4o-mini", 0.15, 0.60, 128_000, false)),
            ("openrouter/gpt-4o".into(), model("openrouter", "openai/gpt-4o", 2.50, 10.00, 128_000, true)),
            ("ollama/llama3.1".into(), model("ollama", "llama3.1", 0.0, 0.0, 131_072, false)),
        ]);
        models.insert(
            "offline/hash-768".into(),
            ModelConfig {
                kind: ModelKind::Embedding,
                dimensions: Some(EMBEDDING_DIMENSIONS),
                ..model("offline", super::offline::OFFLINE_MODEL_ID, 0.0, 0.0, 1_000_000, false)
            },
        );
        let aliases = BTreeMap::from([
            ("groq-llama".into(), alias(&["groq/llama-3.3-70b", "gemini/flash"], "free tier, fast")),
            ("gemini-flash".into(), alias(&["gemini/flash", "groq/llama-3.1-8b"], "free fallback")),
            ("openrouter-mini".into(), alias(&["openrouter/gpt-4o-mini", "groq/llama-3.3-70b"], "funded: pro and up")),
            (
                "openrouter-gpt4o".into(),
                alias(&["openrouter/gpt-4o", "openrouter/gpt-4o-mini"], "premium: business and enterprise, metered"),
            ),
            ("ollama-local".into(), alias(&["ollama/llama3.1"], "local model (enable the ollama provider)")),
            ("embed".into(), alias(&["offline/hash-768"], "768-dimension embeddings; offline by default")),
        ]);
        let free = |chat: &[&str]| -> BTreeMap<Intent, Vec<String>> {
            let list = |l: &[&str]| l.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
            BTreeMap::from([
                (Intent::Chat, list(chat)),
                (Intent::Reasoning, list(chat)),
                (Intent::Extraction, list(chat)),
                (Intent::Routing, list(&["groq-llama", "gemini-flash", "ollama-local"])),
                (Intent::Creative, list(chat)),
                (Intent::Code, list(chat)),
                (Intent::Embedding, list(&["embed"])),
            ])
        };
        let basic = ["groq-llama", "gemini-flash", "ollama-local"];
        let funded = ["openrouter-mini", "groq-llama", "gemini-flash", "ollama-local"];
        let premium = ["openrouter-gpt4o", "openrouter-mini", "groq-llama", "gemini-flash", "ollama-local"];
        let mut business = free(&funded);
        for intent in [Intent::Reasoning, Intent::Creative, Intent::Code] {
            business.insert(intent, premium.iter().map(|a| (*a).to_owned()).collect());
        }
        if let Some(chat) = business.get_mut(&Intent::Chat) {
            chat.push("openrouter-gpt4o".into());
        }
        let policy = BTreeMap::from([
            (Tier::Free, free(&basic)),
            (Tier::Trial, free(&basic)),
            (Tier::Pro, free(&funded)),
            (Tier::Business, business.clone()),
            (Tier::Enterprise, business),
        ]);
        Self {
            providers,
            models,
            aliases,
            policy,
            router: RouterConfig::default(),
            premium: PremiumBudgets::default(),
            log_interval_ms: 50,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid_and_keeps_premium_to_paying_tiers() {
        let config = ModelsConfig::default();
        config.validate().unwrap();
        assert!(config.version().starts_with("p-"));
        assert_eq!(config.version(), ModelsConfig::default().version());
    }

    #[test]
    fn a_free_tier_that_could_reach_premium_is_rejected() {
        let mut config = ModelsConfig::default();
        config.policy.get_mut(&Tier::Free).unwrap().get_mut(&Intent::Chat).unwrap().push("openrouter-gpt4o".into());
        let err = config.validate().unwrap_err();
        assert!(err.0.contains("free tier could reach premium model `openrouter/gpt-4o`"), "{err}");

        // Also through a fallback hidden in another alias's chain.
        let mut config = ModelsConfig::default();
        config.aliases.get_mut("groq-llama").unwrap().models.push("openrouter/gpt-4o".into());
        let err = config.validate().unwrap_err();
        assert!(err.0.contains("premium model `openrouter/gpt-4o` through alias `groq-llama`"), "{err}");
    }

    #[test]
    fn bad_references_and_dimensions_are_rejected() {
        let mut config = ModelsConfig::default();
        config.policy.get_mut(&Tier::Pro).unwrap().get_mut(&Intent::Code).unwrap().push("nope".into());
        assert!(config.validate().unwrap_err().0.contains("unknown alias `nope`"));

        let mut config = ModelsConfig::default();
        config.aliases.get_mut("embed").unwrap().models = vec!["ghost".into()];
        assert!(config.validate().unwrap_err().0.contains("unknown model `ghost`"));

        let mut config = ModelsConfig::default();
        config.models.get_mut("offline/hash-768").unwrap().dimensions = Some(1536);
        assert!(config.validate().unwrap_err().0.contains("1536 dimensions"));

        let mut config = ModelsConfig::default();
        config.policy.get_mut(&Tier::Free).unwrap().insert(Intent::Embedding, vec!["groq-llama".into()]);
        assert!(config.validate().unwrap_err().0.contains("not a Embedding alias"));

        let mut config = ModelsConfig::default();
        config.models.get_mut("gemini/flash").unwrap().output_price_per_mtok = -1.0;
        assert!(config.validate().unwrap_err().0.contains("invalid output price"));
    }
}
