//! Checked names: tenant ids, tiers, installation prefixes and the schema and role names
//! derived from them. Every identifier AEGIS interpolates into SQL comes from here.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use super::TenancyError;

/// Words that may not be tenant ids (they would collide with platform schemas or roles).
pub const RESERVED_IDS: &[&str] = &["public", "ext", "aegis", "admin", "system", "template"];

/// Longest tenant id, in bytes.
pub const MAX_TENANT_ID_LEN: usize = 40;

/// A tenant id matching `^[a-z][a-z0-9_]{0,39}$` and not reserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// Checks `raw` and returns it as a tenant id.
    pub fn parse(raw: &str) -> Result<Self, TenancyError> {
        let invalid =
            |reason: &str| TenancyError::InvalidId { id: raw.escape_debug().to_string(), reason: reason.into() };
        let mut chars = raw.chars();
        match chars.next() {
            None => return Err(invalid("it is empty")),
            Some(c) if !c.is_ascii_lowercase() => return Err(invalid("it must start with a lowercase letter a-z")),
            Some(_) => {}
        }
        if raw.len() > MAX_TENANT_ID_LEN {
            return Err(invalid("it is longer than 40 characters"));
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(invalid("only lowercase letters a-z, digits and `_` are allowed"));
        }
        if RESERVED_IDS.contains(&raw) || raw.starts_with("pg_") {
            return Err(invalid("it is reserved"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tenant's schema: `tenant_<id>`.
    pub fn schema(&self) -> SqlIdent {
        SqlIdent(format!("tenant_{}", self.0))
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TenantId {
    type Err = TenancyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A PostgreSQL identifier built only from checked parts (`[a-z0-9_]`), so it needs no
/// escaping; [`SqlIdent::quoted`] still quotes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SqlIdent(String);

impl SqlIdent {
    /// An identifier from a literal in this crate (never from input).
    pub(crate) fn trusted(name: &'static str) -> Self {
        Self(name.to_owned())
    }

    /// The bare name, for binds and display.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name in double quotes, for interpolation into DDL.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl fmt::Display for SqlIdent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The prefix of tenant role names, unique per installation (roles are cluster-wide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationPrefix(String);

/// Longest prefix: `<prefix>_t_<40-char id>` must fit PostgreSQL's 63-byte names.
pub const MAX_PREFIX_LEN: usize = 63 - 3 - MAX_TENANT_ID_LEN;

impl InstallationPrefix {
    /// Checks an explicitly configured prefix.
    pub fn parse(raw: &str) -> Result<Self, TenancyError> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_PREFIX_LEN
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok { Ok(Self(raw.to_owned())) } else { Err(TenancyError::InvalidPrefix(raw.escape_debug().to_string())) }
    }

    /// Derives a prefix from a database name: lowercased, other characters mapped to `_`,
    /// and a short stable hash appended when it had to be shortened or changed.
    pub fn from_database_name(db: &str) -> Self {
        let mut cleaned: String =
            db.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
        if !cleaned.starts_with(|c: char| c.is_ascii_lowercase()) {
            cleaned.insert(0, 'a');
        }
        if cleaned.len() <= MAX_PREFIX_LEN && cleaned == db {
            return Self(cleaned);
        }
        let hash = format!("{:08x}", fnv1a32(db.as_bytes()));
        cleaned.truncate(MAX_PREFIX_LEN - hash.len() - 1);
        Self(format!("{cleaned}_{hash}"))
    }

    /// The prefix as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The role of `tenant` in this installation: `<prefix>_t_<id>`.
    pub fn tenant_role(&self, tenant: &TenantId) -> SqlIdent {
        SqlIdent(format!("{}_t_{}", self.0, tenant.as_str()))
    }
}

/// FNV-1a, 32 bits: a tiny stable hash for name shortening (not for security).
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

/// A tenant's plan, which decides its model policy and quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Free plan.
    Free,
    /// Time-limited trial.
    Trial,
    /// Paid plan with funded models.
    Pro,
    /// Business plan with metered premium models.
    Business,
    /// Enterprise plan.
    Enterprise,
}

impl Tier {
    /// Every tier, cheapest first.
    pub const ALL: [Tier; 5] = [Tier::Free, Tier::Trial, Tier::Pro, Tier::Business, Tier::Enterprise];

    /// Whether the tier may reach premium models (metered).
    pub fn may_use_premium(self) -> bool {
        matches!(self, Tier::Business | Tier::Enterprise)
    }

    /// The tier's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Trial => "trial",
            Tier::Pro => "pro",
            Tier::Business => "business",
            Tier::Enterprise => "enterprise",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = TenancyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| TenancyError::InvalidTier(s.escape_debug().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_ids() {
        for id in ["a", "acme", "acme_2", "z0_", &"a".repeat(40)] {
            assert_eq!(TenantId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn rejects_hostile_and_reserved_ids() {
        let long = "a".repeat(41);
        for id in [
            "",
            "A",
            "Acme",
            "a;drop",
            "a;drop table x",
            "tenant_x\"",
            "1abc",
            "_a",
            "a-b",
            "a b",
            "ä",
            "aé",
            "a\u{0}",
            "público",
            long.as_str(),
            "public",
            "ext",
            "aegis",
            "admin",
            "system",
            "template",
            "pg_x",
            "pg_",
        ] {
            let err = TenantId::parse(id).unwrap_err();
            assert!(matches!(err, TenancyError::InvalidId { .. }), "{id:?} gave {err}");
        }
    }

    #[test]
    fn role_names_fit_postgres_limits() {
        let prefix = InstallationPrefix::from_database_name("a_very_long_database_name_for_testing_things");
        assert!(prefix.as_str().len() <= MAX_PREFIX_LEN, "{}", prefix.as_str());
        let id = TenantId::parse(&"b".repeat(40)).unwrap();
        assert!(prefix.tenant_role(&id).as_str().len() <= 63);
        assert_eq!(InstallationPrefix::from_database_name("aegis").as_str(), "aegis");
        let odd = InstallationPrefix::from_database_name("My-DB");
        assert!(odd.as_str().starts_with("my_db_"), "{}", odd.as_str());
        assert_ne!(InstallationPrefix::from_database_name("My-DB"), InstallationPrefix::from_database_name("my_db"));
        assert!(InstallationPrefix::parse("Bad").is_err());
        assert!(InstallationPrefix::parse(&"p".repeat(21)).is_err());
    }

    #[test]
    fn tiers_round_trip() {
        for tier in Tier::ALL {
            assert_eq!(tier.as_str().parse::<Tier>().unwrap(), tier);
        }
        assert!("gold".parse::<Tier>().is_err());
    }
}
