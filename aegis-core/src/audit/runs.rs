//! Runs (agents now, skills later), their steps, and the content-addressed store of every
//! model request and response, all in the tenant's schema.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use super::canonical::content_hash;

/// What kind of run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// One agent answering.
    Agent,
    /// Several agents asked the same question, then a synthesis.
    Boardroom,
}

impl RunKind {
    fn as_str(self) -> &'static str {
        match self {
            RunKind::Agent => "agent",
            RunKind::Boardroom => "boardroom",
        }
    }
}

/// A run about to start.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Its id.
    pub id: Uuid,
    /// The run that started it (delegation, boardroom member).
    pub parent: Option<Uuid>,
    /// The first run of the tree (itself when it has no parent).
    pub root: Uuid,
    /// What kind.
    pub kind: RunKind,
    /// The agent.
    pub agent: Option<String>,
    /// The profile version (0: built-in default).
    pub agent_version: Option<i32>,
    /// The conversation.
    pub conversation: Option<Uuid>,
    /// Delegation depth (0 at the root).
    pub depth: i32,
    /// How the agent was chosen.
    pub routing: Option<Value>,
}

/// How a run ended.
#[derive(Debug, Clone, Default)]
pub struct RunEnd {
    /// `ok`, `error`, `step_limit`, `budget_exhausted`, `no_model` or `command`.
    pub outcome: String,
    /// The error, when there was one.
    pub error: Option<String>,
    /// The alias of the last model call.
    pub alias: Option<String>,
    /// SHA-256 of the run's first model request (canonical JSON).
    pub prompt_hash: Option<String>,
    /// Model calls made.
    pub steps: i32,
    /// Input tokens reported.
    pub tokens_in: i64,
    /// Output tokens reported.
    pub tokens_out: i64,
    /// Cost in micro-USD of the priced calls.
    pub cost_micro_usd: i64,
    /// Calls whose cost is unknown.
    pub unpriced_calls: i32,
    /// Wall time.
    pub latency_ms: i32,
}

/// A stored run.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct RunRow {
    /// Id.
    pub id: Uuid,
    /// Parent run.
    pub parent_run_id: Option<Uuid>,
    /// Root run.
    pub root_run_id: Uuid,
    /// Kind.
    pub kind: String,
    /// Agent.
    pub agent: Option<String>,
    /// Profile version.
    pub agent_version: Option<i32>,
    /// Skill (later).
    pub skill_id: Option<String>,
    /// Skill version (later).
    pub skill_version: Option<i32>,
    /// Conversation.
    pub conversation_id: Option<Uuid>,
    /// Delegation depth.
    pub depth: i32,
    /// Routing record: candidates, choice, reason, confidence.
    pub routing: Option<Value>,
    /// Alias of the last model call.
    pub alias: Option<String>,
    /// Hash of the first request.
    pub prompt_hash: Option<String>,
    /// Whether the output matched its schema (skills).
    pub schema_valid: Option<bool>,
    /// A rating given afterwards.
    pub rating: Option<i16>,
    /// Model calls.
    pub steps: i32,
    /// Input tokens.
    pub tokens_in: i64,
    /// Output tokens.
    pub tokens_out: i64,
    /// Cost (priced calls).
    pub cost_micro_usd: i64,
    /// Unpriced calls.
    pub unpriced_calls: i32,
    /// Wall time.
    pub latency_ms: Option<i32>,
    /// Outcome.
    pub outcome: String,
    /// Error.
    pub error: Option<String>,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// The column list of every `runs` query, spliced at compile time.
macro_rules! run_columns {
    () => {
        "id, parent_run_id, root_run_id, kind, agent, agent_version, skill_id, skill_version, \
     conversation_id, depth, routing, alias, prompt_hash, schema_valid, rating, steps, tokens_in, tokens_out, \
     cost_micro_usd, unpriced_calls, latency_ms, outcome, error, started_at, finished_at"
    };
}

/// Records a run as `running`.
pub async fn start_run(conn: &mut PgConnection, run: &NewRun) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO runs (id, parent_run_id, root_run_id, kind, agent, agent_version, conversation_id, depth, routing, outcome, started_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'running', $10)",
    )
    .bind(run.id)
    .bind(run.parent)
    .bind(run.root)
    .bind(run.kind.as_str())
    .bind(&run.agent)
    .bind(run.agent_version)
    .bind(run.conversation)
    .bind(run.depth)
    .bind(&run.routing)
    .bind(Utc::now())
    .execute(conn)
    .await?;
    Ok(())
}

/// Records how a run ended.
pub async fn finish_run(conn: &mut PgConnection, id: Uuid, end: &RunEnd) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE runs SET outcome = $2, error = $3, alias = $4, prompt_hash = $5, steps = $6, tokens_in = $7, \
         tokens_out = $8, cost_micro_usd = $9, unpriced_calls = $10, latency_ms = $11, finished_at = $12 WHERE id = $1",
    )
    .bind(id)
    .bind(&end.outcome)
    .bind(&end.error)
    .bind(&end.alias)
    .bind(&end.prompt_hash)
    .bind(end.steps)
    .bind(end.tokens_in)
    .bind(end.tokens_out)
    .bind(end.cost_micro_usd)
    .bind(end.unpriced_calls)
    .bind(end.latency_ms)
    .bind(Utc::now())
    .execute(conn)
    .await?;
    Ok(())
}

/// One run.
pub async fn get_run(conn: &mut PgConnection, id: Uuid) -> Result<Option<RunRow>, sqlx::Error> {
    sqlx::query_as(concat!("SELECT ", run_columns!(), " FROM runs WHERE id = $1")).bind(id).fetch_optional(conn).await
}

/// Every run of the tree rooted at `root`, in start order.
pub async fn run_tree(conn: &mut PgConnection, root: Uuid) -> Result<Vec<RunRow>, sqlx::Error> {
    sqlx::query_as(concat!("SELECT ", run_columns!(), " FROM runs WHERE root_run_id = $1 ORDER BY started_at, id"))
        .bind(root)
        .fetch_all(conn)
        .await
}

/// Recent runs, newest first.
pub async fn recent_runs(conn: &mut PgConnection, limit: i64) -> Result<Vec<RunRow>, sqlx::Error> {
    sqlx::query_as(concat!("SELECT ", run_columns!(), " FROM runs ORDER BY started_at DESC LIMIT $1"))
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// Stores `body` under its content hash (once) and returns the hash.
pub async fn store_payload(conn: &mut PgConnection, body: &Value) -> Result<String, sqlx::Error> {
    let hash = content_hash(body);
    sqlx::query(
        "INSERT INTO model_payloads (hash, body, created_at) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING",
    )
    .bind(&hash)
    .bind(body)
    .bind(Utc::now())
    .execute(conn)
    .await?;
    Ok(hash)
}

/// A stored payload.
pub async fn payload(conn: &mut PgConnection, hash: &str) -> Result<Option<Value>, sqlx::Error> {
    sqlx::query_scalar("SELECT body FROM model_payloads WHERE hash = $1").bind(hash).fetch_optional(conn).await
}

/// What a step was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A model call (request and response stored as payloads).
    ModelCall,
    /// A tool call.
    ToolCall,
    /// Anything else worth recording (a skipped tool, a budget stop).
    Note,
}

impl StepKind {
    fn as_str(self) -> &'static str {
        match self {
            StepKind::ModelCall => "model_call",
            StepKind::ToolCall => "tool_call",
            StepKind::Note => "note",
        }
    }
}

/// A stored step.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct StepRow {
    /// The run.
    pub run_id: Uuid,
    /// Position in the run.
    pub seq: i32,
    /// `model_call`, `tool_call` or `note`.
    pub kind: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The request payload (model calls).
    pub request_hash: Option<String>,
    /// The response payload (model calls that answered).
    pub response_hash: Option<String>,
    /// Details: model, alias, decision, tokens, cost; tool name, arguments, result.
    pub detail: Value,
}

/// Appends a step to a run's timeline.
pub async fn add_step(
    conn: &mut PgConnection,
    run_id: Uuid,
    seq: i32,
    kind: StepKind,
    hashes: (Option<&str>, Option<&str>),
    detail: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO run_steps (run_id, seq, kind, at, request_hash, response_hash, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(run_id)
    .bind(seq)
    .bind(kind.as_str())
    .bind(Utc::now())
    .bind(hashes.0)
    .bind(hashes.1)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// A run's steps, in order.
pub async fn steps(conn: &mut PgConnection, run_id: Uuid) -> Result<Vec<StepRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT run_id, seq, kind, at, request_hash, response_hash, detail FROM run_steps WHERE run_id = $1 ORDER BY seq",
    )
    .bind(run_id)
    .fetch_all(conn)
    .await
}
