//! The boardroom: several agents answer the same question in parallel, then the chief of
//! staff synthesizes. One run (kind `boardroom`) with a child run per member and one for
//! the synthesis, all sharing the turn's budget.

use std::time::Instant;

use serde_json::json;
use uuid::Uuid;

use super::{
    AgentError, Agents, ChatEvent, EventSink, ResolvedAgent,
    conversation::NewMessage,
    engine::{Outcome, RunSpec},
    inbound::{ChatReply, InboundMessage, MemberAnswer},
    routing::RouteMethod,
    turn::Answer,
};
use crate::{
    audit::runs::{self, NewRun, RunEnd, RunKind},
    llm::types::Message,
    tenancy::TenantScope,
};

impl Agents {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn boardroom(
        &self,
        scope: &TenantScope,
        team: &[ResolvedAgent],
        conv: Uuid,
        run_id: Uuid,
        seats: Vec<String>,
        question: &str,
        m: &InboundMessage,
        sink: Option<EventSink>,
    ) -> Result<Answer, AgentError> {
        if question.trim().is_empty() {
            return Err(AgentError::Invalid("the boardroom needs a question: /boardroom [@a @b] <question>".into()));
        }
        let started = Instant::now();
        let chief_name = self.config().chief.clone();
        let chief = team
            .iter()
            .find(|a| a.profile.name == chief_name)
            .cloned()
            .ok_or_else(|| AgentError::UnknownAgent(chief_name.clone()))?;
        let mut members = Vec::new();
        for seat in &seats {
            let agent = team
                .iter()
                .find(|a| &a.profile.name == seat)
                .cloned()
                .ok_or_else(|| AgentError::UnknownAgent(seat.clone()))?;
            if !members.iter().any(|m: &ResolvedAgent| m.profile.name == agent.profile.name) {
                members.push(agent);
            }
        }
        let record = json!({ "method": "boardroom", "members": seats, "chief": chief_name });
        if let Some(sink) = &sink {
            let _ = sink.send(ChatEvent::Routed {
                agent: "boardroom".into(),
                method: RouteMethod::Command,
                confidence: 1.0,
            });
        }
        {
            let mut tx = scope.begin().await?;
            let run = NewRun {
                id: run_id,
                parent: None,
                root: run_id,
                kind: RunKind::Boardroom,
                agent: Some(chief_name.clone()),
                agent_version: Some(chief.version),
                conversation: Some(conv),
                depth: 0,
                routing: Some(record.clone()),
            };
            runs::start_run(tx.conn(), &run).await?;
            tx.commit().await?;
        }
        let child = |agent: ResolvedAgent, text: String, sink: Option<EventSink>| RunSpec {
            scope: scope.clone(),
            agent,
            team: team.to_vec(),
            id: Uuid::now_v7(),
            parent: Some(run_id),
            root: run_id,
            depth: 1,
            conversation: Some(conv),
            history: Vec::new(),
            text,
            routing: Some(json!({ "method": "boardroom" })),
            pre_steps: Vec::new(),
            sink,
            kind: RunKind::Agent,
        };
        let asked = format!("The owner asks the board: {question}\nAnswer from your own role, briefly.");
        let answers =
            futures::future::join_all(members.iter().map(|a| self.run(child(a.clone(), asked.clone(), None)))).await;
        let mut member_answers = Vec::new();
        let mut citations = Vec::new();
        for result in answers {
            let result = result?;
            citations.extend(result.citations.clone());
            member_answers.push(MemberAnswer {
                agent: result.agent,
                run_id: result.run_id,
                text: result.text,
                outcome: result.outcome.as_str().into(),
            });
        }
        let briefing: Vec<String> = member_answers.iter().map(|a| format!("[{}] {}", a.agent, a.text)).collect();
        let synthesis_text = format!(
            "Question to the board: {question}\n\nThe board's answers:\n{}\n\nSynthesize them for the owner: where they agree, where they differ, and a recommendation.",
            briefing.join("\n\n")
        );
        let synthesis = self.run(child(chief.clone(), synthesis_text, sink)).await;
        let all_failed = member_answers.iter().all(|a| a.outcome == "error");
        let outcome = match &synthesis {
            Ok(_) if all_failed => Outcome::Error,
            Ok(s) => s.outcome,
            Err(_) => Outcome::Error,
        };
        let spent = self.spent(scope, run_id, None).await?;
        let end = RunEnd {
            outcome: outcome.as_str().into(),
            error: synthesis.as_ref().err().map(ToString::to_string),
            tokens_in: spent.tokens_in,
            tokens_out: spent.tokens_out,
            cost_micro_usd: spent.cost,
            unpriced_calls: i32::try_from(spent.unpriced).unwrap_or(i32::MAX),
            latency_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
            ..RunEnd::default()
        };
        let mut tx = scope.begin().await?;
        runs::finish_run(tx.conn(), run_id, &end).await?;
        tx.commit().await?;
        self.finished(scope, run_id, &chief_name, outcome);
        let synthesis = synthesis?;
        citations.extend(synthesis.citations.clone());
        let messages = vec![
            NewMessage { message: Message::user(question.to_owned()), agent: None, sender: Some(m.sender.clone()) },
            NewMessage {
                message: Message::assistant(synthesis.text.clone()),
                agent: Some(chief_name.clone()),
                sender: None,
            },
        ];
        let reply = ChatReply {
            agent: Some(chief_name),
            citations: super::unique_citations(citations),
            route: Some(record),
            members: member_answers,
            ..ChatReply::new(run_id, conv, m, outcome, synthesis.text)
        };
        Ok(Answer { reply, messages, summary: None })
    }
}
