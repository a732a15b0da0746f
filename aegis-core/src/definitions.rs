//! Defaults with per-tenant overrides: built-in definitions (agent profiles now, skills
//! later) live in the binary; a tenant's edit is a new version stored in its schema
//! (`definition_versions`). Versions are listed, diffed, and rolled back by storing an
//! older body again as a new version, so history only grows.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{FromRow, PgConnection};

/// What is versioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefinitionKind {
    /// An agent's SOUL profile.
    Agent,
    /// A skill (later).
    Skill,
}

impl DefinitionKind {
    fn as_str(self) -> &'static str {
        match self {
            DefinitionKind::Agent => "agent",
            DefinitionKind::Skill => "skill",
        }
    }
}

/// One stored version.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct DefinitionVersion {
    /// The definition's name.
    pub name: String,
    /// From 1 (0 is the built-in default, never stored).
    pub version: i32,
    /// The definition.
    pub body: Value,
    /// Why it was made (`edit`, `import`, `revert to 2`, …).
    pub note: Option<String>,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// The newest version of every overridden definition of `kind`.
pub async fn latest_all(conn: &mut PgConnection, kind: DefinitionKind) -> Result<Vec<DefinitionVersion>, sqlx::Error> {
    sqlx::query_as(
        "SELECT DISTINCT ON (name) name, version, body, note, created_by, created_at FROM definition_versions \
         WHERE kind = $1 ORDER BY name, version DESC",
    )
    .bind(kind.as_str())
    .fetch_all(conn)
    .await
}

/// Every version of one definition, oldest first.
pub async fn versions(
    conn: &mut PgConnection,
    kind: DefinitionKind,
    name: &str,
) -> Result<Vec<DefinitionVersion>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name, version, body, note, created_by, created_at FROM definition_versions \
         WHERE kind = $1 AND name = $2 ORDER BY version",
    )
    .bind(kind.as_str())
    .bind(name)
    .fetch_all(conn)
    .await
}

/// Stores `body` as the next version of `name` and returns its number. Two concurrent
/// writers of one name conflict on the primary key; the loser's transaction fails.
pub async fn append(
    conn: &mut PgConnection,
    kind: DefinitionKind,
    name: &str,
    body: &Value,
    note: &str,
    created_by: &str,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO definition_versions (kind, name, version, body, note, created_by, created_at) \
         SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5, $6 FROM definition_versions WHERE kind = $1 AND name = $2 \
         RETURNING version",
    )
    .bind(kind.as_str())
    .bind(name)
    .bind(body)
    .bind(note)
    .bind(created_by)
    .bind(Utc::now())
    .fetch_one(conn)
    .await
}

/// One changed field between two versions.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldChange {
    /// The field's path (`goals[2]`, `tone`).
    pub path: String,
    /// Its old value, if it existed.
    pub old: Option<String>,
    /// Its new value, if it exists.
    pub new: Option<String>,
}

/// The fields that differ between `old` and `new`, in path order. Arrays are compared
/// element by element, objects key by key.
pub fn diff(old: &Value, new: &Value) -> Vec<FieldChange> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    flatten("", old, &mut a);
    flatten("", new, &mut b);
    let a: std::collections::BTreeMap<_, _> = a.into_iter().collect();
    let b: std::collections::BTreeMap<_, _> = b.into_iter().collect();
    let mut paths: Vec<&String> = a.keys().chain(b.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|p| a.get(*p) != b.get(*p))
        .map(|p| FieldChange { path: p.clone(), old: a.get(p).cloned(), new: b.get(p).cloned() })
        .collect()
}

fn flatten(path: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                flatten(&child, v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{path}[{i}]"), v, out);
            }
        }
        Value::String(s) => out.push((path.to_owned(), s.clone())),
        other => out.push((path.to_owned(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn diff_lists_changed_added_and_removed_fields() {
        let old = json!({"tone": "calm", "goals": ["a", "b"], "name": "x"});
        let new = json!({"tone": "brisk", "goals": ["a"], "name": "x", "extra": 1});
        let changes = diff(&old, &new);
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["extra", "goals[1]", "tone"]);
        assert_eq!(changes[1], FieldChange { path: "goals[1]".into(), old: Some("b".into()), new: None });
        assert!(diff(&old, &old).is_empty());
    }
}
