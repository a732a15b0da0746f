//! Agents: SOUL profiles (built-in defaults with per-tenant versions), the orchestrator
//! that routes each message and records why, the tool catalog, the tool-calling loop,
//! conversations, the boardroom, and one idempotent entry point for every inbound message
//! whatever channel it comes from ([`Agents::handle`]).
//!
//! A run never holds a `TenantTx` across a model or tool call: each step is written in its
//! own short transaction after the call returns.

mod boardroom;
pub mod conversation;
mod engine;
mod holds;
mod inbound;
pub mod profile;
pub mod prompt;
pub mod routing;
pub mod tools;
mod turn;

pub use engine::{Outcome, RunResult};
pub use inbound::{ChatReply, InboundMessage, MemberAnswer};
pub use profile::SoulProfile;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use crate::{
    audit::{AuditError, AuditEvent, chain},
    db::{Database, DbError},
    definitions::{self, DefinitionKind, FieldChange},
    knowledge::{Knowledge, KnowledgeError},
    llm::{ModelError, Models},
    tenancy::TenantScope,
};
use prompt::{ContextSource, KnowledgeContext};
use tools::{Citation, ResolvedTools, ToolCatalog, ToolContext};

/// `[agents]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentsConfig {
    /// Model calls a run may make before it stops.
    pub max_steps: u32,
    /// Seconds a tool call may take.
    pub tool_timeout_secs: u64,
    /// Tokens (input + output) a turn may use, all its runs together.
    pub turn_token_budget: i64,
    /// Micro-USD a turn may cost, all its runs together.
    pub turn_cost_budget_micro_usd: i64,
    /// How deep `ask_agent` may delegate.
    pub max_delegation_depth: i32,
    /// Output tokens asked for per model call.
    pub max_output_tokens: u32,
    /// Estimated tokens of history the prompt may carry before old turns are summarized.
    pub history_token_budget: usize,
    /// Messages always kept verbatim after a summary.
    pub keep_recent_messages: usize,
    /// Knowledge-base passages put in the prompt of agents that may search it (0: none).
    pub kb_context_hits: usize,
    /// The agent that coordinates (default route, boardroom synthesis).
    pub chief: String,
    /// Who sits in `/boardroom` when the message names nobody.
    pub boardroom: Vec<String>,
    /// Seconds an inbound message may stay `processing` before another delivery takes over.
    pub inbound_lease_secs: i64,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        Self {
            max_steps: 8,
            tool_timeout_secs: 30,
            turn_token_budget: 60_000,
            turn_cost_budget_micro_usd: 500_000,
            max_delegation_depth: 2,
            max_output_tokens: 1024,
            history_token_budget: 6_000,
            keep_recent_messages: 6,
            kb_context_hits: 3,
            chief: "atlas".into(),
            boardroom: vec!["sage".into(), "nova".into(), "vera".into()],
            inbound_lease_secs: 300,
        }
    }
}

/// An agents failure.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No agent of that name.
    #[error("no agent `{0}` in this team")]
    UnknownAgent(String),
    /// A profile does not load.
    #[error("profile `{name}` is invalid: {reason}")]
    InvalidProfile {
        /// The agent.
        name: String,
        /// Why.
        reason: String,
    },
    /// A bad request.
    #[error("{0}")]
    Invalid(String),
    /// No conversation with that id in this tenant.
    #[error("no conversation `{0}` in this tenant")]
    ConversationNotFound(Uuid),
    /// The same (channel, source id) was received before with other content.
    #[error("{0}")]
    Conflict(String),
    /// The same inbound message is being answered by another delivery right now.
    #[error("message `{0}` is already being answered; retry later")]
    InProgress(String),
    /// A model call failed outside a run's loop.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The knowledge base failed.
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
    /// The audit trail failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for AgentError {
    fn from(err: sqlx::Error) -> Self {
        AgentError::Db(DbError::Sql(err))
    }
}

/// A profile as this tenant has it, with its tools resolved against the catalog.
#[derive(Debug, Clone)]
pub struct ResolvedAgent {
    /// The profile.
    pub profile: SoulProfile,
    /// Its version (0: the built-in default).
    pub version: i32,
    /// Its usable tools, with notes on the skipped ones.
    pub tools: ResolvedTools,
}

/// A version of a profile.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileVersion {
    /// 0 for the built-in default.
    pub version: i32,
    /// The profile.
    pub profile: SoulProfile,
    /// Why it was made.
    pub note: Option<String>,
    /// Who made it.
    pub created_by: String,
    /// When (`None` for the built-in default).
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a run shows while it works (server-sent events, the CLI's live output).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    /// The orchestrator chose.
    Routed {
        /// The agent (or `boardroom`).
        agent: String,
        /// How.
        method: routing::RouteMethod,
        /// From 0 to 1.
        confidence: f64,
    },
    /// A tool is called.
    ToolCall {
        /// The calling agent.
        agent: String,
        /// The tool.
        tool: String,
        /// Its arguments.
        arguments: String,
    },
    /// A tool returned.
    ToolResult {
        /// The calling agent.
        agent: String,
        /// The tool.
        tool: String,
        /// Whether it succeeded.
        ok: bool,
    },
    /// Text of an answer, as it arrives.
    Delta {
        /// The agent writing.
        agent: String,
        /// The text.
        text: String,
    },
}

impl ChatEvent {
    /// Its `type` tag (the server-sent event's name).
    pub fn kind(&self) -> &'static str {
        match self {
            ChatEvent::Routed { .. } => "routed",
            ChatEvent::ToolCall { .. } => "tool_call",
            ChatEvent::ToolResult { .. } => "tool_result",
            ChatEvent::Delta { .. } => "delta",
        }
    }
}

/// Where a run sends its [`ChatEvent`]s.
pub type EventSink = mpsc::UnboundedSender<ChatEvent>;

/// Someone who took part in a conversation.
#[derive(Debug, Clone, Serialize)]
pub struct Participant {
    /// `user` or `agent`.
    pub kind: String,
    /// Their name.
    pub name: String,
}

/// A conversation and everything said in it.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationHistory {
    /// The conversation.
    pub conversation: conversation::Conversation,
    /// Who took part.
    pub participants: Vec<Participant>,
    /// Every message, in order.
    pub messages: Vec<conversation::StoredMessage>,
}

/// Emitted when a run finishes; later features (Memoria, auto-learn) subscribe.
#[derive(Debug, Clone, Serialize)]
pub struct RunFinished {
    /// The tenant.
    pub tenant: String,
    /// The run.
    pub run_id: Uuid,
    /// The agent.
    pub agent: String,
    /// How it ended.
    pub outcome: Outcome,
}

/// The agents service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Agents {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    models: Models,
    knowledge: Knowledge,
    config: AgentsConfig,
    catalog: ToolCatalog,
    defaults: Vec<SoulProfile>,
    context: Vec<Arc<dyn ContextSource>>,
    finished: broadcast::Sender<RunFinished>,
    holds: holds::TurnHolds,
}

impl Agents {
    /// The service over `models` and `knowledge`, with the built-in team and tools.
    pub fn new(db: Database, models: Models, knowledge: Knowledge, config: AgentsConfig) -> Self {
        let context: Vec<Arc<dyn ContextSource>> =
            vec![Arc::new(KnowledgeContext::new(knowledge.clone(), config.kb_context_hits))];
        let (finished, _) = broadcast::channel(256);
        let inner = Inner {
            db,
            models,
            knowledge,
            config,
            catalog: ToolCatalog::builtin(),
            defaults: profile::default_team(),
            context,
            finished,
            holds: holds::TurnHolds::default(),
        };
        Self { inner: Arc::new(inner) }
    }

    /// The settings.
    pub fn config(&self) -> &AgentsConfig {
        &self.inner.config
    }

    /// The tool catalog.
    pub fn catalog(&self) -> &ToolCatalog {
        &self.inner.catalog
    }

    /// The model service.
    pub fn models(&self) -> &Models {
        &self.inner.models
    }

    /// The knowledge base.
    pub fn knowledge(&self) -> &Knowledge {
        &self.inner.knowledge
    }

    /// What the turns' in-flight model calls hold of their budgets.
    pub(crate) fn holds(&self) -> &holds::TurnHolds {
        &self.inner.holds
    }

    pub(crate) fn db(&self) -> &Database {
        &self.inner.db
    }

    pub(crate) fn context_sources(&self) -> &[Arc<dyn ContextSource>] {
        &self.inner.context
    }

    /// Finished runs, as they finish.
    pub fn subscribe(&self) -> broadcast::Receiver<RunFinished> {
        self.inner.finished.subscribe()
    }

    pub(crate) fn finished(&self, scope: &TenantScope, run_id: Uuid, agent: &str, outcome: Outcome) {
        let _ = self.inner.finished.send(RunFinished {
            tenant: scope.tenant().to_string(),
            run_id,
            agent: agent.to_owned(),
            outcome,
        });
    }

    fn resolve(&self, profile: SoulProfile, version: i32) -> Result<ResolvedAgent, AgentError> {
        let invalid = |reason: String| AgentError::InvalidProfile { name: profile.name.clone(), reason };
        profile.check().map_err(invalid)?;
        let tools = self.inner.catalog.resolve(&profile.tools).map_err(invalid)?;
        Ok(ResolvedAgent { profile, version, tools })
    }

    /// The tenant's team: the built-in agents with the tenant's newest versions over them,
    /// then the tenant's own agents, by name.
    pub async fn team(&self, scope: &TenantScope) -> Result<Vec<ResolvedAgent>, AgentError> {
        let mut tx = scope.begin().await?;
        let stored = definitions::latest_all(tx.conn(), DefinitionKind::Agent).await?;
        tx.commit().await?;
        let mut team = Vec::new();
        for default in &self.inner.defaults {
            match stored.iter().find(|v| v.name == default.name) {
                Some(v) => team.push(self.resolve(Self::stored_profile(&v.name, &v.body)?, v.version)?),
                None => team.push(self.resolve(default.clone(), 0)?),
            }
        }
        for v in stored.iter().filter(|v| !self.inner.defaults.iter().any(|d| d.name == v.name)) {
            team.push(self.resolve(Self::stored_profile(&v.name, &v.body)?, v.version)?);
        }
        Ok(team)
    }

    fn stored_profile(name: &str, body: &serde_json::Value) -> Result<SoulProfile, AgentError> {
        serde_json::from_value(body.clone())
            .map_err(|e| AgentError::InvalidProfile { name: name.to_owned(), reason: e.to_string() })
    }

    /// One agent of the tenant's team.
    pub async fn agent(&self, scope: &TenantScope, name: &str) -> Result<ResolvedAgent, AgentError> {
        self.team(scope)
            .await?
            .into_iter()
            .find(|a| a.profile.name == name)
            .ok_or_else(|| AgentError::UnknownAgent(name.into()))
    }

    /// Every version of an agent's profile, the built-in default (version 0) first.
    pub async fn versions(&self, scope: &TenantScope, name: &str) -> Result<Vec<ProfileVersion>, AgentError> {
        let mut tx = scope.begin().await?;
        let stored = definitions::versions(tx.conn(), DefinitionKind::Agent, name).await?;
        tx.commit().await?;
        let mut out = Vec::new();
        if let Some(default) = self.inner.defaults.iter().find(|d| d.name == name) {
            out.push(ProfileVersion {
                version: 0,
                profile: default.clone(),
                note: Some("built-in default".into()),
                created_by: "aegis".into(),
                created_at: None,
            });
        }
        for v in stored {
            out.push(ProfileVersion {
                version: v.version,
                profile: Self::stored_profile(name, &v.body)?,
                note: v.note,
                created_by: v.created_by,
                created_at: Some(v.created_at),
            });
        }
        if out.is_empty() {
            return Err(AgentError::UnknownAgent(name.into()));
        }
        Ok(out)
    }

    /// Stores `profile` as the agent's next version (checked against the catalog first)
    /// and records it in the audit chain. `change` says why: edit, import, revert.
    pub async fn save_profile(
        &self,
        scope: &TenantScope,
        profile: &SoulProfile,
        change: &str,
    ) -> Result<i32, AgentError> {
        self.resolve(profile.clone(), 0)?;
        let body = serde_json::to_value(profile).map_err(|e| AgentError::Invalid(e.to_string()))?;
        let actor = scope.caller().to_string();
        let mut tx = scope.begin().await?;
        let version =
            definitions::append(tx.conn(), DefinitionKind::Agent, &profile.name, &body, change, &actor).await?;
        let event = AuditEvent::ProfileChanged { agent: profile.name.clone(), version, change: change.into() };
        chain::append(tx.conn(), &actor, None, &event).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Makes an older version current again, as a new version.
    pub async fn revert(&self, scope: &TenantScope, name: &str, version: i32) -> Result<i32, AgentError> {
        let versions = self.versions(scope, name).await?;
        let old = version_of(&versions, name, version)?;
        self.save_profile(scope, &old.profile, &format!("revert to {version}")).await
    }

    /// What changed between two versions of an agent's profile.
    pub async fn diff(
        &self,
        scope: &TenantScope,
        name: &str,
        from: i32,
        to: i32,
    ) -> Result<Vec<FieldChange>, AgentError> {
        let versions = self.versions(scope, name).await?;
        let body =
            |n: i32| version_of(&versions, name, n).map(|v| serde_json::to_value(&v.profile).unwrap_or_default());
        Ok(definitions::diff(&body(from)?, &body(to)?))
    }

    /// Binds a channel (or one thread of it, when `thread` is not empty) to an agent.
    pub async fn bind(&self, scope: &TenantScope, channel: &str, thread: &str, agent: &str) -> Result<(), AgentError> {
        self.agent(scope, agent).await?;
        let mut tx = scope.begin().await?;
        sqlx::query(
            "INSERT INTO channel_bindings (channel, thread, agent, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (channel, thread) DO UPDATE SET agent = EXCLUDED.agent",
        )
        .bind(channel)
        .bind(thread)
        .bind(agent)
        .bind(chrono::Utc::now())
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The agent bound to (channel, thread), or to the whole channel.
    pub(crate) async fn binding(
        &self,
        scope: &TenantScope,
        channel: &str,
        thread: &str,
    ) -> Result<Option<String>, AgentError> {
        let mut tx = scope.begin().await?;
        let agent = sqlx::query_scalar(
            "SELECT agent FROM channel_bindings WHERE channel = $1 AND thread IN ($2, '') ORDER BY thread DESC LIMIT 1",
        )
        .bind(channel)
        .bind(thread)
        .fetch_optional(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(agent)
    }

    /// The tenant's conversations, most recent first.
    pub async fn conversations(
        &self,
        scope: &TenantScope,
        limit: i64,
    ) -> Result<Vec<conversation::Conversation>, AgentError> {
        let mut tx = scope.begin().await?;
        let rows = conversation::list(tx.conn(), limit.clamp(1, 1000)).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// One conversation with its participants and every message, summaries included.
    pub async fn conversation(&self, scope: &TenantScope, id: Uuid) -> Result<ConversationHistory, AgentError> {
        let mut tx = scope.begin().await?;
        let conversation = conversation::get(tx.conn(), id).await?.ok_or(AgentError::ConversationNotFound(id))?;
        let participants = conversation::participants(tx.conn(), id)
            .await?
            .into_iter()
            .map(|(kind, name)| Participant { kind, name })
            .collect();
        let messages = conversation::messages(tx.conn(), id).await?;
        tx.commit().await?;
        Ok(ConversationHistory { conversation, participants, messages })
    }

    /// Delegation from a tool: a child run of `ctx`'s run, one level deeper.
    pub(crate) async fn delegate(
        &self,
        ctx: &ToolContext,
        agent: &str,
        question: &str,
    ) -> Result<RunResult, AgentError> {
        let limit = self.config().max_delegation_depth;
        if ctx.depth + 1 > limit {
            return Err(AgentError::Invalid(format!(
                "delegation depth limit ({limit}) reached: answer without asking another agent"
            )));
        }
        let team = self.team(&ctx.scope).await?;
        let target = team
            .iter()
            .find(|a| a.profile.name == agent)
            .cloned()
            .ok_or_else(|| AgentError::UnknownAgent(agent.into()))?;
        let spec = engine::RunSpec {
            scope: ctx.scope.clone(),
            agent: target,
            team,
            id: Uuid::now_v7(),
            parent: Some(ctx.run_id),
            root: ctx.root_run_id,
            depth: ctx.depth + 1,
            conversation: None,
            history: Vec::new(),
            text: question.to_owned(),
            routing: Some(serde_json::json!({ "method": "delegation", "from": ctx.agent })),
            pre_steps: Vec::new(),
            sink: None,
            kind: crate::audit::runs::RunKind::Agent,
        };
        self.run(spec).await
    }
}

/// Version `n` of agent `name` among `versions`.
fn version_of<'a>(versions: &'a [ProfileVersion], name: &str, n: i32) -> Result<&'a ProfileVersion, AgentError> {
    versions
        .iter()
        .find(|v| v.version == n)
        .ok_or_else(|| AgentError::Invalid(format!("agent `{name}` has no version {n}")))
}

/// Deduplicates citations by document, anchor and span, keeping the first.
pub(crate) fn unique_citations(citations: Vec<Citation>) -> Vec<Citation> {
    let mut out: Vec<Citation> = Vec::new();
    for c in citations {
        if !out.iter().any(|o| o.source_key == c.source_key && o.anchor == c.anchor && o.span == c.span) {
            out.push(c);
        }
    }
    out
}
