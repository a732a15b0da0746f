//! The provider ledger: one row per attempt at a provider model, streams included,
//! written by the owner role in batches off the request path (see `db::batch` for what a
//! crash can lose). A call whose usage never came back is recorded with `priced = false`
//! and no cost — never as a cost of 0 — and counted on [`Ledger::unpriced_calls`].

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::{config::ModelConfig, types::Usage};
use crate::db::{Database, DbError, batch::BatchWriter};

/// One attempt.
#[derive(Debug, Clone)]
pub struct LedgerRow {
    /// Row id.
    pub id: Uuid,
    /// When the attempt ended.
    pub at: DateTime<Utc>,
    /// The tenant.
    pub tenant: String,
    /// The policy decision it served.
    pub decision_id: Uuid,
    /// The agent or skill run, if any.
    pub run_id: Option<Uuid>,
    /// The alias.
    pub alias: String,
    /// The model id (configuration key).
    pub model: String,
    /// The provider.
    pub provider: String,
    /// The provider's model name.
    pub provider_model: String,
    /// 1-based attempt number within the call.
    pub attempt: i32,
    /// Streamed.
    pub stream: bool,
    /// `ok`, `error` or `cancelled`.
    pub outcome: &'static str,
    /// The error class, for errors.
    pub error_class: Option<String>,
    /// The error, for errors.
    pub error: Option<String>,
    /// Wall time of the attempt.
    pub latency_ms: i32,
    /// Time to the first chunk (streams).
    pub ttft_ms: Option<i32>,
    /// Input tokens, when reported.
    pub tokens_in: Option<i64>,
    /// Output tokens, when reported.
    pub tokens_out: Option<i64>,
    /// Cost in micro-USD; `None` when unpriced.
    pub cost_micro_usd: Option<i64>,
    /// Whether a premium model was called.
    pub premium: bool,
}

/// Micro-USD for `usage` at `model`'s prices (USD per million tokens = micro-USD per
/// token), rounded up.
pub fn cost_micro_usd(model: &ModelConfig, usage: &Usage) -> i64 {
    let cost = usage.prompt_tokens as f64 * model.input_price_per_mtok
        + usage.completion_tokens as f64 * model.output_price_per_mtok;
    cost.ceil() as i64
}

/// The price of an attempt that ended with `usage`: known from the usage, or 0 for a free
/// model even without it; `None` (unpriced) when a priced model reported no usage.
pub fn price(model: &ModelConfig, usage: Option<&Usage>) -> Option<i64> {
    let free = model.input_price_per_mtok == 0.0 && model.output_price_per_mtok == 0.0;
    usage.map(|u| cost_micro_usd(model, u)).or(free.then_some(0))
}

/// Milliseconds, saturating.
pub fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// The ledger. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ledger {
    writer: BatchWriter<LedgerRow>,
    unpriced: Arc<AtomicU64>,
}

impl Ledger {
    /// Starts the writer.
    pub fn spawn(db: Database, interval: Duration) -> Self {
        let insert = Arc::new(
            |db: Database, rows: Vec<LedgerRow>| -> std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> {
                Box::pin(async move { insert(&db, rows).await })
            },
        );
        Self {
            writer: BatchWriter::spawn(db, "provider_ledger", interval, insert),
            unpriced: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Records an attempt.
    pub async fn record(&self, row: LedgerRow) {
        if row.cost_micro_usd.is_none() {
            self.unpriced.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(tenant = %row.tenant, model = %row.model, outcome = row.outcome, "provider call without usage: recorded as unpriced");
        }
        self.writer.send(row).await;
    }

    /// Waits until recorded rows are written.
    pub async fn flush(&self) {
        self.writer.flush().await;
    }

    /// Attempts recorded without a price since start (a metric).
    pub fn unpriced_calls(&self) -> u64 {
        self.unpriced.load(Ordering::Relaxed)
    }

    /// Rows lost to database failures since start (a metric).
    pub fn lost_rows(&self) -> u64 {
        self.writer.lost()
    }
}

async fn insert(db: &Database, rows: Vec<LedgerRow>) -> Result<(), DbError> {
    let mut query = QueryBuilder::new(
        "INSERT INTO public.provider_ledger (id, at, tenant_id, decision_id, run_id, alias, model, provider, provider_model, \
         attempt, stream, outcome, error_class, error, latency_ms, ttft_ms, tokens_in, tokens_out, cost_micro_usd, priced, premium) ",
    );
    query.push_values(rows, |mut b, r| {
        b.push_bind(r.id)
            .push_bind(r.at)
            .push_bind(r.tenant)
            .push_bind(r.decision_id)
            .push_bind(r.run_id)
            .push_bind(r.alias)
            .push_bind(r.model)
            .push_bind(r.provider)
            .push_bind(r.provider_model)
            .push_bind(r.attempt)
            .push_bind(r.stream)
            .push_bind(r.outcome)
            .push_bind(r.error_class)
            .push_bind(r.error)
            .push_bind(r.latency_ms)
            .push_bind(r.ttft_ms)
            .push_bind(r.tokens_in)
            .push_bind(r.tokens_out)
            .push_bind(r.cost_micro_usd)
            .push_bind(r.cost_micro_usd.is_some())
            .push_bind(r.premium);
    });
    query.push(" ON CONFLICT (id) DO NOTHING");
    query.build().execute(db.pool()).await?;
    Ok(())
}
