//! Prompt assembly: the agent's persona, its team (when it may delegate), and blocks from
//! pluggable context sources — the knowledge base now; Memoria, CRM and skills later.

use async_trait::async_trait;

use super::{AgentError, ResolvedAgent, tools::Citation};
use crate::{
    knowledge::{Hit, Knowledge, SearchMode, SearchOptions},
    tenancy::TenantScope,
};

/// What a context source sees.
#[derive(Debug)]
pub struct ContextRequest<'a> {
    /// The tenant.
    pub scope: &'a TenantScope,
    /// The agent answering.
    pub agent: &'a ResolvedAgent,
    /// The user's message.
    pub message: &'a str,
}

/// A block of context for the system prompt, with the sources it cites.
#[derive(Debug, Clone, Default)]
pub struct ContextBlock {
    /// The text, under its own heading.
    pub text: String,
    /// Sources the block numbers, for the reply's citations.
    pub citations: Vec<Citation>,
}

/// Adds context to an agent's prompt.
#[async_trait]
pub trait ContextSource: Send + Sync + std::fmt::Debug {
    /// A name for notes and audits.
    fn name(&self) -> &'static str;
    /// The block for this message, if any.
    async fn context(&self, request: &ContextRequest<'_>) -> Result<Option<ContextBlock>, AgentError>;
}

/// The knowledge base: the top passages for the message, for agents that may search it.
#[derive(Debug, Clone)]
pub struct KnowledgeContext {
    knowledge: Knowledge,
    hits: usize,
}

impl KnowledgeContext {
    /// The top `hits` passages of `knowledge`.
    pub fn new(knowledge: Knowledge, hits: usize) -> Self {
        Self { knowledge, hits }
    }
}

#[async_trait]
impl ContextSource for KnowledgeContext {
    fn name(&self) -> &'static str {
        "knowledge"
    }

    async fn context(&self, request: &ContextRequest<'_>) -> Result<Option<ContextBlock>, AgentError> {
        if self.hits == 0 || !request.agent.profile.tools.iter().any(|t| t == "kb_search") {
            return Ok(None);
        }
        let options = SearchOptions { k: self.hits, mode: SearchMode::Hybrid, documents: None };
        let hits = match self.knowledge.search(request.scope, request.message, &options).await {
            Ok(hits) => hits,
            Err(crate::knowledge::KnowledgeError::Invalid(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if hits.is_empty() {
            return Ok(None);
        }
        Ok(Some(ContextBlock {
            text: format!(
                "Passages from the business's documents that may be relevant (cite them as [n]; \
                 call kb_search for more):\n{}",
                numbered_passages(&hits)
            ),
            citations: hits.iter().map(citation).collect(),
        }))
    }
}

/// The citation of a search hit.
pub fn citation(hit: &Hit) -> Citation {
    Citation {
        source_key: hit.source_key.clone(),
        title: hit.title.clone(),
        anchor: hit.anchor.to_string(),
        span: hit.span.clone(),
    }
}

/// Hits as `[n] source (anchor): text` lines.
pub fn numbered_passages(hits: &[Hit]) -> String {
    hits.iter()
        .enumerate()
        .map(|(i, h)| {
            let anchor = h.anchor.to_string();
            let place = if anchor.is_empty() { h.source_key.clone() } else { format!("{}, {anchor}", h.source_key) };
            format!("[{}] {place}: {}", i + 1, h.text.trim())
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The system prompt: persona, the team (when the agent may delegate), context blocks.
pub fn system_prompt(agent: &ResolvedAgent, team: &[ResolvedAgent], blocks: &[ContextBlock]) -> String {
    let mut prompt = agent.profile.persona();
    if agent.profile.tools.iter().any(|t| t == "ask_agent") {
        let others: Vec<String> = team
            .iter()
            .filter(|a| a.profile.name != agent.profile.name)
            .map(|a| format!("- {}: {}", a.profile.name, a.profile.role))
            .collect();
        prompt.push_str("\n\nYour team (ask them with ask_agent):\n");
        prompt.push_str(&others.join("\n"));
    }
    for block in blocks {
        prompt.push_str("\n\n");
        prompt.push_str(&block.text);
    }
    prompt
}
