//! The one entry point for every message, whatever channel it comes from. Each
//! `InboundMessage` is unique on (channel, source_id): the first delivery claims it and
//! answers; a replay returns the stored reply without calling a model again. The reply is
//! stored in the same transaction as the conversation's new messages, before it is
//! returned (and so before any channel delivers it). A delivery that finds the message
//! still being answered waits for it; one whose earlier attempt failed, or whose claim
//! lapsed (a crash mid-answer: a live attempt renews its claim), answers it again. Every
//! write of an attempt is fenced by its attempt number, so a stale attempt can never
//! overwrite a newer one. The same source id with other text is refused, not replayed.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    AgentError, Agents, EventSink, conversation,
    engine::Outcome,
    routing::{self, Parsed, RouteMethod},
    tools::Citation,
    turn::Answer,
};
use crate::tenancy::TenantScope;

/// A message from any channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboundMessage {
    /// `api`, `cli`, `telegram`, `email`, `teams`, …
    pub channel: String,
    /// The channel's stable id of this message (update id, Message-ID, activity id).
    pub source_id: String,
    /// The conversation within the channel (chat id, email thread, Teams conversation).
    pub thread: String,
    /// Who wrote it.
    pub sender: String,
    /// What they wrote.
    pub text: String,
    /// An agent asked for explicitly (the API's `agent` field), as `/agent <name>` would.
    #[serde(default)]
    pub agent: Option<String>,
    /// A boardroom asked for explicitly (the API's `boardroom` field); empty: the default seats.
    #[serde(default)]
    pub boardroom: Option<Vec<String>>,
}

/// One boardroom member's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberAnswer {
    /// The agent.
    pub agent: String,
    /// Its run.
    pub run_id: Uuid,
    /// Its answer.
    pub text: String,
    /// How its run ended.
    pub outcome: String,
}

/// The answer to an inbound message, as stored and returned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatReply {
    /// The run that answered (the boardroom run for a boardroom).
    pub run_id: Uuid,
    /// The conversation.
    pub conversation_id: Uuid,
    /// Its thread within the channel.
    pub thread: String,
    /// The agent that answered, if one did.
    pub agent: Option<String>,
    /// The answer.
    pub text: String,
    /// How it ended (`ok`, `command`, `no_model`, `step_limit`, `budget_exhausted`, `error`).
    pub outcome: String,
    /// Documents the answer draws on.
    pub citations: Vec<Citation>,
    /// How the agent was chosen.
    pub route: Option<serde_json::Value>,
    /// Boardroom members' answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberAnswer>,
    /// True when this is the stored reply of an earlier delivery.
    #[serde(default)]
    pub replayed: bool,
}

impl ChatReply {
    /// A fresh reply to `m` (no agent, citations, route or members yet).
    pub(crate) fn new(run_id: Uuid, conversation_id: Uuid, m: &InboundMessage, outcome: Outcome, text: String) -> Self {
        Self {
            run_id,
            conversation_id,
            thread: m.thread.clone(),
            agent: None,
            text,
            outcome: outcome.as_str().into(),
            citations: Vec::new(),
            route: None,
            members: Vec::new(),
            replayed: false,
        }
    }
}

enum Claim {
    /// This delivery answers; its attempt number fences every later write.
    Claimed(i32),
    Done(Box<ChatReply>),
    Busy,
}

const MAX_TEXT: usize = 32 * 1024;

impl InboundMessage {
    fn check(&self) -> Result<(), AgentError> {
        let bad = |what: &str| Err(AgentError::Invalid(what.into()));
        if self.channel.is_empty() || self.channel.len() > 64 {
            return bad("channel must be 1 to 64 characters");
        }
        if self.source_id.is_empty() || self.source_id.len() > 512 {
            return bad("source_id must be 1 to 512 characters");
        }
        if self.thread.len() > 512 || self.sender.len() > 256 {
            return bad("thread or sender is too long");
        }
        if self.text.trim().is_empty() {
            return bad("the message is empty");
        }
        if self.text.len() > MAX_TEXT {
            return bad("the message is longer than 32 KiB");
        }
        if [&self.channel, &self.source_id, &self.thread, &self.sender, &self.text].iter().any(|s| s.contains('\0')) {
            return bad("the message contains a NUL character");
        }
        Ok(())
    }
}

impl Agents {
    /// Answers an inbound message once; see the module docs for replays. Events of the run
    /// go to `sink` as they happen.
    pub async fn handle(
        &self,
        scope: &TenantScope,
        message: &InboundMessage,
        sink: Option<EventSink>,
    ) -> Result<ChatReply, AgentError> {
        message.check()?;
        let wait_until = std::time::Instant::now() + Duration::from_secs(30);
        let attempt = loop {
            match self.claim(scope, message).await? {
                Claim::Done(reply) => return Ok(ChatReply { replayed: true, ..*reply }),
                Claim::Claimed(attempt) => break attempt,
                Claim::Busy if std::time::Instant::now() < wait_until => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Claim::Busy => return Err(AgentError::InProgress(message.source_id.clone())),
            }
        };
        let renewal = self.renew_claim(scope, message, attempt);
        let result = self.answer(scope, message, attempt, sink).await;
        renewal.abort();
        match result {
            Ok(Some(reply)) => Ok(reply),
            // A newer attempt took the message over: its stored reply is the answer.
            Ok(None) => Box::pin(self.handle(scope, message, None)).await,
            Err(err) => {
                let mut tx = scope.begin().await?;
                sqlx::query(
                    "UPDATE inbound_messages SET status = 'failed', error = $3, finished_at = now() \
                     WHERE channel = $1 AND source_id = $2 AND status = 'processing' AND attempts = $4",
                )
                .bind(&message.channel)
                .bind(&message.source_id)
                .bind(err.to_string())
                .bind(attempt)
                .execute(tx.conn())
                .await?;
                tx.commit().await?;
                Err(err)
            }
        }
    }

    async fn claim(&self, scope: &TenantScope, m: &InboundMessage) -> Result<Claim, AgentError> {
        let lease = self.config().inbound_lease_secs.max(1) as f64;
        let mut tx = scope.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO inbound_messages (channel, source_id, thread, sender, text, status, claimed_until, received_at) \
             VALUES ($1, $2, $3, $4, $5, 'processing', now() + make_interval(secs => $6), now()) \
             ON CONFLICT (channel, source_id) DO NOTHING",
        )
        .bind(&m.channel)
        .bind(&m.source_id)
        .bind(&m.thread)
        .bind(&m.sender)
        .bind(&m.text)
        .bind(lease)
        .execute(tx.conn())
        .await?
        .rows_affected();
        if inserted == 1 {
            tx.commit().await?;
            return Ok(Claim::Claimed(1));
        }
        let (status, reply, text, thread): (String, Option<serde_json::Value>, String, String) = sqlx::query_as(
            "SELECT status, reply, text, thread FROM inbound_messages WHERE channel = $1 AND source_id = $2",
        )
        .bind(&m.channel)
        .bind(&m.source_id)
        .fetch_one(tx.conn())
        .await?;
        if text != m.text || thread != m.thread {
            return Err(AgentError::Conflict(format!(
                "message `{}` of channel `{}` was already received with other content",
                m.source_id, m.channel
            )));
        }
        if status == "done" {
            tx.commit().await?;
            let reply = reply.ok_or_else(|| AgentError::Invalid("a done message has no stored reply".into()))?;
            let reply: ChatReply = serde_json::from_value(reply)
                .map_err(|e| AgentError::Invalid(format!("stored reply unreadable: {e}")))?;
            return Ok(Claim::Done(Box::new(reply)));
        }
        let taken: Option<i32> = sqlx::query_scalar(
            "UPDATE inbound_messages SET status = 'processing', attempts = attempts + 1, \
             claimed_until = now() + make_interval(secs => $3), error = NULL \
             WHERE channel = $1 AND source_id = $2 AND status <> 'done' AND (status = 'failed' OR claimed_until < now()) \
             RETURNING attempts",
        )
        .bind(&m.channel)
        .bind(&m.source_id)
        .bind(lease)
        .fetch_optional(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(taken.map_or(Claim::Busy, Claim::Claimed))
    }

    /// Keeps the claim alive while the attempt works (every third of the lease).
    fn renew_claim(&self, scope: &TenantScope, m: &InboundMessage, attempt: i32) -> tokio::task::JoinHandle<()> {
        let lease = self.config().inbound_lease_secs.max(1);
        let (scope, channel, source_id) = (scope.clone(), m.channel.clone(), m.source_id.clone());
        tokio::spawn(async move {
            let every = Duration::from_millis(u64::try_from(lease).unwrap_or(1) * 1000 / 3);
            loop {
                tokio::time::sleep(every).await;
                let Ok(mut tx) = scope.begin().await else { continue };
                let renewed = sqlx::query(
                    "UPDATE inbound_messages SET claimed_until = now() + make_interval(secs => $4) \
                     WHERE channel = $1 AND source_id = $2 AND status = 'processing' AND attempts = $3",
                )
                .bind(&channel)
                .bind(&source_id)
                .bind(attempt)
                .bind(lease as f64)
                .execute(tx.conn())
                .await;
                if tx.commit().await.is_err() || renewed.map_or(true, |r| r.rows_affected() == 0) {
                    return;
                }
            }
        })
    }

    /// Answers, then stores the messages and the reply in one transaction. `None`: a newer
    /// attempt owns the message now, and nothing of this one was stored.
    async fn answer(
        &self,
        scope: &TenantScope,
        m: &InboundMessage,
        attempt: i32,
        sink: Option<EventSink>,
    ) -> Result<Option<ChatReply>, AgentError> {
        let team = self.team(scope).await?;
        let conv = {
            let mut tx = scope.begin().await?;
            let conv = conversation::get_or_create(tx.conn(), &m.channel, &m.thread, &m.text).await?;
            tx.commit().await?;
            conv
        };
        let run_id = Uuid::now_v7();
        let parsed = match (&m.boardroom, &m.agent) {
            (Some(seats), _) => Parsed::Boardroom { agents: seats.clone(), question: m.text.clone() },
            (None, Some(agent)) => Parsed::Directed { agent: agent.clone(), text: m.text.clone() },
            (None, None) => routing::parse(&m.text, &team),
        };
        let answer: Answer = match parsed {
            Parsed::Command(command) => self.command(scope, &team, conv.id, run_id, m, command).await?,
            Parsed::Boardroom { agents, question } => {
                let seats = if agents.is_empty() { self.config().boardroom.clone() } else { agents };
                self.boardroom(scope, &team, conv.id, run_id, seats, &question, m, sink).await?
            }
            Parsed::Directed { agent, text } => {
                let route =
                    routing::fixed(RouteMethod::Command, &agent, &team, format!("asked for {agent} explicitly"));
                self.agent_turn(scope, &team, &conv, run_id, route, Vec::new(), m, &text, sink).await?
            }
            Parsed::Message => {
                let (route, pre) = self.route(scope, &team, &conv, run_id, m).await?;
                self.agent_turn(scope, &team, &conv, run_id, route, pre, m, &m.text, sink).await?
            }
        };
        let reply = answer.reply;
        let mut tx = scope.begin().await?;
        let stored = sqlx::query(
            "UPDATE inbound_messages SET status = 'done', conversation_id = $3, run_id = $4, reply = $5, finished_at = now() \
             WHERE channel = $1 AND source_id = $2 AND status = 'processing' AND attempts = $6",
        )
        .bind(&m.channel)
        .bind(&m.source_id)
        .bind(conv.id)
        .bind(reply.run_id)
        .bind(serde_json::to_value(&reply).unwrap_or_default())
        .bind(attempt)
        .execute(tx.conn())
        .await?
        .rows_affected();
        if stored == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        conversation::lock(tx.conn(), conv.id).await?;
        conversation::add_participant(tx.conn(), conv.id, "user", &m.sender).await?;
        if let Some(agent) = &reply.agent {
            conversation::add_participant(tx.conn(), conv.id, "agent", agent).await?;
        }
        if let Some((text, covers)) = &answer.summary {
            conversation::add_summary(tx.conn(), conv.id, reply.run_id, text, *covers).await?;
        }
        conversation::append(tx.conn(), conv.id, Some(reply.run_id), &answer.messages).await?;
        tx.commit().await?;
        Ok(Some(reply))
    }
}
