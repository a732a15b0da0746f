//! Writing decisions to `public.ai_audit_log`, batched off the request path.

use std::{sync::Arc, time::Duration};

use sqlx::{PgConnection, types::Json};

use super::Decision;
use crate::db::{
    Database, DbError,
    batch::{BatchWriter, InsertBatch},
};

/// A decision with who asked for it.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    /// The decision.
    pub decision: Decision,
    /// The caller, as recorded in audits.
    pub caller: String,
}

/// The decision log. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DecisionLog {
    writer: BatchWriter<DecisionRecord>,
}

impl DecisionLog {
    /// Starts the writer.
    pub fn spawn(db: Database, interval: Duration) -> Self {
        let insert: InsertBatch<DecisionRecord> = Arc::new(|conn, rows| Box::pin(insert(conn, rows)));
        Self { writer: BatchWriter::spawn(db, "ai_audit_log", interval, insert) }
    }

    /// Queues a decision.
    pub async fn record(&self, decision: &Decision, caller: &str) {
        self.writer.send(DecisionRecord { decision: decision.clone(), caller: caller.to_owned() }).await;
    }

    /// Rows that could not be written (a metric).
    pub fn lost_rows(&self) -> u64 {
        self.writer.lost()
    }

    /// Waits until queued decisions are written.
    pub async fn flush(&self) {
        self.writer.flush().await;
    }
}

/// One statement whatever the batch's length (arrays bound, one per column), so
/// PostgreSQL parses and plans it once per connection rather than once per batch.
async fn insert(conn: &mut PgConnection, rows: &[DecisionRecord]) -> Result<(), DbError> {
    let text = |f: fn(&DecisionRecord) -> Option<&str>| rows.iter().map(f).collect::<Vec<_>>();
    let list = |f: fn(&Decision) -> &Vec<String>| rows.iter().map(|r| Json(f(&r.decision))).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO public.ai_audit_log (id, at, tenant_id, caller, policy_version, tier, intent, requested, candidates, \
         alias, chain, filtered, allowed, reason, metered) \
         SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
         $8::text[], $9::jsonb[], $10::text[], $11::jsonb[], $12::jsonb[], $13::bool[], $14::text[], $15::bool[]) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(rows.iter().map(|r| r.decision.id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.decision.at).collect::<Vec<_>>())
    .bind(text(|r| Some(&r.decision.tenant)))
    .bind(text(|r| Some(&r.caller)))
    .bind(text(|r| Some(&r.decision.policy_version)))
    .bind(text(|r| Some(r.decision.tier.as_str())))
    .bind(text(|r| Some(r.decision.intent.as_str())))
    .bind(text(|r| r.decision.requested.as_deref()))
    .bind(list(|d| &d.candidates))
    .bind(text(|r| r.decision.alias.as_deref()))
    .bind(list(|d| &d.chain))
    .bind(list(|d| &d.filtered))
    .bind(rows.iter().map(|r| r.decision.allowed).collect::<Vec<_>>())
    .bind(text(|r| Some(r.decision.reason.as_str())))
    .bind(rows.iter().map(|r| r.decision.metered).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}
