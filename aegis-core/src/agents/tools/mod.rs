//! Tools agents call. A tool has a name, typed arguments (`Args: Deserialize`), a JSON
//! schema for the model, and `call(ctx, args)`; types are erased only in the catalog.
//!
//! The catalog knows every tool AEGIS has, including those behind cargo features: a name
//! that no build knows is a profile load error, while a known tool this build left out is
//! skipped with a note, so one profile file works with every build.

mod builtin;
#[cfg(feature = "tool-calculator")]
mod calculator;

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use uuid::Uuid;

use super::Agents;
use crate::{
    llm::types::{FunctionDefinition, ToolDefinition},
    tenancy::TenantScope,
};

/// What a turn may still spend when a tool is called.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BudgetLeft {
    /// Tokens (input + output) left in the turn.
    pub tokens: i64,
    /// Micro-USD left in the turn.
    pub cost_micro_usd: i64,
}

/// Everything a tool call may use.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The tenant, as the caller of the turn.
    pub scope: TenantScope,
    /// The run making the call.
    pub run_id: Uuid,
    /// The first run of the turn.
    pub root_run_id: Uuid,
    /// The calling agent.
    pub agent: String,
    /// Delegation depth of the run (0 at the root).
    pub depth: i32,
    /// What the turn may still spend.
    pub budget: BudgetLeft,
    pub(crate) agents: Agents,
}

/// A source a tool's answer came from.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Citation {
    /// The document's source key.
    pub source_key: String,
    /// Its title.
    pub title: String,
    /// Where in it (page, slide, sheet and range, headings).
    pub anchor: String,
    /// The matching span.
    pub span: String,
}

/// A tool's result: text for the model, and the sources it used.
#[derive(Debug, Clone, Default)]
pub struct ToolOutput {
    /// What the model reads.
    pub content: String,
    /// Sources, for the reply's citations.
    pub citations: Vec<Citation>,
}

impl ToolOutput {
    /// Text without sources.
    pub fn text(content: impl Into<String>) -> Self {
        Self { content: content.into(), citations: Vec::new() }
    }
}

/// A tool failed; the message goes back to the model as the tool's result.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String);

/// A tool, in rig's shape.
#[async_trait]
pub trait Tool: Send + Sync + 'static {
    /// Its name, as the model calls it.
    const NAME: &'static str;
    /// Its arguments.
    type Args: DeserializeOwned + Send;
    /// What it does, for the model.
    fn description(&self) -> &'static str;
    /// JSON schema of `Args`.
    fn parameters(&self) -> Value;
    /// Whether the per-tool timeout applies (not to a delegation, which is a run bounded
    /// by its own step cap and timeouts).
    fn timed(&self) -> bool {
        true
    }
    /// Runs it.
    async fn call(&self, ctx: &ToolContext, args: Self::Args) -> Result<ToolOutput, ToolError>;
}

/// A tool with its types erased, as the catalog holds it.
#[async_trait]
pub trait DynTool: Send + Sync + std::fmt::Debug {
    /// Its name.
    fn name(&self) -> &'static str;
    /// Its definition for the model.
    fn definition(&self) -> ToolDefinition;
    /// Whether the per-tool timeout applies.
    fn timed(&self) -> bool;
    /// Parses `arguments` (the model's JSON) and runs it.
    async fn call_json(&self, ctx: &ToolContext, arguments: &str) -> Result<ToolOutput, ToolError>;
}

struct Erased<T>(T);

impl<T> std::fmt::Debug for Erased<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tool")
    }
}

#[async_trait]
impl<T: Tool> DynTool for Erased<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            kind: "function".into(),
            function: FunctionDefinition {
                name: T::NAME.into(),
                description: Some(self.0.description().into()),
                parameters: Some(self.0.parameters()),
                strict: None,
            },
        }
    }

    fn timed(&self) -> bool {
        self.0.timed()
    }

    async fn call_json(&self, ctx: &ToolContext, arguments: &str) -> Result<ToolOutput, ToolError> {
        let raw = if arguments.trim().is_empty() { "{}" } else { arguments };
        let args: T::Args =
            serde_json::from_str(raw).map_err(|e| ToolError(format!("invalid arguments for `{}`: {e}", T::NAME)))?;
        self.0.call(ctx, args).await
    }
}

/// Wraps a typed tool for the catalog.
pub fn erase<T: Tool>(tool: T) -> Arc<dyn DynTool> {
    Arc::new(Erased(tool))
}

/// A catalog entry.
#[derive(Debug, Clone)]
pub enum CatalogEntry {
    /// Built into this binary.
    Enabled(Arc<dyn DynTool>),
    /// Known, but this build was compiled without its cargo feature.
    Disabled {
        /// The feature that enables it.
        feature: &'static str,
    },
}

/// Every tool AEGIS knows.
#[derive(Debug, Clone)]
pub struct ToolCatalog {
    entries: BTreeMap<&'static str, CatalogEntry>,
}

/// The tools a profile resolved to, with notes on those skipped.
#[derive(Debug, Clone, Default)]
pub struct ResolvedTools {
    /// Usable tools, in profile order.
    pub tools: Vec<Arc<dyn DynTool>>,
    /// Why some were skipped.
    pub notes: Vec<String>,
}

impl ToolCatalog {
    /// The built-in catalog of this build.
    pub fn builtin() -> Self {
        let mut entries: BTreeMap<&'static str, CatalogEntry> =
            builtin::all().into_iter().map(|tool| (tool.name(), CatalogEntry::Enabled(tool))).collect();
        #[cfg(feature = "tool-calculator")]
        entries.insert("calculate", CatalogEntry::Enabled(erase(calculator::Calculate)));
        #[cfg(not(feature = "tool-calculator"))]
        entries.insert("calculate", CatalogEntry::Disabled { feature: "tool-calculator" });
        Self { entries }
    }

    /// A catalog of exactly `entries` (embedders adding their own tools, tests).
    pub fn from_entries(entries: impl IntoIterator<Item = (&'static str, CatalogEntry)>) -> Self {
        Self { entries: entries.into_iter().collect() }
    }

    /// Adds or replaces a tool.
    pub fn insert(&mut self, tool: Arc<dyn DynTool>) {
        self.entries.insert(tool.name(), CatalogEntry::Enabled(tool));
    }

    /// Every name the catalog knows, with whether this build has it.
    pub fn names(&self) -> Vec<(&'static str, bool)> {
        self.entries.iter().map(|(n, e)| (*n, matches!(e, CatalogEntry::Enabled(_)))).collect()
    }

    /// Resolves a profile's tool list: an unknown name is an error; a disabled one is a note.
    pub fn resolve(&self, names: &[String]) -> Result<ResolvedTools, String> {
        let mut out = ResolvedTools::default();
        for name in names {
            match self.entries.get(name.as_str()) {
                Some(CatalogEntry::Enabled(tool)) => out.tools.push(tool.clone()),
                Some(CatalogEntry::Disabled { feature }) => {
                    out.notes.push(format!("tool `{name}` skipped: this build has no `{feature}` feature"));
                }
                None => {
                    let known: Vec<&str> = self.entries.keys().copied().collect();
                    return Err(format!("unknown tool `{name}` (known: {})", known.join(", ")));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_tools_fail_and_disabled_ones_are_noted() {
        let catalog = ToolCatalog::from_entries(
            builtin::all()
                .into_iter()
                .map(|t| (t.name(), CatalogEntry::Enabled(t)))
                .chain([("crm_lookup", CatalogEntry::Disabled { feature: "integrations" })]),
        );
        let resolved = catalog.resolve(&["kb_search".into(), "crm_lookup".into()]).unwrap();
        assert_eq!(resolved.tools.len(), 1);
        assert_eq!(resolved.notes, ["tool `crm_lookup` skipped: this build has no `integrations` feature"]);
        let err = catalog.resolve(&["teleport".into()]).unwrap_err();
        assert!(err.starts_with("unknown tool `teleport`"), "{err}");
    }

    #[test]
    fn the_builtin_catalog_has_the_four_base_tools() {
        let names: Vec<&str> =
            ToolCatalog::builtin().names().into_iter().filter(|(_, on)| *on).map(|(n, _)| n).collect();
        for tool in ["kb_search", "current_time", "list_agents", "ask_agent"] {
            assert!(names.contains(&tool), "{tool}");
        }
    }
}
