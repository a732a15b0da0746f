//! The built-in tools: `kb_search` (cites its sources), `current_time`, `list_agents` and
//! `ask_agent` (delegation to another agent as a child run, under a depth limit).

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Citation, DynTool, Tool, ToolContext, ToolError, ToolOutput, erase};
use crate::knowledge::{SearchMode, SearchOptions};

/// Every built-in tool.
pub(super) fn all() -> Vec<Arc<dyn DynTool>> {
    vec![erase(KbSearch), erase(CurrentTime), erase(ListAgents), erase(AskAgent)]
}

/// Searches the tenant's documents.
pub struct KbSearch;

/// `kb_search` arguments.
#[derive(Debug, Deserialize)]
pub struct KbSearchArgs {
    query: String,
    #[serde(default)]
    k: Option<usize>,
}

#[async_trait]
impl Tool for KbSearch {
    const NAME: &'static str = "kb_search";
    type Args = KbSearchArgs;

    fn description(&self) -> &'static str {
        "Search the business's own documents. Returns numbered passages with their source; cite them as [n]."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "query": { "type": "string", "description": "What to look for, in a few words" },
                "k": { "type": "integer", "minimum": 1, "maximum": 10, "description": "How many passages (default 5)" }
            },
            "required": ["query"]
        })
    }

    async fn call(&self, ctx: &ToolContext, args: KbSearchArgs) -> Result<ToolOutput, ToolError> {
        let options = SearchOptions { k: args.k.unwrap_or(5).clamp(1, 10), mode: SearchMode::Hybrid, documents: None };
        let hits = ctx
            .agents
            .knowledge()
            .search(&ctx.scope, &args.query, &options)
            .await
            .map_err(|e| ToolError(format!("search failed: {e}")))?;
        if hits.is_empty() {
            return Ok(ToolOutput::text("No passage in the documents matches this query."));
        }
        let citations: Vec<Citation> = hits.iter().map(super::super::prompt::citation).collect();
        let content = super::super::prompt::numbered_passages(&hits);
        Ok(ToolOutput { content, citations })
    }
}

/// The current date and time.
pub struct CurrentTime;

/// `current_time` takes no arguments.
#[derive(Debug, Deserialize)]
pub struct NoArgs {}

#[async_trait]
impl Tool for CurrentTime {
    const NAME: &'static str = "current_time";
    type Args = NoArgs;

    fn description(&self) -> &'static str {
        "The current date and time (UTC, RFC 3339) and the weekday."
    }

    fn parameters(&self) -> Value {
        json!({ "type": "object", "properties": {} })
    }

    async fn call(&self, _ctx: &ToolContext, _args: NoArgs) -> Result<ToolOutput, ToolError> {
        let now = chrono::Utc::now();
        Ok(ToolOutput::text(format!(
            "{} ({})",
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            now.format("%A")
        )))
    }
}

/// The tenant's team.
pub struct ListAgents;

#[async_trait]
impl Tool for ListAgents {
    const NAME: &'static str = "list_agents";
    type Args = NoArgs;

    fn description(&self) -> &'static str {
        "The agents of this team: name and role."
    }

    fn parameters(&self) -> Value {
        json!({ "type": "object", "properties": {} })
    }

    async fn call(&self, ctx: &ToolContext, _args: NoArgs) -> Result<ToolOutput, ToolError> {
        let team = ctx.agents.team(&ctx.scope).await.map_err(|e| ToolError(e.to_string()))?;
        let lines: Vec<String> = team.iter().map(|a| format!("{} — {}", a.profile.name, a.profile.role)).collect();
        Ok(ToolOutput::text(lines.join("\n")))
    }
}

/// Asks another agent, as a child run.
pub struct AskAgent;

/// `ask_agent` arguments.
#[derive(Debug, Deserialize)]
pub struct AskAgentArgs {
    agent: String,
    question: String,
}

#[async_trait]
impl Tool for AskAgent {
    const NAME: &'static str = "ask_agent";
    type Args = AskAgentArgs;

    fn description(&self) -> &'static str {
        "Ask another agent of the team a question and get its answer (see list_agents for names)."
    }

    fn timed(&self) -> bool {
        false
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "agent": { "type": "string", "description": "The agent's name" },
                "question": { "type": "string", "description": "The full question, with the context it needs" }
            },
            "required": ["agent", "question"]
        })
    }

    async fn call(&self, ctx: &ToolContext, args: AskAgentArgs) -> Result<ToolOutput, ToolError> {
        let result =
            ctx.agents.delegate(ctx, &args.agent, &args.question).await.map_err(|e| ToolError(e.to_string()))?;
        Ok(ToolOutput {
            content: format!("{} answered (run {}): {}", result.agent, result.run_id, result.text),
            citations: result.citations,
        })
    }
}
