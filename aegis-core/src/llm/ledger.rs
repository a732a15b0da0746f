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
use sqlx::PgConnection;
use uuid::Uuid;

use super::{config::ModelConfig, types::Usage};
use crate::db::{
    Database, DbError,
    batch::{BatchWriter, InsertBatch},
};

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
        let insert: InsertBatch<LedgerRow> = Arc::new(|conn, rows| Box::pin(insert(conn, rows)));
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

/// One statement whatever the batch's length (arrays bound, one per column), so
/// PostgreSQL parses and plans it once per connection rather than once per batch.
async fn insert(conn: &mut PgConnection, rows: &[LedgerRow]) -> Result<(), DbError> {
    let column = |f: fn(&LedgerRow) -> Option<&str>| rows.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO public.provider_ledger (id, at, tenant_id, decision_id, run_id, alias, model, provider, provider_model, \
         attempt, stream, outcome, error_class, error, latency_ms, ttft_ms, tokens_in, tokens_out, cost_micro_usd, priced, premium) \
         SELECT id, at, tenant_id, decision_id, run_id, alias, model, provider, provider_model, attempt, stream, outcome, \
         error_class, error, latency_ms, ttft_ms, tokens_in, tokens_out, cost, cost IS NOT NULL, premium \
         FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::uuid[], $5::uuid[], $6::text[], $7::text[], $8::text[], \
         $9::text[], $10::int[], $11::bool[], $12::text[], $13::text[], $14::text[], $15::int[], $16::int[], $17::bigint[], \
         $18::bigint[], $19::bigint[], $20::bool[]) AS r(id, at, tenant_id, decision_id, run_id, alias, model, provider, \
         provider_model, attempt, stream, outcome, error_class, error, latency_ms, ttft_ms, tokens_in, tokens_out, cost, premium) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.at).collect::<Vec<_>>())
    .bind(column(|r| Some(&r.tenant)))
    .bind(rows.iter().map(|r| r.decision_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.run_id).collect::<Vec<_>>())
    .bind(column(|r| Some(&r.alias)))
    .bind(column(|r| Some(&r.model)))
    .bind(column(|r| Some(&r.provider)))
    .bind(column(|r| Some(&r.provider_model)))
    .bind(rows.iter().map(|r| r.attempt).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.stream).collect::<Vec<_>>())
    .bind(column(|r| Some(r.outcome)))
    .bind(column(|r| r.error_class.as_deref()))
    .bind(column(|r| r.error.as_deref()))
    .bind(rows.iter().map(|r| r.latency_ms).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.ttft_ms).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.tokens_in).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.tokens_out).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.cost_micro_usd).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.premium).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}
