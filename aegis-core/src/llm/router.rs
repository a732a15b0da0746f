//! The router: walks a decision's permitted chain of models. Retryable errors are retried
//! with jittered exponential backoff (honouring `Retry-After`); a model that keeps failing
//! cools down and is skipped until its cooldown ends; a bad request stops the walk (it
//! would fail everywhere); a stream falls back only before its first chunk. When every
//! model fails, one error lists every attempt. Every attempt is written to the ledger.

mod backends;
mod stream;

pub use backends::{Backend, RoutedModel};
pub use stream::{RoutedStream, StreamEnd, StreamOutcome};

use std::{
    collections::HashMap,
    fmt,
    sync::Mutex,
    time::{Duration, Instant},
};

use chrono::Utc;
use serde::Serialize;
use uuid::Uuid;

use super::{
    Embeddings, ErrorClass, LlmError,
    config::{ModelsConfig, RouterConfig},
    ledger::{Ledger, LedgerRow, millis, price},
    openai::ProviderHttp,
    types::{ChatRequest, ChatResponse, Usage},
};
use crate::clock::SharedClock;

/// What a call is for: the tenant, the decision that allowed it and its chain.
#[derive(Debug, Clone)]
pub struct RouteTarget {
    /// The tenant.
    pub tenant: String,
    /// The decision.
    pub decision_id: Uuid,
    /// The alias the decision chose (named in errors).
    pub alias: String,
    /// Models permitted, in order.
    pub chain: Vec<String>,
    /// The alias each model of `chain` was permitted through (`alias` where absent),
    /// recorded on its ledger rows.
    pub chain_aliases: Vec<String>,
    /// The agent or skill run, if any.
    pub run_id: Option<Uuid>,
}

impl RouteTarget {
    /// The models of the chain in order, each with the alias it was permitted through.
    fn links(&self) -> impl Iterator<Item = (&String, &str)> {
        self.chain
            .iter()
            .enumerate()
            .map(|(i, model)| (model, self.chain_aliases.get(i).map_or(self.alias.as_str(), String::as_str)))
    }
}

/// One failed or skipped attempt, as reported to the caller.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptFailure {
    /// The model id.
    pub model: String,
    /// Attempt number at this model (0 when skipped).
    pub attempt: u32,
    /// The class.
    pub class: ErrorClass,
    /// What happened.
    pub message: String,
}

/// Every model of the chain failed (or the walk stopped on a bad request).
#[derive(Debug, Clone, Serialize, thiserror::Error)]
pub struct RouterError {
    /// The alias.
    pub alias: String,
    /// Every attempt, in order.
    pub attempts: Vec<AttemptFailure>,
}

impl RouterError {
    /// The error of a stream that broke after its first chunk at `model`.
    pub fn single(alias: String, model: &str, err: LlmError) -> Self {
        let failure =
            AttemptFailure { model: model.to_owned(), attempt: 1, class: err.class, message: err.to_string() };
        Self { alias, attempts: vec![failure] }
    }

    /// Whether the walk stopped because the request itself was refused.
    pub fn is_bad_request(&self) -> bool {
        self.attempts.last().is_some_and(|a| matches!(a.class, ErrorClass::BadRequest | ErrorClass::ContextTooLong))
            && self.attempts.iter().all(|a| !a.class.is_retryable())
    }
}

impl fmt::Display for RouterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "every model of `{}` failed: ", self.alias)?;
        for (i, a) in self.attempts.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} #{}: {}: {}", a.model, a.attempt, a.class, a.message)?;
        }
        Ok(())
    }
}

/// Premium spend of a call, for settling its reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PremiumSpend {
    /// Known, in micro-USD.
    Priced(i64),
    /// A premium attempt may have been billed but reported no usage.
    Unpriced,
}

impl PremiumSpend {
    fn add(self, other: PremiumSpend) -> PremiumSpend {
        match (self, other) {
            (PremiumSpend::Priced(a), PremiumSpend::Priced(b)) => PremiumSpend::Priced(a + b),
            _ => PremiumSpend::Unpriced,
        }
    }
}

/// A successful routed call.
#[derive(Debug, Clone)]
pub struct Routed<T> {
    /// The result.
    pub value: T,
    /// The model that answered.
    pub model: String,
    /// Its usage.
    pub usage: Option<Usage>,
    /// Cost of the answering attempt in micro-USD (`None`: unpriced).
    pub cost_micro_usd: Option<i64>,
    /// Premium spend over all attempts.
    pub premium_spend: PremiumSpend,
    /// Failures before success.
    pub failures: Vec<AttemptFailure>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Health {
    consecutive_failures: u32,
    cooldown_until: Option<chrono::DateTime<Utc>>,
}

/// Routes calls over configured models. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Router {
    models: HashMap<String, RoutedModel>,
    config: RouterConfig,
    clock: SharedClock,
    health: Mutex<HashMap<String, Health>>,
    ledger: Ledger,
}

impl Router {
    /// Builds every configured model's backend.
    pub fn new(config: &ModelsConfig, http: &ProviderHttp, clock: SharedClock, ledger: Ledger) -> Self {
        let models = backends::build(config, http);
        Self { models, config: config.router.clone(), clock, health: Mutex::new(HashMap::new()), ledger }
    }

    /// A model by id.
    pub fn model(&self, id: &str) -> Option<&RoutedModel> {
        self.models.get(id)
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn cooling_until(&self, model: &str) -> Option<chrono::DateTime<Utc>> {
        let now = self.clock.now();
        let health = self.health.lock().ok()?;
        health.get(model).and_then(|h| h.cooldown_until).filter(|until| *until > now)
    }

    fn record_health(&self, model: &str, ok: bool) {
        let Ok(mut health) = self.health.lock() else { return };
        let entry = health.entry(model.to_owned()).or_default();
        if ok {
            *entry = Health::default();
            return;
        }
        entry.consecutive_failures += 1;
        if entry.consecutive_failures >= self.config.cooldown_after_failures {
            let until =
                self.clock.now() + chrono::Duration::seconds(i64::try_from(self.config.cooldown_secs).unwrap_or(30));
            entry.cooldown_until = Some(until);
            tracing::warn!(model, %until, "model cooling down after repeated failures");
        }
    }

    fn backoff(&self, attempt: u32, err: &LlmError) -> Duration {
        use rand::Rng;
        let max = Duration::from_millis(self.config.max_backoff_ms);
        if let Some(after) = err.retry_after {
            return after.min(max);
        }
        let base = self.config.backoff_ms.saturating_mul(1 << attempt.saturating_sub(1).min(10));
        let jittered = rand::rng().random_range(base / 2..=base.max(1));
        Duration::from_millis(jittered).min(max)
    }

    fn ledger_row(
        &self,
        target: &RouteTarget,
        alias: &str,
        model: &RoutedModel,
        attempt: u32,
        stream: bool,
    ) -> LedgerRow {
        LedgerRow {
            id: Uuid::now_v7(),
            at: Utc::now(),
            tenant: target.tenant.clone(),
            decision_id: target.decision_id,
            run_id: target.run_id,
            alias: alias.to_owned(),
            model: model.id.clone(),
            provider: model.provider.clone(),
            provider_model: model.config.name.clone(),
            attempt: i32::try_from(attempt).unwrap_or(i32::MAX),
            stream,
            outcome: "ok",
            error_class: None,
            error: None,
            latency_ms: 0,
            ttft_ms: None,
            tokens_in: None,
            tokens_out: None,
            cost_micro_usd: Some(0),
            premium: model.config.premium,
        }
    }

    /// Walks the chain for a non-streamed chat completion.
    pub async fn complete(
        &self,
        target: &RouteTarget,
        request: &ChatRequest,
    ) -> Result<Routed<ChatResponse>, RouterError> {
        self.walk(target, false, |model| async move {
            let Backend::Chat(chat) = &model.backend else { return Err(model.not_chat()) };
            let response = chat.complete(request).await?;
            let usage = response.usage;
            Ok((response, usage))
        })
        .await
    }

    /// Walks the chain for embeddings.
    pub async fn embed(&self, target: &RouteTarget, texts: &[String]) -> Result<Routed<Embeddings>, RouterError> {
        self.walk(target, false, |model| {
            let texts = texts.to_vec();
            async move {
                let Backend::Embed(embedder) = &model.backend else { return Err(model.not_embedding()) };
                let embeddings = embedder.embed(&texts).await?;
                let usage = embeddings.usage;
                Ok((embeddings, usage))
            }
        })
        .await
    }

    async fn walk<'a, T, F, Fut>(
        &'a self,
        target: &RouteTarget,
        stream: bool,
        call: F,
    ) -> Result<Routed<T>, RouterError>
    where
        F: Fn(&'a RoutedModel) -> Fut,
        Fut: std::future::Future<Output = Result<(T, Option<Usage>), LlmError>>,
    {
        let mut failures = Vec::new();
        let mut spend = PremiumSpend::Priced(0);
        for (model_id, alias) in target.links() {
            let Some(model) = self.usable(model_id, &mut failures) else { continue };
            for attempt in 1..=self.config.attempts_per_model.max(1) {
                let started = Instant::now();
                let result = call(model).await;
                let mut row = self.ledger_row(target, alias, model, attempt, stream);
                row.latency_ms = millis(started.elapsed());
                match result {
                    Ok((value, usage)) => {
                        let cost = price(&model.config, usage.as_ref());
                        row.tokens_in = usage.map(|u| i64::try_from(u.prompt_tokens).unwrap_or(i64::MAX));
                        row.tokens_out = usage.map(|u| i64::try_from(u.completion_tokens).unwrap_or(i64::MAX));
                        row.cost_micro_usd = cost;
                        self.ledger.record(row).await;
                        self.record_health(model_id, true);
                        if model.config.premium {
                            spend = spend.add(cost.map_or(PremiumSpend::Unpriced, PremiumSpend::Priced));
                        }
                        return Ok(Routed {
                            value,
                            model: model_id.clone(),
                            usage,
                            cost_micro_usd: cost,
                            premium_spend: spend,
                            failures,
                        });
                    }
                    Err(err) => match self.failed(model, attempt, row, err, &mut failures, &mut spend).await {
                        Next::Stop => return Err(RouterError { alias: target.alias.clone(), attempts: failures }),
                        Next::Fallback => break,
                        Next::Retry(delay) => tokio::time::sleep(delay).await,
                    },
                }
            }
        }
        Err(RouterError { alias: target.alias.clone(), attempts: failures })
    }
}

impl Router {
    /// Records a failed attempt and says what to do next.
    async fn failed(
        &self,
        model: &RoutedModel,
        attempt: u32,
        mut row: LedgerRow,
        err: LlmError,
        failures: &mut Vec<AttemptFailure>,
        spend: &mut PremiumSpend,
    ) -> Next {
        row.outcome = "error";
        row.error_class = Some(err.class.as_str().to_owned());
        row.error = Some(err.message.clone());
        // A refusal with an HTTP status costs nothing. Without one, a request that may have
        // been processed upstream (a timeout, a garbled answer, a stream cut off) has an
        // unknown cost: recorded as unpriced, never as 0.
        let maybe_billed = err.status.is_none()
            && (matches!(err.class, ErrorClass::Timeout | ErrorClass::Malformed)
                || (row.stream && err.class == ErrorClass::Connection));
        if maybe_billed {
            row.cost_micro_usd = None;
            if model.config.premium {
                *spend = PremiumSpend::Unpriced;
            }
        }
        self.ledger.record(row).await;
        self.record_health(&model.id, false);
        failures.push(AttemptFailure { model: model.id.clone(), attempt, class: err.class, message: err.to_string() });
        if !err.class.falls_back() {
            return Next::Stop;
        }
        if err.class.is_retryable()
            && attempt < self.config.attempts_per_model
            && self.cooling_until(&model.id).is_none()
        {
            Next::Retry(self.backoff(attempt, &err))
        } else {
            Next::Fallback
        }
    }

    /// Checks whether a model can be tried; records why not.
    fn usable<'a>(&'a self, model_id: &str, failures: &mut Vec<AttemptFailure>) -> Option<&'a RoutedModel> {
        let Some(model) = self.models.get(model_id) else {
            failures.push(skip(model_id, ErrorClass::NotConfigured, "no such model".into()));
            return None;
        };
        if let Backend::Unavailable(reason) = &model.backend {
            failures.push(skip(model_id, ErrorClass::NotConfigured, reason.clone()));
            return None;
        }
        if let Some(until) = self.cooling_until(model_id) {
            failures.push(skip(model_id, model_cooling(), format!("cooling down until {until}")));
            return None;
        }
        Some(model)
    }

    /// Walks the chain for a streamed chat completion. It falls back only until a model
    /// sends its first chunk; after that, errors reach the caller in the stream.
    pub async fn stream(&self, target: &RouteTarget, request: &ChatRequest) -> Result<RoutedStream, RouterError> {
        use futures::StreamExt;
        let mut failures = Vec::new();
        let mut spend = PremiumSpend::Priced(0);
        for (model_id, alias) in target.links() {
            let Some(model) = self.usable(model_id, &mut failures) else { continue };
            let Backend::Chat(chat) = &model.backend else {
                failures.push(skip(model_id, ErrorClass::BadRequest, "this model does not chat".into()));
                continue;
            };
            for attempt in 1..=self.config.attempts_per_model.max(1) {
                let started = Instant::now();
                let opened = chat.stream(request).await;
                let first = match opened {
                    Ok(mut chunks) => match chunks.next().await {
                        Some(Ok(first)) => Ok((first, chunks)),
                        Some(Err(err)) => Err(err),
                        None => Err(LlmError::new(
                            ErrorClass::Connection,
                            &model.provider,
                            &model.config.name,
                            "the stream ended before its first chunk",
                        )),
                    },
                    Err(err) => Err(err),
                };
                let mut row = self.ledger_row(target, alias, model, attempt, true);
                row.latency_ms = millis(started.elapsed());
                match first {
                    Ok((first, rest)) => {
                        self.record_health(model_id, true);
                        row.ttft_ms = Some(millis(started.elapsed()));
                        return Ok(RoutedStream::new(
                            first,
                            rest,
                            model.clone(),
                            row,
                            started,
                            self.ledger.clone(),
                            spend,
                            failures,
                        ));
                    }
                    Err(err) => match self.failed(model, attempt, row, err, &mut failures, &mut spend).await {
                        Next::Stop => return Err(RouterError { alias: target.alias.clone(), attempts: failures }),
                        Next::Fallback => break,
                        Next::Retry(delay) => tokio::time::sleep(delay).await,
                    },
                }
            }
        }
        Err(RouterError { alias: target.alias.clone(), attempts: failures })
    }
}

/// What to do after a failed attempt.
enum Next {
    Stop,
    Fallback,
    Retry(Duration),
}

/// Cooling down is reported as a server-side problem of that model.
fn model_cooling() -> ErrorClass {
    ErrorClass::ServerError
}

fn skip(model: &str, class: ErrorClass, message: String) -> AttemptFailure {
    AttemptFailure { model: model.to_owned(), attempt: 0, class, message }
}
