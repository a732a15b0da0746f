//! The one entry point for every message, whatever channel it comes from. Each
//! `InboundMessage` is unique on (channel, source_id): the first delivery claims it and
//! answers; a replay returns the stored reply without calling a model again; the reply is
//! stored before it is returned (and so before any channel delivers it). A delivery that
//! finds the message still being answered waits for it; one whose earlier attempt failed or
//! whose claim expired (a crash mid-answer) answers it again.

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{
    AgentError, Agents, ChatEvent, EventSink, ResolvedAgent,
    conversation::{self, NewMessage, StoredMessage},
    engine::{Exchange, Outcome, RunSpec},
    routing::{self, Command, Parsed, Route, RouteMethod},
    tools::Citation,
};
use crate::{
    audit::{
        AuditEvent, chain,
        runs::{self, NewRun, RunEnd, RunKind},
    },
    knowledge::{SearchMode, SearchOptions},
    llm::types::{ChatRequest, Message, ResponseFormat},
    policy::Intent,
    tenancy::TenantScope,
};

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

enum Claim {
    Claimed,
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
        loop {
            match self.claim(scope, message).await? {
                Claim::Done(reply) => return Ok(ChatReply { replayed: true, ..*reply }),
                Claim::Claimed => break,
                Claim::Busy if std::time::Instant::now() < wait_until => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Claim::Busy => return Err(AgentError::InProgress(message.source_id.clone())),
            }
        }
        match self.answer(scope, message, sink).await {
            Ok(reply) => Ok(reply),
            Err(err) => {
                let mut tx = scope.begin().await?;
                sqlx::query("UPDATE inbound_messages SET status = 'failed', error = $3, finished_at = $4 WHERE channel = $1 AND source_id = $2")
                    .bind(&message.channel)
                    .bind(&message.source_id)
                    .bind(err.to_string())
                    .bind(Utc::now())
                    .execute(tx.conn())
                    .await?;
                tx.commit().await?;
                Err(err)
            }
        }
    }

    async fn claim(&self, scope: &TenantScope, m: &InboundMessage) -> Result<Claim, AgentError> {
        let lease = chrono::Duration::seconds(self.config().inbound_lease_secs);
        let now = Utc::now();
        let mut tx = scope.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO inbound_messages (channel, source_id, thread, sender, text, status, claimed_until, received_at) \
             VALUES ($1, $2, $3, $4, $5, 'processing', $6, $7) ON CONFLICT (channel, source_id) DO NOTHING",
        )
        .bind(&m.channel)
        .bind(&m.source_id)
        .bind(&m.thread)
        .bind(&m.sender)
        .bind(&m.text)
        .bind(now + lease)
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected();
        if inserted == 1 {
            tx.commit().await?;
            return Ok(Claim::Claimed);
        }
        let (status, reply): (String, Option<serde_json::Value>) =
            sqlx::query_as("SELECT status, reply FROM inbound_messages WHERE channel = $1 AND source_id = $2")
                .bind(&m.channel)
                .bind(&m.source_id)
                .fetch_one(tx.conn())
                .await?;
        if status == "done" {
            tx.commit().await?;
            let reply = reply.ok_or_else(|| AgentError::Invalid("a done message has no stored reply".into()))?;
            let reply: ChatReply = serde_json::from_value(reply)
                .map_err(|e| AgentError::Invalid(format!("stored reply unreadable: {e}")))?;
            return Ok(Claim::Done(Box::new(reply)));
        }
        let taken = sqlx::query(
            "UPDATE inbound_messages SET status = 'processing', attempts = attempts + 1, claimed_until = $3, error = NULL \
             WHERE channel = $1 AND source_id = $2 AND (status = 'failed' OR claimed_until < $4)",
        )
        .bind(&m.channel)
        .bind(&m.source_id)
        .bind(now + lease)
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(if taken == 1 { Claim::Claimed } else { Claim::Busy })
    }

    async fn answer(
        &self,
        scope: &TenantScope,
        m: &InboundMessage,
        sink: Option<EventSink>,
    ) -> Result<ChatReply, AgentError> {
        let team = self.team(scope).await?;
        let conv = {
            let mut tx = scope.begin().await?;
            let conv = conversation::get_or_create(tx.conn(), &m.channel, &m.thread, &m.text).await?;
            conversation::add_participant(tx.conn(), conv.id, "user", &m.sender).await?;
            tx.commit().await?;
            conv
        };
        let run_id = Uuid::now_v7();
        let parsed = match (&m.boardroom, &m.agent) {
            (Some(seats), _) => Parsed::Boardroom { agents: seats.clone(), question: m.text.clone() },
            (None, Some(agent)) => Parsed::Directed { agent: agent.clone(), text: m.text.clone() },
            (None, None) => routing::parse(&m.text, &team),
        };
        let mut reply = match parsed {
            Parsed::Command(command) => self.command(scope, &team, conv.id, run_id, m, command).await?,
            Parsed::Boardroom { agents, question } => {
                let seats = if agents.is_empty() { self.config().boardroom.clone() } else { agents };
                self.boardroom(scope, &team, conv.id, run_id, seats, &question, &m.sender, sink).await?
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
        reply.conversation_id = conv.id;
        let mut tx = scope.begin().await?;
        if let Some(agent) = &reply.agent {
            conversation::add_participant(tx.conn(), conv.id, "agent", agent).await?;
        }
        sqlx::query(
            "UPDATE inbound_messages SET status = 'done', conversation_id = $3, run_id = $4, reply = $5, finished_at = $6 \
             WHERE channel = $1 AND source_id = $2",
        )
        .bind(&m.channel)
        .bind(&m.source_id)
        .bind(conv.id)
        .bind(reply.run_id)
        .bind(serde_json::to_value(&reply).unwrap_or_default())
        .bind(Utc::now())
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(reply)
    }

    /// Mention, binding, the conversation's agent, then the classifier or keywords.
    async fn route(
        &self,
        scope: &TenantScope,
        team: &[ResolvedAgent],
        conv: &conversation::Conversation,
        run_id: Uuid,
        m: &InboundMessage,
    ) -> Result<(Route, Vec<Exchange>), AgentError> {
        if let Some(agent) = routing::mention(&m.text, team) {
            return Ok((
                routing::fixed(RouteMethod::Mention, &agent, team, format!("the message mentions @{agent}")),
                Vec::new(),
            ));
        }
        if let Some(agent) =
            self.binding(scope, &m.channel, &m.thread).await?.filter(|a| team.iter().any(|t| &t.profile.name == a))
        {
            return Ok((
                routing::fixed(
                    RouteMethod::Binding,
                    &agent,
                    team,
                    format!("channel `{}` is bound to {agent}", m.channel),
                ),
                Vec::new(),
            ));
        }
        if let Some(agent) = conv.agent.clone().filter(|a| team.iter().any(|t| &t.profile.name == a)) {
            return Ok((
                routing::fixed(RouteMethod::Conversation, &agent, team, format!("this conversation talks to {agent}")),
                Vec::new(),
            ));
        }
        let chief = self.config().chief.clone();
        if !self.models().has_available_model(scope.tier(), Intent::Routing) {
            let mut route = routing::by_keywords(&m.text, team, &chief);
            route.reason = format!("no routing model is configured; {}", route.reason);
            return Ok((route, Vec::new()));
        }
        let mut request =
            ChatRequest::new(vec![Message::system(routing::classifier_prompt(team)), Message::user(m.text.clone())]);
        request.response_format = Some(ResponseFormat::JsonObject);
        request.max_tokens = Some(100);
        request.temperature = Some(0.0);
        let (result, exchange) = self.call_model(scope, run_id, Intent::Routing, request, None).await;
        let answer = result.as_ref().ok().and_then(|r| r.message()).map(Message::text);
        let route = match answer.as_deref().and_then(|a| routing::read_classifier(a, team)) {
            Some((agent, confidence, reason)) => Route {
                method: RouteMethod::Classifier,
                agent,
                candidates: team.iter().map(|a| a.profile.name.clone()).collect(),
                reason,
                confidence,
            },
            None => {
                let why = match &result {
                    Err(e) => format!("the classifier failed ({e})"),
                    Ok(_) => "the classifier's answer named no agent".to_owned(),
                };
                let mut route = routing::by_keywords(&m.text, team, &chief);
                route.reason = format!("{why}; {}", route.reason);
                route
            }
        };
        Ok((route, vec![exchange]))
    }

    #[allow(clippy::too_many_arguments)]
    async fn agent_turn(
        &self,
        scope: &TenantScope,
        team: &[ResolvedAgent],
        conv: &conversation::Conversation,
        run_id: Uuid,
        route: Route,
        mut pre_steps: Vec<Exchange>,
        m: &InboundMessage,
        text: &str,
        sink: Option<EventSink>,
    ) -> Result<ChatReply, AgentError> {
        let agent = team
            .iter()
            .find(|a| a.profile.name == route.agent)
            .cloned()
            .ok_or_else(|| AgentError::UnknownAgent(route.agent.clone()))?;
        if let Some(sink) = &sink {
            let _ = sink.send(ChatEvent::Routed {
                agent: route.agent.clone(),
                method: route.method,
                confidence: route.confidence,
            });
        }
        {
            let mut tx = scope.begin().await?;
            let event = AuditEvent::AgentRouted {
                agent: route.agent.clone(),
                method: serde_json::to_value(route.method)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            };
            chain::append(tx.conn(), &scope.caller().to_string(), Some(run_id), &event).await?;
            tx.commit().await?;
        }
        if !self.models().has_available_model(scope.tier(), agent.profile.default_intent) {
            return self.without_model(scope, conv.id, run_id, &agent, route, m, text).await;
        }
        let (history, summary) = self.history(scope, conv.id, run_id, &agent).await?;
        pre_steps.extend(summary.clone().map(|(exchange, _, _)| exchange));
        let spec = RunSpec {
            scope: scope.clone(),
            agent: agent.clone(),
            team: team.to_vec(),
            id: run_id,
            parent: None,
            root: run_id,
            depth: 0,
            conversation: Some(conv.id),
            history,
            text: text.to_owned(),
            routing: Some(route.record()),
            pre_steps,
            sink,
            kind: RunKind::Agent,
        };
        let result = self.run(spec).await?;
        let name = result.agent.clone();
        let mut stored =
            vec![NewMessage { message: Message::user(m.text.clone()), agent: None, sender: Some(m.sender.clone()) }];
        stored.extend(result.transcript.iter().map(|msg| NewMessage {
            message: msg.clone(),
            agent: Some(name.clone()),
            sender: None,
        }));
        let mut tx = scope.begin().await?;
        if let Some((_, text, covers)) = &summary {
            conversation::add_summary(tx.conn(), conv.id, run_id, text, *covers).await?;
        }
        conversation::append(tx.conn(), conv.id, Some(run_id), &stored).await?;
        tx.commit().await?;
        Ok(ChatReply {
            run_id,
            conversation_id: conv.id,
            agent: Some(name),
            text: result.text,
            outcome: result.outcome.as_str().into(),
            citations: super::unique_citations(result.citations),
            route: Some(route.record()),
            members: Vec::new(),
            replayed: false,
        })
    }

    /// The conversation's prompt history; when it outgrows the budget, the old turns are
    /// summarized (a model call of the run) and the summary stands in for them.
    async fn history(
        &self,
        scope: &TenantScope,
        conv: Uuid,
        run_id: Uuid,
        agent: &ResolvedAgent,
    ) -> Result<(Vec<Message>, Option<(Exchange, String, i64)>), AgentError> {
        let mut tx = scope.begin().await?;
        let stored = conversation::prompt_history(tx.conn(), conv).await?;
        tx.commit().await?;
        let total: usize = stored.iter().map(conversation::estimate_tokens).sum();
        let keep = self.config().keep_recent_messages;
        // Cut at a user message so that no tool result loses the call it answers.
        let cut = stored
            .iter()
            .enumerate()
            .rev()
            .skip(keep.saturating_sub(1))
            .find(|(_, s)| s.role == "user")
            .map(|(i, _)| i);
        let (Some(cut), true) = (cut, total > self.config().history_token_budget) else {
            return Ok((stored.iter().map(StoredMessage::to_prompt).collect(), None));
        };
        if cut == 0 {
            return Ok((stored.iter().map(StoredMessage::to_prompt).collect(), None));
        }
        let old = &stored[..cut];
        let transcript: Vec<String> = old
            .iter()
            .map(|s| {
                format!(
                    "{}: {}",
                    s.agent.as_deref().or(s.sender.as_deref()).unwrap_or(&s.role),
                    s.content.as_deref().unwrap_or("")
                )
            })
            .collect();
        let mut request = ChatRequest::new(vec![
            Message::system(
                "Summarize this conversation for the agent who continues it: facts, decisions, open questions, names and figures. Be brief and exact.",
            ),
            Message::user(transcript.join("\n")),
        ]);
        request.max_tokens = Some(400);
        let (result, exchange) = self.call_model(scope, run_id, agent.profile.default_intent, request, None).await;
        match result.ok().and_then(|r| r.message().map(Message::text)).filter(|t| !t.trim().is_empty()) {
            Some(summary) => {
                let covers = old.last().map_or(0, |s| s.seq);
                let mut messages = vec![Message::system(format!("Summary of the earlier conversation:\n{summary}"))];
                messages.extend(stored[cut..].iter().map(StoredMessage::to_prompt));
                Ok((messages, Some((exchange, summary, covers))))
            }
            None => Ok((stored.iter().map(StoredMessage::to_prompt).collect(), None)),
        }
    }

    /// No model is configured: say so, and offer the top documents for the message.
    #[allow(clippy::too_many_arguments)]
    async fn without_model(
        &self,
        scope: &TenantScope,
        conv: Uuid,
        run_id: Uuid,
        agent: &ResolvedAgent,
        route: Route,
        m: &InboundMessage,
        text: &str,
    ) -> Result<ChatReply, AgentError> {
        let options = SearchOptions { k: 3, mode: SearchMode::Hybrid, documents: None };
        let hits = self.knowledge().search(scope, text, &options).await?;
        let citations: Vec<Citation> = hits.iter().map(super::prompt::citation).collect();
        let mut answer = format!(
            "No language model is configured for this workspace, so {} cannot answer in its own words.",
            agent.profile.display_name
        );
        if hits.is_empty() {
            answer.push_str(" No passage of your documents matches the message either.");
        } else {
            answer.push_str(" These passages of your documents match your message:\n\n");
            answer.push_str(&super::prompt::numbered_passages(&hits));
        }
        self.record_plain_run(
            scope,
            run_id,
            conv,
            Some(&agent.profile.name),
            Some(route.record()),
            Outcome::NoModel,
            &json!({ "hits": hits.len() }),
        )
        .await?;
        let mut tx = scope.begin().await?;
        conversation::append(
            tx.conn(),
            conv,
            Some(run_id),
            &[
                NewMessage { message: Message::user(m.text.clone()), agent: None, sender: Some(m.sender.clone()) },
                NewMessage {
                    message: Message::assistant(answer.clone()),
                    agent: Some(agent.profile.name.clone()),
                    sender: None,
                },
            ],
        )
        .await?;
        tx.commit().await?;
        self.finished(scope, run_id, &agent.profile.name, Outcome::NoModel);
        Ok(ChatReply {
            run_id,
            conversation_id: conv,
            agent: Some(agent.profile.name.clone()),
            text: answer,
            outcome: Outcome::NoModel.as_str().into(),
            citations,
            route: Some(route.record()),
            members: Vec::new(),
            replayed: false,
        })
    }

    /// Records a run that made no model call (a command, no model).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record_plain_run(
        &self,
        scope: &TenantScope,
        run_id: Uuid,
        conversation: Uuid,
        agent: Option<&str>,
        routing: Option<serde_json::Value>,
        outcome: Outcome,
        note: &serde_json::Value,
    ) -> Result<(), AgentError> {
        let mut tx = scope.begin().await?;
        let run = NewRun {
            id: run_id,
            parent: None,
            root: run_id,
            kind: RunKind::Agent,
            agent: agent.map(str::to_owned),
            agent_version: None,
            conversation: Some(conversation),
            depth: 0,
            routing,
        };
        runs::start_run(tx.conn(), &run).await?;
        runs::add_step(tx.conn(), run_id, 1, runs::StepKind::Note, (None, None), note).await?;
        runs::finish_run(tx.conn(), run_id, &RunEnd { outcome: outcome.as_str().into(), ..RunEnd::default() }).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Fixed commands, answered without a model.
    async fn command(
        &self,
        scope: &TenantScope,
        team: &[ResolvedAgent],
        conv: Uuid,
        run_id: Uuid,
        m: &InboundMessage,
        command: Command,
    ) -> Result<ChatReply, AgentError> {
        let text = match &command {
            Command::Help => "Commands: /agents (the team), /agent <name> [message] (talk to one agent), \
                 /boardroom [@a @b] <question> (ask several agents, then a synthesis), /status, /help. \
                 Or just write: @name picks an agent, otherwise the right one is chosen for you."
                .to_owned(),
            Command::Agents => team
                .iter()
                .map(|a| format!("{} ({}) — {}", a.profile.display_name, a.profile.name, a.profile.role))
                .collect::<Vec<_>>()
                .join("\n"),
            Command::Status => {
                let chat = self.models().has_available_model(scope.tier(), Intent::Chat);
                let mut tx = scope.begin().await?;
                let (docs, agent): (i64, Option<String>) = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM documents), (SELECT agent FROM conversations WHERE id = $1)",
                )
                .bind(conv)
                .fetch_one(tx.conn())
                .await?;
                tx.commit().await?;
                format!(
                    "Tier: {}. Chat model: {}. Documents: {docs}. This conversation talks to: {}.",
                    scope.tier(),
                    if chat { "configured" } else { "none configured" },
                    agent.as_deref().unwrap_or("whoever fits each message")
                )
            }
            Command::UseAgent(name) => {
                let mut tx = scope.begin().await?;
                conversation::set_agent(tx.conn(), conv, Some(name)).await?;
                tx.commit().await?;
                format!("From now on {name} answers in this conversation (until another /agent).")
            }
            Command::Unknown(what) => format!("{what}. Try /help."),
        };
        let record = json!({ "method": "command", "command": format!("{command:?}") });
        self.record_plain_run(scope, run_id, conv, None, Some(record.clone()), Outcome::Command, &record).await?;
        let mut tx = scope.begin().await?;
        conversation::append(
            tx.conn(),
            conv,
            Some(run_id),
            &[
                NewMessage { message: Message::user(m.text.clone()), agent: None, sender: Some(m.sender.clone()) },
                NewMessage { message: Message::assistant(text.clone()), agent: None, sender: None },
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(ChatReply {
            run_id,
            conversation_id: conv,
            agent: None,
            text,
            outcome: Outcome::Command.as_str().into(),
            citations: Vec::new(),
            route: None,
            members: Vec::new(),
            replayed: false,
        })
    }
}
