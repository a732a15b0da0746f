//! SOUL profiles: who an agent is (name, role, personality, goals, tone, boundaries), which
//! intent its model calls use, and which tools and skills it may use. The default team is
//! built into the binary (`defaults/team.toml`); a tenant's edit is a new version in its
//! schema (see [`crate::definitions`]).

use serde::{Deserialize, Serialize};

use crate::policy::Intent;

/// One agent's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoulProfile {
    /// Stable id, used in `@name` mentions and `/agent <name>`.
    pub name: String,
    /// The name it signs with.
    pub display_name: String,
    /// Its role, in one line.
    pub role: String,
    /// How it behaves.
    pub personality: String,
    /// What it works towards.
    pub goals: Vec<String>,
    /// How it writes.
    pub tone: String,
    /// What it must not do.
    pub boundaries: Vec<String>,
    /// The intent of its model calls (chat, reasoning, creative, …).
    pub default_intent: Intent,
    /// Tools it may call, by catalog name.
    pub tools: Vec<String>,
    /// Skills it may run, by name.
    #[serde(default)]
    pub skills: Vec<String>,
    /// Words that route a message to it when no model classifies.
    #[serde(default)]
    pub keywords: Vec<String>,
}

#[derive(Deserialize)]
struct TeamFile {
    agent: Vec<SoulProfile>,
}

/// The built-in team, parsed from the file compiled into the binary.
pub fn default_team() -> Vec<SoulProfile> {
    parse_team(include_str!("defaults/team.toml")).unwrap_or_default()
}

/// Parses a team file (`[[agent]]` tables).
pub fn parse_team(text: &str) -> Result<Vec<SoulProfile>, String> {
    toml::from_str::<TeamFile>(text).map(|t| t.agent).map_err(|e| e.to_string())
}

/// Parses one profile from TOML (the format of `aegis agents export`).
pub fn parse_profile(text: &str) -> Result<SoulProfile, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

impl SoulProfile {
    /// The profile as TOML, for export.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks what the catalog does not: the name's shape, the intent, the text fields.
    pub fn check(&self) -> Result<(), String> {
        let mut chars = self.name.chars();
        let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
            && self.name.len() <= 40;
        if !well_formed {
            return Err(format!("agent name `{}` must match [a-z][a-z0-9_-]{{0,39}}", self.name));
        }
        if self.default_intent == Intent::Embedding {
            return Err("default_intent cannot be `embedding`".into());
        }
        if self.display_name.trim().is_empty() || self.role.trim().is_empty() {
            return Err("display_name and role must not be empty".into());
        }
        Ok(())
    }

    /// The system prompt's description of the agent.
    pub fn persona(&self) -> String {
        let list = |items: &[String]| items.iter().map(|i| format!("- {i}")).collect::<Vec<_>>().join("\n");
        format!(
            "You are {}, the {} of this business's AI team.\n\nPersonality: {}\n\nGoals:\n{}\n\nTone: {}\n\nBoundaries (never break these):\n{}",
            self.display_name,
            self.role,
            self.personality,
            list(&self.goals),
            self.tone,
            list(&self.boundaries)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_team_has_seven_distinct_valid_agents() {
        let team = default_team();
        assert_eq!(team.len(), 7);
        let mut names: Vec<&str> = team.iter().map(|a| a.name.as_str()).collect();
        assert!(names.contains(&"luna"));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 7);
        for agent in &team {
            agent.check().unwrap();
            assert!(!agent.goals.is_empty() && !agent.boundaries.is_empty(), "{}", agent.name);
        }
    }

    #[test]
    fn a_profile_round_trips_through_toml() {
        let luna = default_team().into_iter().find(|a| a.name == "luna").unwrap();
        assert_eq!(parse_profile(&luna.to_toml()).unwrap(), luna);
    }

    #[test]
    fn bad_names_and_unknown_fields_are_refused() {
        let mut p = default_team().remove(0);
        p.name = "Bad Name".into();
        assert!(p.check().is_err());
        assert!(parse_profile("name = \"x\"\nbogus = 1").is_err());
    }
}
