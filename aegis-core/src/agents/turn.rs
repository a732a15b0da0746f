//! One turn of a claimed inbound message: route it, run the agent (or answer a command, or
//! say that no model is configured), and hand back what to store. Nothing here writes the
//! conversation: [`super::inbound`] stores the messages and the reply in one transaction.

use serde_json::json;
use uuid::Uuid;

use super::{
    AgentError, Agents, ChatEvent, EventSink, ResolvedAgent,
    conversation::{self, Conversation, NewMessage, StoredMessage},
    engine::{Exchange, Outcome, RunSpec},
    inbound::{ChatReply, InboundMessage},
    routing::{self, Command, Route, RouteMethod},
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

/// What a turn produced: the reply and what the conversation gains.
#[derive(Debug)]
pub(crate) struct Answer {
    pub reply: ChatReply,
    pub messages: Vec<NewMessage>,
    /// A new summary: its text and the last message it stands for.
    pub summary: Option<(String, i64)>,
}

/// A summary the turn made of the old history: the call, the text, what it covers.
type Summary = (Exchange, Option<(String, i64)>);

impl Answer {
    fn plain(reply: ChatReply, m: &InboundMessage, agent: Option<&str>) -> Self {
        let messages = vec![
            NewMessage { message: Message::user(m.text.clone()), agent: None, sender: Some(m.sender.clone()) },
            NewMessage {
                message: Message::assistant(reply.text.clone()),
                agent: agent.map(str::to_owned),
                sender: None,
            },
        ];
        Self { reply, messages, summary: None }
    }
}

impl Agents {
    /// Mention, binding, the conversation's agent, then the classifier or keywords.
    pub(crate) async fn route(
        &self,
        scope: &TenantScope,
        team: &[ResolvedAgent],
        conv: &Conversation,
        run_id: Uuid,
        m: &InboundMessage,
    ) -> Result<(Route, Vec<Exchange>), AgentError> {
        let known = |a: &String| team.iter().any(|t| &t.profile.name == a);
        if let Some(agent) = routing::mention(&m.text, team) {
            let reason = format!("the message mentions @{agent}");
            return Ok((routing::fixed(RouteMethod::Mention, &agent, team, reason), Vec::new()));
        }
        if let Some(agent) = self.binding(scope, &m.channel, &m.thread).await?.filter(known) {
            let reason = format!("channel `{}` is bound to {agent}", m.channel);
            return Ok((routing::fixed(RouteMethod::Binding, &agent, team, reason), Vec::new()));
        }
        if let Some(agent) = conv.agent.clone().filter(known) {
            let reason = format!("this conversation talks to {agent}");
            return Ok((routing::fixed(RouteMethod::Conversation, &agent, team, reason), Vec::new()));
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

    /// Runs the routed agent on the message, with the conversation's history.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn agent_turn(
        &self,
        scope: &TenantScope,
        team: &[ResolvedAgent],
        conv: &Conversation,
        run_id: Uuid,
        route: Route,
        mut pre_steps: Vec<Exchange>,
        m: &InboundMessage,
        text: &str,
        sink: Option<EventSink>,
    ) -> Result<Answer, AgentError> {
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
            let method = serde_json::to_value(route.method).ok().and_then(|v| v.as_str().map(str::to_owned));
            let event = AuditEvent::AgentRouted { agent: route.agent.clone(), method: method.unwrap_or_default() };
            chain::append(tx.conn(), &scope.caller().to_string(), Some(run_id), &event).await?;
            tx.commit().await?;
        }
        if !self.models().has_available_model(scope.tier(), agent.profile.default_intent) {
            return self.without_model(scope, conv.id, run_id, &agent, route, m, text).await;
        }
        let (history, summary) = self.history(scope, conv.id, run_id, &agent).await?;
        let summary = summary.map(|(exchange, made)| {
            pre_steps.push(exchange);
            made
        });
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
        let mut messages =
            vec![NewMessage { message: Message::user(m.text.clone()), agent: None, sender: Some(m.sender.clone()) }];
        messages.extend(result.transcript.iter().map(|msg| NewMessage {
            message: msg.clone(),
            agent: Some(name.clone()),
            sender: None,
        }));
        let reply = ChatReply {
            agent: Some(name),
            citations: result.citations,
            route: Some(route.record()),
            ..ChatReply::new(run_id, conv.id, m, result.outcome, result.text)
        };
        Ok(Answer { reply, messages, summary: summary.flatten() })
    }

    /// The conversation's prompt history; when it outgrows the budget, the old turns are
    /// summarized (a model call of the run, recorded even when it fails) and the summary
    /// stands in for them.
    async fn history(
        &self,
        scope: &TenantScope,
        conv: Uuid,
        run_id: Uuid,
        agent: &ResolvedAgent,
    ) -> Result<(Vec<Message>, Option<Summary>), AgentError> {
        let mut tx = scope.begin().await?;
        let stored = conversation::prompt_history(tx.conn(), conv).await?;
        tx.commit().await?;
        let verbatim = |rows: &[StoredMessage]| rows.iter().map(StoredMessage::to_prompt).collect::<Vec<_>>();
        let total: usize = stored.iter().map(conversation::estimate_tokens).sum();
        if total <= self.config().history_token_budget {
            return Ok((verbatim(&stored), None));
        }
        // Cut at a user message, so that no tool result loses the call it answers.
        let keep = self.config().keep_recent_messages;
        let cut = stored
            .iter()
            .enumerate()
            .rev()
            .skip(keep.saturating_sub(1))
            .find(|(_, s)| s.role == "user")
            .map(|(i, _)| i);
        let old = match cut {
            Some(cut) => &stored[..cut],
            None => return Ok((verbatim(&stored), None)),
        };
        // Only a previous summary before the cut: nothing new to summarize.
        let Some(covers) = old.iter().filter(|s| s.role != "summary").map(|s| s.seq).max() else {
            return Ok((verbatim(&stored), None));
        };
        let transcript: Vec<String> = old
            .iter()
            .map(|s| {
                let who = if s.role == "summary" {
                    "earlier summary"
                } else {
                    s.agent.as_deref().or(s.sender.as_deref()).unwrap_or(&s.role)
                };
                format!("{who}: {}", s.content.as_deref().unwrap_or(""))
            })
            .collect();
        let mut request = ChatRequest::new(vec![
            Message::system(
                "Summarize this conversation for the agent who continues it: facts, decisions, open questions, \
                 names and figures. Be brief and exact.",
            ),
            Message::user(transcript.join("\n")),
        ]);
        request.max_tokens = Some(400);
        let (result, exchange) = self.call_model(scope, run_id, agent.profile.default_intent, request, None).await;
        match result.ok().and_then(|r| r.message().map(Message::text)).filter(|t| !t.trim().is_empty()) {
            Some(summary) => {
                let cut = old.len();
                let mut messages = vec![Message::system(format!("Summary of the earlier conversation:\n{summary}"))];
                messages.extend(verbatim(&stored[cut..]));
                Ok((messages, Some((exchange, Some((summary, covers))))))
            }
            None => Ok((verbatim(&stored), Some((exchange, None)))),
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
    ) -> Result<Answer, AgentError> {
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
        let note = json!({ "note": "no model configured", "hits": hits.len() });
        self.record_plain_run(
            scope,
            run_id,
            conv,
            Some(&agent.profile.name),
            Some(route.record()),
            Outcome::NoModel,
            &note,
        )
        .await?;
        self.finished(scope, run_id, &agent.profile.name, Outcome::NoModel);
        let reply = ChatReply {
            agent: Some(agent.profile.name.clone()),
            citations,
            route: Some(route.record()),
            ..ChatReply::new(run_id, conv, m, Outcome::NoModel, answer)
        };
        Ok(Answer::plain(reply, m, Some(&agent.profile.name)))
    }

    /// Records a run that made no model call (a command, no model).
    #[allow(clippy::too_many_arguments)]
    async fn record_plain_run(
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
    pub(crate) async fn command(
        &self,
        scope: &TenantScope,
        team: &[ResolvedAgent],
        conv: Uuid,
        run_id: Uuid,
        m: &InboundMessage,
        command: Command,
    ) -> Result<Answer, AgentError> {
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
        let reply = ChatReply::new(run_id, conv, m, Outcome::Command, text);
        Ok(Answer::plain(reply, m, None))
    }
}
