//! Writing decisions to `public.ai_audit_log`, batched off the request path.

use std::{sync::Arc, time::Duration};

use sqlx::QueryBuilder;

use super::Decision;
use crate::db::{Database, batch::BatchWriter};

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
        let insert = Arc::new(
            |db: Database,
             rows: Vec<DecisionRecord>|
             -> std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> {
                Box::pin(async move { insert(&db, rows).await })
            },
        );
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

async fn insert(db: &Database, rows: Vec<DecisionRecord>) -> Result<(), crate::db::DbError> {
    let mut query = QueryBuilder::new(
        "INSERT INTO public.ai_audit_log (id, at, tenant_id, caller, policy_version, tier, intent, requested, candidates, \
         alias, chain, filtered, allowed, reason, metered) ",
    );
    query.push_values(rows, |mut row, r| {
        let d = r.decision;
        row.push_bind(d.id)
            .push_bind(d.at)
            .push_bind(d.tenant)
            .push_bind(r.caller)
            .push_bind(d.policy_version)
            .push_bind(d.tier.as_str())
            .push_bind(d.intent.as_str())
            .push_bind(d.requested)
            .push_bind(sqlx::types::Json(d.candidates))
            .push_bind(d.alias)
            .push_bind(sqlx::types::Json(d.chain))
            .push_bind(sqlx::types::Json(d.filtered))
            .push_bind(d.allowed)
            .push_bind(d.reason.as_str())
            .push_bind(d.metered);
    });
    query.push(" ON CONFLICT (id) DO NOTHING");
    query.build().execute(db.pool()).await?;
    Ok(())
}
