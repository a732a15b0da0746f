//! Model policy: which aliases a tenant may use for an intent, decided before any call.
//!
//! The resolver turns (tenant, tier, intent, requested alias) into a [`Decision`]: allowed
//! or denied, the alias, the chain of models actually permitted, and a reason code. Free,
//! trial and pro tenants never reach a premium model, not even through a fallback: the
//! chain is filtered here, before the router sees it (and the configuration loader already
//! refuses a matrix that would allow it). Business and enterprise premium calls are
//! metered. Every decision is written to `public.ai_audit_log`.

mod audit;
pub mod meters;

pub use audit::DecisionLog;

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{llm::config::ModelsConfig, tenancy::Tier};

/// What a model call is for; the policy matrix is indexed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Intent {
    /// Conversation.
    Chat,
    /// Multi-step reasoning.
    Reasoning,
    /// Structured extraction.
    Extraction,
    /// Choosing an agent or a tool.
    Routing,
    /// Creative writing (scripts, campaigns).
    Creative,
    /// Code.
    Code,
    /// Embeddings.
    Embedding,
}

impl Intent {
    /// Every intent.
    pub const ALL: [Intent; 7] = [
        Intent::Chat,
        Intent::Reasoning,
        Intent::Extraction,
        Intent::Routing,
        Intent::Creative,
        Intent::Code,
        Intent::Embedding,
    ];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Chat => "chat",
            Intent::Reasoning => "reasoning",
            Intent::Extraction => "extraction",
            Intent::Routing => "routing",
            Intent::Creative => "creative",
            Intent::Code => "code",
            Intent::Embedding => "embedding",
        }
    }
}

impl fmt::Display for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Intent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Intent::ALL.into_iter().find(|i| i.as_str() == s).ok_or_else(|| {
            format!(
                "unknown intent `{}` (expected chat, reasoning, extraction, routing, creative, code or embedding)",
                s.escape_debug()
            )
        })
    }
}

/// Why a decision came out as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The requested alias is allowed for this tier and intent.
    RequestedAllowed,
    /// No alias was requested: the intent's preferred alias.
    IntentDefault,
    /// The requested alias exists but this tier may not use it for this intent.
    AliasNotAllowed,
    /// No such alias.
    UnknownAlias,
    /// The tier has no alias for this intent.
    NoAliasForIntent,
    /// Every model of the alias was filtered out (premium models for a tier without them).
    NoPermittedModel,
}

impl Reason {
    /// The code as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::RequestedAllowed => "requested_allowed",
            Reason::IntentDefault => "intent_default",
            Reason::AliasNotAllowed => "alias_not_allowed",
            Reason::UnknownAlias => "unknown_alias",
            Reason::NoAliasForIntent => "no_alias_for_intent",
            Reason::NoPermittedModel => "no_permitted_model",
        }
    }
}

/// The policy's answer, made before any call and recorded in `ai_audit_log`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Id, linked from ledger rows.
    pub id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// The tenant.
    pub tenant: String,
    /// Its tier.
    pub tier: Tier,
    /// The intent.
    pub intent: Intent,
    /// The alias asked for, if any.
    pub requested: Option<String>,
    /// Aliases this tier may use for this intent, preferred first.
    pub candidates: Vec<String>,
    /// The chosen alias.
    pub alias: Option<String>,
    /// Models permitted, in fallback order (premium removed where not allowed): the
    /// requested alias's, or for an intent those of every candidate alias in turn.
    pub chain: Vec<String>,
    /// The alias each model of `chain` was permitted through, in the same order.
    pub chain_aliases: Vec<String>,
    /// Models of the alias (or the candidates) removed by the tier filter.
    pub filtered: Vec<String>,
    /// Allowed or not.
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
    /// Whether premium spend must be metered.
    pub metered: bool,
    /// The configuration's fingerprint.
    pub policy_version: String,
}

impl Decision {
    /// A short human explanation of a denial.
    pub fn explain(&self) -> String {
        let alias = self.requested.as_deref().or(self.alias.as_deref()).unwrap_or("-");
        match self.reason {
            Reason::AliasNotAllowed => {
                format!(
                    "the {} tier may not use `{alias}` for {}; allowed: {}",
                    self.tier,
                    self.intent,
                    self.candidates.join(", ")
                )
            }
            Reason::UnknownAlias => format!("there is no model alias `{alias}`"),
            Reason::NoAliasForIntent => format!("the {} tier has no model for {}", self.tier, self.intent),
            Reason::NoPermittedModel => format!("no model of `{alias}` is permitted for the {} tier", self.tier),
            Reason::RequestedAllowed | Reason::IntentDefault => format!("allowed: `{alias}`"),
        }
    }
}

/// Decides, from the configuration alone (no I/O).
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    config: std::sync::Arc<ModelsConfig>,
    version: String,
}

impl PolicyResolver {
    /// A resolver over a validated configuration.
    pub fn new(config: std::sync::Arc<ModelsConfig>) -> Self {
        let version = config.version();
        Self { config, version }
    }

    /// The configuration.
    pub fn config(&self) -> &ModelsConfig {
        &self.config
    }

    /// Aliases `tier` may use for `intent`, preferred first.
    pub fn candidates(&self, tier: Tier, intent: Intent) -> Vec<String> {
        self.config.policy.get(&tier).and_then(|m| m.get(&intent)).cloned().unwrap_or_default()
    }

    /// Every alias `tier` may use for any intent.
    pub fn allowed_aliases(&self, tier: Tier) -> Vec<String> {
        let mut all: Vec<String> =
            self.config.policy.get(&tier).map(|m| m.values().flatten().cloned().collect()).unwrap_or_default();
        all.sort();
        all.dedup();
        all
    }

    /// Decides for one call.
    pub fn decide(&self, tenant: &str, tier: Tier, intent: Intent, requested: Option<&str>) -> Decision {
        let candidates = self.candidates(tier, intent);
        let mut decision = Decision {
            id: Uuid::now_v7(),
            at: Utc::now(),
            tenant: tenant.to_owned(),
            tier,
            intent,
            requested: requested.map(str::to_owned),
            candidates: candidates.clone(),
            alias: None,
            chain: Vec::new(),
            chain_aliases: Vec::new(),
            filtered: Vec::new(),
            allowed: false,
            reason: Reason::NoAliasForIntent,
            metered: false,
            policy_version: self.version.clone(),
        };
        // A requested alias is walked alone; an intent walks its candidates in turn, so
        // that `intent:chat` still answers while the preferred alias's providers are down
        // or not configured.
        let (aliases, reason): (Vec<String>, Reason) = match requested {
            Some(name) if !self.config.aliases.contains_key(name) => {
                decision.reason = Reason::UnknownAlias;
                return decision;
            }
            Some(name) if !candidates.iter().any(|c| c == name) => {
                decision.reason = Reason::AliasNotAllowed;
                return decision;
            }
            Some(name) => (vec![name.to_owned()], Reason::RequestedAllowed),
            None if candidates.is_empty() => return decision,
            None => (candidates, Reason::IntentDefault),
        };
        let premium = |m: &String| self.config.models.get(m).is_some_and(|c| c.premium);
        for alias in &aliases {
            for model in self.config.aliases.get(alias).map(|a| a.models.as_slice()).unwrap_or_default() {
                if decision.chain.contains(model) || decision.filtered.contains(model) {
                    continue;
                }
                if tier.may_use_premium() || !premium(model) {
                    decision.chain.push(model.clone());
                    decision.chain_aliases.push(alias.clone());
                } else {
                    decision.filtered.push(model.clone());
                }
            }
        }
        decision.metered = tier.may_use_premium() && decision.chain.iter().any(premium);
        // The alias is the first that permits a model (the requested one, when asked for).
        decision.alias = decision.chain_aliases.first().or(aliases.first()).cloned();
        if decision.chain.is_empty() {
            decision.reason = Reason::NoPermittedModel;
            return decision;
        }
        decision.allowed = true;
        decision.reason = reason;
        decision
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn resolver() -> PolicyResolver {
        PolicyResolver::new(Arc::new(ModelsConfig::default()))
    }

    #[test]
    fn an_intent_walks_every_candidate_alias_in_turn_and_a_requested_alias_alone() {
        let r = resolver();
        let d = r.decide("t", Tier::Free, Intent::Chat, None);
        assert_eq!(d.alias.as_deref(), Some("groq-llama"));
        assert_eq!(d.chain, ["groq/llama-3.3-70b", "gemini/flash", "groq/llama-3.1-8b", "ollama/llama3.1"]);
        assert_eq!(d.chain_aliases, ["groq-llama", "groq-llama", "gemini-flash", "ollama-local"], "each model once");
        let d = r.decide("t", Tier::Free, Intent::Chat, Some("gemini-flash"));
        assert_eq!(d.chain, ["gemini/flash", "groq/llama-3.1-8b"]);
        assert_eq!(d.chain_aliases, ["gemini-flash", "gemini-flash"]);
        // A business tenant's chat may fall back to the premium alias its list ends with:
        // the call is metered, whatever model answers.
        let d = r.decide("t", Tier::Business, Intent::Chat, None);
        assert_eq!(d.alias.as_deref(), Some("openrouter-mini"));
        assert_eq!(d.chain.last().map(String::as_str), Some("openrouter/gpt-4o"));
        assert!(d.metered);
        // Pro never reaches premium through any candidate.
        let d = r.decide("t", Tier::Pro, Intent::Chat, None);
        assert!(!d.chain.iter().any(|m| r.config().models[m].premium) && !d.metered, "{:?}", d.chain);
    }

    #[test]
    fn the_matrix_of_tiers_and_intents() {
        let r = resolver();
        for tier in Tier::ALL {
            for intent in Intent::ALL {
                let d = r.decide("t", tier, intent, None);
                assert!(d.allowed, "{tier} {intent}: {:?}", d.reason);
                assert_eq!(d.reason, Reason::IntentDefault);
                let premium = d.chain.iter().any(|m| r.config().models[m].premium);
                assert_eq!(premium, d.metered);
                if !tier.may_use_premium() {
                    assert!(!premium, "{tier} {intent} reached premium");
                }
            }
        }
        assert_eq!(r.decide("t", Tier::Business, Intent::Reasoning, None).alias.as_deref(), Some("openrouter-gpt4o"));
        assert_eq!(r.decide("t", Tier::Pro, Intent::Chat, None).alias.as_deref(), Some("openrouter-mini"));
        assert_eq!(r.decide("t", Tier::Free, Intent::Chat, None).alias.as_deref(), Some("groq-llama"));
        assert_eq!(r.decide("t", Tier::Free, Intent::Embedding, None).chain, ["offline/hash-768"]);
    }

    #[test]
    fn free_and_pro_are_refused_premium_with_a_reason() {
        let r = resolver();
        for tier in [Tier::Free, Tier::Trial, Tier::Pro] {
            let d = r.decide("t", tier, Intent::Chat, Some("openrouter-gpt4o"));
            assert!(!d.allowed);
            assert_eq!(d.reason, Reason::AliasNotAllowed);
            assert!(d.chain.is_empty());
            assert!(d.explain().contains("may not use `openrouter-gpt4o`"), "{}", d.explain());
        }
        let d = r.decide("t", Tier::Free, Intent::Chat, Some("openrouter-mini"));
        assert_eq!(d.reason, Reason::AliasNotAllowed);
        let d = r.decide("t", Tier::Enterprise, Intent::Chat, Some("openrouter-gpt4o"));
        assert!(d.allowed && d.metered);
        assert_eq!(d.chain, ["openrouter/gpt-4o", "openrouter/gpt-4o-mini"]);
        assert_eq!(r.decide("t", Tier::Pro, Intent::Chat, Some("nope")).reason, Reason::UnknownAlias);
    }

    #[test]
    fn the_chain_is_filtered_even_if_the_matrix_slipped() {
        // Bypass validation to show the resolver's own guard.
        let mut config = ModelsConfig::default();
        config.policy.get_mut(&Tier::Free).unwrap().insert(Intent::Chat, vec!["openrouter-gpt4o".into()]);
        let r = PolicyResolver::new(Arc::new(config));
        let d = r.decide("t", Tier::Free, Intent::Chat, None);
        assert_eq!(d.chain, ["openrouter/gpt-4o-mini"]);
        assert_eq!(d.filtered, ["openrouter/gpt-4o"]);
        assert!(!d.metered);
    }
}
