//! The model service: the one door to every model call. It decides under the tenant's
//! policy (and records the decision), reserves premium spend for metered calls, routes,
//! and settles from the provider's usage.
//!
//! Writes on the request path: for a metered call, the reservation and the settlement
//! (one statement each, synchronous: they guard the quota; the first call of a window also
//! creates its meter row). Decisions and ledger rows are batched off the request path; a
//! crash can lose the last ~50 ms of them, and a reservation left held by a crash is
//! freed by the sweeper after its TTL.

use std::{str::FromStr, sync::Arc, time::Duration};

use serde::Serialize;
use uuid::Uuid;

use super::{
    Embeddings,
    config::{ModelKind, ModelsConfig},
    ledger::Ledger,
    router::{Backend, PremiumSpend, RouteTarget, Routed, RoutedStream, Router, RouterError, StreamEnd},
    types::{ChatRequest, ChatResponse},
};
use crate::{
    clock::SharedClock,
    db::{Database, DbError},
    policy::{
        Decision, DecisionLog, Intent, PolicyResolver,
        meters::{MeterError, Meters, PREMIUM_SPEND, Reservation, Window},
    },
    tenancy::Tier,
};

/// Who calls, for policy and audit.
#[derive(Debug, Clone)]
pub struct CallScope {
    /// The tenant.
    pub tenant: String,
    /// Its tier.
    pub tier: Tier,
    /// The caller, as recorded in audits.
    pub caller: String,
    /// The agent or skill run, if any.
    pub run_id: Option<Uuid>,
}

/// What the caller asks for: an intent (its preferred alias) or a named alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `intent:<name>`.
    Intent(Intent),
    /// An alias, checked against an intent's allowed list.
    Alias {
        /// The alias.
        alias: String,
        /// The intent it is used for.
        intent: Intent,
    },
}

impl Target {
    /// Parses the gateway's `model` field: `intent:<name>` or an alias (for `default`).
    pub fn parse(model: &str, default: Intent) -> Result<Self, String> {
        match model.strip_prefix("intent:") {
            Some(intent) => Ok(Target::Intent(Intent::from_str(intent)?)),
            None if model.is_empty() => Ok(Target::Intent(default)),
            None => Ok(Target::Alias { alias: model.to_owned(), intent: default }),
        }
    }
}

/// A refused or failed model call.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The policy refused it.
    #[error("denied by policy ({reason}): {message}")]
    Denied {
        /// The decision.
        decision_id: Uuid,
        /// Its reason code.
        reason: &'static str,
        /// A human explanation.
        message: String,
    },
    /// The premium budget would be exceeded.
    #[error(transparent)]
    Quota(MeterError),
    /// Every permitted model failed.
    #[error(transparent)]
    AllFailed(RouterError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<MeterError> for ModelError {
    fn from(err: MeterError) -> Self {
        match err {
            MeterError::Db(db) => ModelError::Db(db),
            other => ModelError::Quota(other),
        }
    }
}

/// A completed call.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The response.
    pub response: ChatResponse,
    /// The decision.
    pub decision: Decision,
    /// The model that answered.
    pub model: String,
    /// Its cost in micro-USD (`None`: unpriced).
    pub cost_micro_usd: Option<i64>,
}

/// An alias a tier may use, for `/v1/models`.
#[derive(Debug, Clone, Serialize)]
pub struct AliasInfo {
    /// The alias.
    pub alias: String,
    /// Chat or embedding.
    pub kind: ModelKind,
    /// Its description.
    pub description: String,
    /// Whether calls through it are metered for this tier.
    pub metered: bool,
}

/// The model service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Models {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    resolver: PolicyResolver,
    router: Router,
    meters: Meters,
    decisions: DecisionLog,
    ledger: Ledger,
}

/// How long connecting to a provider may take (TCP, a proxy's `CONNECT`, TLS), for every
/// provider: a connection that cannot be made in this long fails that attempt, and the
/// chain goes on.
const PROVIDER_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Models {
    /// Builds the service. `config` must have passed [`ModelsConfig::validate`].
    pub fn new(db: &Database, config: Arc<ModelsConfig>, clock: SharedClock) -> Self {
        // Meters and the append-only logs commit asynchronously (see Database::async_commit).
        let fast = db.async_commit(8);
        let interval = Duration::from_millis(config.log_interval_ms);
        let writers = db.batch_writers(4);
        let ledger = Ledger::spawn(writers.clone(), interval);
        let decisions = DecisionLog::spawn(writers, interval);
        let http = super::openai::ProviderHttp::new(PROVIDER_CONNECT_TIMEOUT);
        let router = Router::new(&config, &http, clock.clone(), ledger.clone());
        let meters = Meters::new(fast, clock);
        Self { inner: Arc::new(Inner { resolver: PolicyResolver::new(config), router, meters, decisions, ledger }) }
    }

    /// The configuration.
    pub fn config(&self) -> &ModelsConfig {
        self.inner.resolver.config()
    }

    /// The meters.
    pub fn meters(&self) -> &Meters {
        &self.inner.meters
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// Decision rows the batched writer could not write (a metric).
    pub fn decisions_lost(&self) -> u64 {
        self.inner.decisions.lost_rows()
    }

    /// The router.
    pub fn router(&self) -> &Router {
        &self.inner.router
    }

    /// Writes queued decisions and ledger rows now.
    pub async fn flush(&self) {
        self.inner.decisions.flush().await;
        self.inner.ledger.flush().await;
    }

    /// Aliases `tier` may use, with their kind.
    pub fn aliases_for(&self, tier: Tier) -> Vec<AliasInfo> {
        let config = self.config();
        self.inner
            .resolver
            .allowed_aliases(tier)
            .into_iter()
            .filter_map(|alias| {
                let a = config.aliases.get(&alias)?;
                let kind = config.models.get(a.models.first()?)?.kind;
                let metered =
                    tier.may_use_premium() && a.models.iter().any(|m| config.models.get(m).is_some_and(|c| c.premium));
                Some(AliasInfo { alias, kind, description: a.description.clone(), metered })
            })
            .collect()
    }

    /// Whether any model an intent could use is reachable here (keys set, provider enabled).
    pub fn has_available_model(&self, tier: Tier, intent: Intent) -> bool {
        let decision = self.inner.resolver.decide("-", tier, intent, None);
        decision.chain.iter().any(|m| self.inner.router.model(m).is_some_and(|m| m.available()))
    }

    /// The id recorded with the vectors an embedding by `tier` would make: that of the
    /// first reachable embedder of the permitted chain (the router may still skip it while
    /// it cools down). `None` when no embedder is reachable.
    pub fn embedding_model(&self, tier: Tier) -> Option<String> {
        let decision = self.inner.resolver.decide("-", tier, Intent::Embedding, None);
        decision.chain.iter().find_map(|m| match &self.inner.router.model(m)?.backend {
            Backend::Embed(embedder) => Some(embedder.model_id().to_owned()),
            _ => None,
        })
    }

    /// The most a call of `intent` by `tier` could cost with `input_tokens` in and at most
    /// `output_tokens` out, at the dearest model the policy permits (micro-USD, rounded
    /// up; 0 when every permitted model is free): what a budget must hold before the call.
    pub fn cost_ceiling(&self, tier: Tier, intent: Intent, input_tokens: i64, output_tokens: i64) -> i64 {
        let config = self.config();
        let decision = self.inner.resolver.decide("-", tier, intent, None);
        decision
            .chain
            .iter()
            .filter_map(|m| config.models.get(m))
            .map(|m| {
                (input_tokens as f64 * m.input_price_per_mtok + output_tokens as f64 * m.output_price_per_mtok).ceil()
                    as i64
            })
            .max()
            .unwrap_or(0)
    }

    /// Decides and records the decision; a denial is an error.
    pub async fn decide(&self, scope: &CallScope, target: &Target) -> Result<Decision, ModelError> {
        let (intent, requested) = match target {
            Target::Intent(intent) => (*intent, None),
            Target::Alias { alias, intent } => (*intent, Some(alias.as_str())),
        };
        let decision = self.inner.resolver.decide(&scope.tenant, scope.tier, intent, requested);
        self.inner.decisions.record(&decision, &scope.caller).await;
        if !decision.allowed {
            return Err(ModelError::Denied {
                decision_id: decision.id,
                reason: decision.reason.as_str(),
                message: decision.explain(),
            });
        }
        Ok(decision)
    }

    fn route_target(scope: &CallScope, decision: &Decision) -> RouteTarget {
        RouteTarget {
            tenant: scope.tenant.clone(),
            decision_id: decision.id,
            alias: decision.alias.clone().unwrap_or_default(),
            chain: decision.chain.clone(),
            chain_aliases: decision.chain_aliases.clone(),
            run_id: scope.run_id,
        }
    }

    /// Estimates the premium spend of `request` at the dearest premium model of the chain:
    /// input bytes / 3 tokens (conservative for most text) plus the output limit.
    fn estimate(&self, decision: &Decision, request: &ChatRequest) -> i64 {
        let config = self.config();
        let input_bytes = serde_json::to_vec(&request.messages).map(|v| v.len()).unwrap_or(0)
            + request.tools.as_ref().and_then(|t| serde_json::to_vec(t).ok()).map_or(0, |v| v.len());
        let input_tokens = (input_bytes / 3 + 16) as f64;
        let output_tokens = f64::from(request.max_output_tokens().unwrap_or(config.premium.default_max_output_tokens));
        decision
            .chain
            .iter()
            .filter_map(|m| config.models.get(m))
            .filter(|m| m.premium)
            .map(|m| (input_tokens * m.input_price_per_mtok + output_tokens * m.output_price_per_mtok).ceil() as i64)
            .max()
            .unwrap_or(0)
    }

    async fn reserve(
        &self,
        scope: &CallScope,
        decision: &Decision,
        request: &ChatRequest,
    ) -> Result<Option<Reservation>, ModelError> {
        if !decision.metered {
            return Ok(None);
        }
        let budget = self.config().premium_budget(scope.tier);
        let ttl = Duration::from_secs(self.config().premium.reservation_ttl_secs);
        let amount = self.estimate(decision, request);
        let meters = &self.inner.meters;
        Ok(Some(meters.reserve(&scope.tenant, PREMIUM_SPEND, Window::CalendarMonth, budget, amount, ttl).await?))
    }

    async fn settle(meters: &Meters, reservation: Option<Reservation>, spend: Result<PremiumSpend, ()>) {
        let Some(reservation) = reservation else { return };
        let result = match spend {
            Ok(PremiumSpend::Priced(amount)) => meters.settle(&reservation, Some(amount)).await,
            Ok(PremiumSpend::Unpriced) => meters.settle(&reservation, None).await,
            Err(()) => meters.release(&reservation).await,
        };
        if let Err(err) = result {
            tracing::error!(reservation = %reservation.id, error = %err, "could not settle a reservation; the sweeper will free it");
        }
    }

    /// Settles the reservation of a call every model failed: charged in full when an
    /// attempt may have been processed upstream (a timeout, a garbled answer), else freed.
    async fn failed(&self, reservation: Option<Reservation>, err: RouterError) -> ModelError {
        let spent =
            err.attempts.iter().any(|a| matches!(a.class, super::ErrorClass::Timeout | super::ErrorClass::Malformed));
        Self::settle(&self.inner.meters, reservation, if spent { Ok(PremiumSpend::Unpriced) } else { Err(()) }).await;
        ModelError::AllFailed(err)
    }

    /// A chat completion under the tenant's policy.
    #[tracing::instrument(skip_all, fields(tenant = %scope.tenant))]
    pub async fn complete(
        &self,
        scope: &CallScope,
        target: &Target,
        request: &ChatRequest,
    ) -> Result<Completion, ModelError> {
        let decision = self.decide(scope, target).await?;
        let reservation = self.reserve(scope, &decision, request).await?;
        let routed = self.inner.router.complete(&Self::route_target(scope, &decision), request).await;
        match routed {
            Ok(Routed { value, model, cost_micro_usd, premium_spend, .. }) => {
                Self::settle(&self.inner.meters, reservation, Ok(premium_spend)).await;
                Ok(Completion { response: value, decision, model, cost_micro_usd })
            }
            Err(err) => Err(self.failed(reservation, err).await),
        }
    }

    /// A streamed chat completion under the tenant's policy. The reservation is settled
    /// when the stream ends, before it reports its end.
    #[tracing::instrument(skip_all, fields(tenant = %scope.tenant))]
    pub async fn stream(
        &self,
        scope: &CallScope,
        target: &Target,
        request: &ChatRequest,
    ) -> Result<(Decision, RoutedStream), ModelError> {
        let decision = self.decide(scope, target).await?;
        let reservation = self.reserve(scope, &decision, request).await?;
        match self.inner.router.stream(&Self::route_target(scope, &decision), request).await {
            Ok(mut stream) => {
                let meters = self.inner.meters.clone();
                stream.on_end(Box::new(move |end: StreamEnd| {
                    Box::pin(async move { Self::settle(&meters, reservation, Ok(end.premium_spend)).await })
                }));
                Ok((decision, stream))
            }
            Err(err) => Err(self.failed(reservation, err).await),
        }
    }

    /// Embeddings under the tenant's policy (intent `embedding`).
    pub async fn embed(
        &self,
        scope: &CallScope,
        target: &Target,
        texts: &[String],
    ) -> Result<(Decision, Embeddings), ModelError> {
        let decision = self.decide(scope, target).await?;
        let routed = self
            .inner
            .router
            .embed(&Self::route_target(scope, &decision), texts)
            .await
            .map_err(ModelError::AllFailed)?;
        Ok((decision, routed.value))
    }
}
