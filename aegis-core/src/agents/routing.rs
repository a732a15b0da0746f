//! The orchestrator's routing: fixed commands first (`/agent <name>`, `/boardroom`, and the
//! read-only `/help`, `/agents`, `/status`, answered without a model), then an explicit
//! `@mention`, then a channel binding, then the agent chosen earlier in the conversation,
//! then a classifier (a `routing`-intent model call under the tenant's policy), with a
//! deterministic keyword router when no model is configured or the classifier fails.
//! Every route records its candidates, choice, reason and confidence.

use serde::Serialize;
use serde_json::Value;

use super::ResolvedAgent;

/// A command answered or acted on before any agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/help`.
    Help,
    /// `/agents`.
    Agents,
    /// `/status`.
    Status,
    /// `/agent <name>` alone: talk to that agent from now on in this conversation.
    UseAgent(String),
    /// `/agent` with a name no agent has, or a command that does not exist.
    Unknown(String),
}

/// What the message asks for, before any model call.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A command.
    Command(Command),
    /// `/boardroom [@a @b] <question>`.
    Boardroom {
        /// The agents named, if any.
        agents: Vec<String>,
        /// The question.
        question: String,
    },
    /// `/agent <name> <message>`: that agent answers the message.
    Directed {
        /// The agent.
        agent: String,
        /// The message without the command.
        text: String,
    },
    /// Anything else.
    Message,
}

/// How an agent was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteMethod {
    /// `/agent <name> …`.
    Command,
    /// `@name` in the message.
    Mention,
    /// The channel's (or thread's) bound agent.
    Binding,
    /// The agent chosen earlier in the conversation.
    Conversation,
    /// A `routing`-intent model call.
    Classifier,
    /// Keyword scores (no model, or the classifier failed).
    Keywords,
    /// Nothing matched: the chief of staff.
    Default,
}

/// The orchestrator's choice, as recorded on the run.
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    /// How.
    pub method: RouteMethod,
    /// The agent chosen.
    pub agent: String,
    /// The agents considered.
    pub candidates: Vec<String>,
    /// Why, in words.
    pub reason: String,
    /// From 0 to 1.
    pub confidence: f64,
}

impl Route {
    /// The record stored on the run.
    pub fn record(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Parses the fixed commands.
pub fn parse(text: &str, team: &[ResolvedAgent]) -> Parsed {
    let trimmed = text.trim();
    let Some(command) = trimmed.strip_prefix('/') else { return Parsed::Message };
    let (word, rest) = command.split_once(char::is_whitespace).unwrap_or((command, ""));
    let rest = rest.trim();
    match word.to_ascii_lowercase().as_str() {
        "help" => Parsed::Command(Command::Help),
        "agents" => Parsed::Command(Command::Agents),
        "status" => Parsed::Command(Command::Status),
        "agent" => {
            let (name, message) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let name = name.trim_start_matches('@').to_ascii_lowercase();
            if find(team, &name).is_none() {
                return Parsed::Command(Command::Unknown(format!("no agent `{name}`")));
            }
            if message.trim().is_empty() {
                Parsed::Command(Command::UseAgent(name))
            } else {
                Parsed::Directed { agent: name, text: message.trim().to_owned() }
            }
        }
        "boardroom" => {
            let mut agents = Vec::new();
            let mut words = rest.split_whitespace().peekable();
            while let Some(w) = words.peek() {
                match w.strip_prefix('@').map(str::to_ascii_lowercase) {
                    Some(name) if find(team, &name).is_some() => {
                        agents.push(name);
                        words.next();
                    }
                    _ => break,
                }
            }
            Parsed::Boardroom { agents, question: words.collect::<Vec<_>>().join(" ") }
        }
        other => Parsed::Command(Command::Unknown(format!("no command `/{other}`"))),
    }
}

fn find<'a>(team: &'a [ResolvedAgent], name: &str) -> Option<&'a ResolvedAgent> {
    team.iter().find(|a| a.profile.name == name)
}

/// The first `@name` of a team member in `text`.
pub fn mention(text: &str, team: &[ResolvedAgent]) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | ':' | '!' | '?' | '(' | ')'))
        .filter_map(|w| w.strip_prefix('@'))
        .map(|w| w.trim_end_matches('.').to_ascii_lowercase())
        .find(|name| find(team, name).is_some())
}

/// Scores agents by their keywords (a word of the message starting with a keyword); the
/// best wins, ties going to the earlier agent; no match routes to `fallback`.
pub fn by_keywords(text: &str, team: &[ResolvedAgent], fallback: &str) -> Route {
    let words: Vec<String> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    let mut best: Option<(&ResolvedAgent, usize)> = None;
    for agent in team {
        let score = words.iter().filter(|w| agent.profile.keywords.iter().any(|k| w.starts_with(k.as_str()))).count();
        if score > 0 && best.is_none_or(|(_, s)| score > s) {
            best = Some((agent, score));
        }
    }
    let candidates = team.iter().map(|a| a.profile.name.clone()).collect();
    match best {
        Some((agent, score)) => Route {
            method: RouteMethod::Keywords,
            agent: agent.profile.name.clone(),
            candidates,
            reason: format!("{score} of the message's words match {}'s keywords", agent.profile.name),
            confidence: (score as f64 / words.len().max(1) as f64).min(1.0),
        },
        None => Route {
            method: RouteMethod::Default,
            agent: fallback.to_owned(),
            candidates,
            reason: "no keyword matched; the chief of staff takes it".into(),
            confidence: 0.0,
        },
    }
}

/// The classifier's instructions.
pub fn classifier_prompt(team: &[ResolvedAgent]) -> String {
    let lines: Vec<String> = team.iter().map(|a| format!("- {}: {}", a.profile.name, a.profile.role)).collect();
    format!(
        "You route a business's messages to the one agent best suited to answer. The agents:\n{}\n\n\
         Answer with a JSON object only: {{\"agent\": \"<name>\", \"confidence\": <0 to 1>, \"reason\": \"<a few words>\"}}.",
        lines.join("\n")
    )
}

/// Reads the classifier's answer; `None` when it names no agent of the team.
pub fn read_classifier(answer: &str, team: &[ResolvedAgent]) -> Option<(String, f64, String)> {
    let start = answer.find('{')?;
    let end = answer.rfind('}')?;
    let value: Value = serde_json::from_str(answer.get(start..=end)?).ok()?;
    let agent = value["agent"].as_str()?.trim().trim_start_matches('@').to_ascii_lowercase();
    find(team, &agent)?;
    let confidence = value["confidence"].as_f64().unwrap_or(0.5).clamp(0.0, 1.0);
    let reason = value["reason"].as_str().unwrap_or("the classifier chose it").to_owned();
    Some((agent, confidence, reason))
}

/// A route decided without a model.
pub fn fixed(method: RouteMethod, agent: &str, team: &[ResolvedAgent], reason: String) -> Route {
    Route {
        method,
        agent: agent.to_owned(),
        candidates: team.iter().map(|a| a.profile.name.clone()).collect(),
        reason,
        confidence: 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::{ResolvedAgent, profile::default_team};

    fn team() -> Vec<ResolvedAgent> {
        default_team()
            .into_iter()
            .map(|p| ResolvedAgent { profile: p, version: 0, tools: Default::default() })
            .collect()
    }

    #[test]
    fn commands_parse() {
        let t = team();
        assert_eq!(parse("/help", &t), Parsed::Command(Command::Help));
        assert_eq!(parse("/agent luna", &t), Parsed::Command(Command::UseAgent("luna".into())));
        assert_eq!(
            parse("/agent luna a 30s ad", &t),
            Parsed::Directed { agent: "luna".into(), text: "a 30s ad".into() }
        );
        assert!(matches!(parse("/agent nobody", &t), Parsed::Command(Command::Unknown(_))));
        assert_eq!(
            parse("/boardroom @vera @nova should we raise prices?", &t),
            Parsed::Boardroom {
                agents: vec!["vera".into(), "nova".into()],
                question: "should we raise prices?".into()
            }
        );
        assert_eq!(parse("hello", &t), Parsed::Message);
    }

    #[test]
    fn mentions_and_keywords() {
        let t = team();
        assert_eq!(mention("hey @Luna, a script please", &t).as_deref(), Some("luna"));
        assert_eq!(mention("mail me@example.com", &t), None);
        let route = by_keywords("a customer wants a refund for a late shipping order", &t, "atlas");
        assert_eq!(route.method, RouteMethod::Keywords);
        assert_eq!(route.agent, "kai");
        assert_eq!(by_keywords("zzz qqq", &t, "atlas").method, RouteMethod::Default);
    }

    #[test]
    fn classifier_answers_are_checked() {
        let t = team();
        assert_eq!(read_classifier(r#"{"agent":"vera","confidence":0.9,"reason":"invoice"}"#, &t).unwrap().0, "vera");
        assert!(read_classifier(r#"{"agent":"ghost"}"#, &t).is_none());
        assert!(read_classifier("not json", &t).is_none());
    }
}
