//! The per-tenant `audit_logs`: typed events, each row hash-chained to the one before it
//! from the first row on, with the last link kept in `audit_head` so that a removed tail is
//! detected as well as an edited or removed row.
//!
//! A row's hash is SHA-256 over `prev_hash`, a newline, and the canonical JSON of
//! `{seq, id, at, event, actor, run_id, data}`. Appending locks `audit_head`, which orders
//! concurrent writers of one tenant; it commits with the caller's transaction.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use super::canonical::{canonical_json, sha256_hex};

/// A typed audit event. Later features add their variants (skill_executed,
/// workflow_triggered, scheduled_task_fired) without changing the chain.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AuditEvent {
    /// An agent called a tool.
    ToolCalled {
        /// The agent.
        agent: String,
        /// The tool.
        tool: String,
        /// The model's call id.
        call_id: String,
        /// The arguments as the model wrote them.
        arguments: String,
        /// `ok` or `error`.
        outcome: String,
        /// How long it took.
        latency_ms: i64,
    },
    /// A message was routed to an agent.
    AgentRouted {
        /// The agent chosen.
        agent: String,
        /// How (command, mention, binding, conversation, classifier, keywords, default).
        method: String,
    },
    /// A tenant changed an agent profile (a new version, an import or a revert).
    ProfileChanged {
        /// The agent.
        agent: String,
        /// The new version.
        version: i32,
        /// What happened: edit, import or revert.
        change: String,
    },
}

impl AuditEvent {
    fn split(&self) -> (String, Value) {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        let event = value.get("event").and_then(Value::as_str).unwrap_or("unknown").to_owned();
        if let Some(map) = value.as_object_mut() {
            map.remove("event");
        }
        (event, value)
    }
}

/// One stored row.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct AuditRow {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// Row id.
    pub id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// The event's name.
    pub event: String,
    /// Who acted.
    pub actor: String,
    /// The run, if any.
    pub run_id: Option<Uuid>,
    /// The event's fields.
    pub data: Value,
    /// The previous row's hash (64 zeros for the first).
    pub prev_hash: String,
    /// This row's hash.
    pub hash: String,
}

impl AuditRow {
    /// The hash this row must carry: over its `prev_hash` and its content.
    fn expected_hash(&self) -> String {
        let body = json!({
            "seq": self.seq, "id": self.id, "at": self.at.to_rfc3339_opts(SecondsFormat::Micros, true),
            "event": self.event, "actor": self.actor, "run_id": self.run_id, "data": self.data,
        });
        sha256_hex(format!("{}\n{}", self.prev_hash, canonical_json(&body)).as_bytes())
    }
}

/// Appends `event` to the chain inside the caller's transaction (a `TenantTx`'s connection).
#[tracing::instrument(skip_all)]
pub async fn append(
    conn: &mut PgConnection,
    actor: &str,
    run_id: Option<Uuid>,
    event: &AuditEvent,
) -> Result<AuditRow, sqlx::Error> {
    let (prev_seq, prev_hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_head FOR UPDATE").fetch_one(&mut *conn).await?;
    let (name, data) = event.split();
    let seq = prev_seq + 1;
    let id = Uuid::now_v7();
    // Stored timestamps have microsecond precision; hash what is stored.
    let at = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap_or_else(Utc::now);
    let mut row =
        AuditRow { seq, id, at, event: name, actor: actor.to_owned(), run_id, data, prev_hash, hash: String::new() };
    row.hash = row.expected_hash();
    sqlx::query(
        "INSERT INTO audit_logs (seq, id, at, event, actor, run_id, data, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(row.seq)
    .bind(row.id)
    .bind(row.at)
    .bind(&row.event)
    .bind(&row.actor)
    .bind(row.run_id)
    .bind(&row.data)
    .bind(&row.prev_hash)
    .bind(&row.hash)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2").bind(seq).bind(&row.hash).execute(&mut *conn).await?;
    Ok(row)
}

/// What verifying a tenant's chain found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChainReport {
    /// Rows checked.
    pub rows: i64,
    /// The first problem, if any: which row and what is wrong with it.
    pub broken: Option<ChainBreak>,
}

/// Where and how the chain breaks.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChainBreak {
    /// The row (or the head's position when the tail is missing).
    pub seq: i64,
    /// What is wrong.
    pub problem: String,
}

/// Recomputes every link, in order, and compares the last one with `audit_head`.
#[tracing::instrument(skip_all)]
pub async fn verify(conn: &mut PgConnection) -> Result<ChainReport, sqlx::Error> {
    let rows: Vec<AuditRow> =
        sqlx::query_as("SELECT seq, id, at, event, actor, run_id, data, prev_hash, hash FROM audit_logs ORDER BY seq")
            .fetch_all(&mut *conn)
            .await?;
    let (head_seq, head_hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_head").fetch_one(&mut *conn).await?;
    let mut prev = "0".repeat(64);
    let count = rows.len() as i64;
    for (expected_seq, row) in (1i64..).zip(&rows) {
        let problem = if row.seq != expected_seq {
            Some(format!("row {expected_seq} is missing"))
        } else if row.prev_hash != prev {
            Some("its link to the previous row does not match".to_owned())
        } else if row.expected_hash() != row.hash {
            Some("its content does not match its hash".to_owned())
        } else {
            None
        };
        if let Some(problem) = problem {
            return Ok(ChainReport { rows: count, broken: Some(ChainBreak { seq: expected_seq, problem }) });
        }
        prev.clone_from(&row.hash);
    }
    let broken = (head_seq != count || head_hash != prev).then(|| ChainBreak {
        seq: head_seq,
        problem: format!("the chain ends at row {count} but its head records row {head_seq}"),
    });
    Ok(ChainReport { rows: count, broken })
}

/// The events of one run, in order.
pub async fn for_run(conn: &mut PgConnection, run_id: Uuid) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT seq, id, at, event, actor, run_id, data, prev_hash, hash FROM audit_logs WHERE run_id = $1 ORDER BY seq",
    )
    .bind(run_id)
    .fetch_all(conn)
    .await
}
