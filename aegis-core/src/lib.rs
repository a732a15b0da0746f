//! # aegis-core
//!
//! The AEGIS library: a multi-tenant AI agent platform on PostgreSQL 16 + pgvector, with
//! each tenant in its own schema and role. Frontends (`aegis-server`, the `aegis` CLI,
//! `aegis-py`) are thin layers over this crate.
//!
//! ## Quick start
//!
//! ```no_run
//! use aegis_core::{Aegis, config::Config, tenancy::{Caller, NewTenant, TenantId, Tier}};
//!
//! # async fn demo() -> aegis_core::Result<()> {
//! // With no database URL configured, AEGIS starts its own embedded PostgreSQL.
//! let aegis = Aegis::builder().config(Config::default()).build().await?;
//! let tenant = NewTenant { id: TenantId::parse("acme")?, tier: Tier::Pro, name: Some("Acme".into()) };
//! aegis.tenants().create(&tenant, &Caller::local_operator()).await?;
//! for t in aegis.tenants().list().await? {
//!     println!("{} ({})", t.id, t.tier.0);
//! }
//! # Ok(()) }
//! ```
//!
//! Tenant data is reached only through [`tenancy::TenantScope::begin`], which opens a short
//! transaction as the tenant's own role: PostgreSQL, not the query, keeps tenants apart.

pub mod agents;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod cpus;
pub mod db;
pub mod definitions;
mod error;
pub mod fresh_cache;
pub mod jobs;
pub mod knowledge;
pub mod llm;
pub mod policy;
pub mod single_flight;
pub mod tenancy;
pub mod wheel;

pub use error::{Error, Result};

use std::sync::Arc;

use config::Config;
use db::{Database, embedded::EmbeddedPostgres, migrate::MigrationSet};
use jobs::Jobs;
use tenancy::{InstallationPrefix, Tenants};

/// The AEGIS platform: a database plus the services over it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Aegis {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    db: Database,
    models: llm::Models,
    knowledge: knowledge::Knowledge,
    agents: agents::Agents,
    api_keys: auth::ApiKeys,
    embedded: Option<EmbeddedPostgres>,
    tenants: Tenants,
    tenant_migrations: MigrationSet,
}

/// What `Aegis::migrate` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrateReport {
    /// Public migrations applied in this run.
    pub public_applied: Vec<i32>,
    /// The tenants' upgrade.
    pub tenants: tenancy::UpgradeReport,
}

/// Builds an [`Aegis`].
#[derive(Debug, Default)]
pub struct AegisBuilder {
    config: Option<Config>,
    database: Option<Database>,
    tenant_migrations: Option<MigrationSet>,
    migrate_public: Option<bool>,
    clock: Option<clock::SharedClock>,
    extraction: Option<knowledge::extract::isolate::Isolation>,
}

impl AegisBuilder {
    /// Uses `config` (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Uses an existing pool instead of `config.database`.
    pub fn database(mut self, db: Database) -> Self {
        self.database = Some(db);
        self
    }

    /// Replaces the tenant migration set (tests and extensions).
    pub fn tenant_migrations(mut self, set: MigrationSet) -> Self {
        self.tenant_migrations = Some(set);
        self
    }

    /// Uses `clock` for cooldowns and reservations (tests move time with a `ManualClock`).
    pub fn clock(mut self, clock: clock::SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// How documents are extracted. Default: in this process (panics caught, but no hard
    /// time limit); the `aegis` binary uses a child process per file.
    pub fn extraction(mut self, isolation: knowledge::extract::isolate::Isolation) -> Self {
        self.extraction = Some(isolation);
        self
    }

    /// Whether `build` applies pending public migrations (default: yes).
    pub fn migrate_public(mut self, yes: bool) -> Self {
        self.migrate_public = Some(yes);
        self
    }

    /// Connects (starting the embedded cluster when no URL is configured) and applies the
    /// public migrations.
    pub async fn build(self) -> Result<Aegis> {
        let config = self.config.unwrap_or_default();
        let (db, embedded) = match self.database {
            Some(db) => (db, None),
            None => match &config.database.url {
                Some(url) => (Database::connect(url, config.database.max_connections).await?, None),
                None => {
                    let cluster = EmbeddedPostgres::prepare(&config).await?;
                    let running = cluster.start().await?;
                    (Database::connect(&running.url, config.database.max_connections).await?, Some(cluster))
                }
            },
        };
        if self.migrate_public.unwrap_or(true) {
            db::migrate::migrate_public(&db, &MigrationSet::public()).await?;
        }
        let prefix = match &config.database.installation_prefix {
            Some(p) => InstallationPrefix::parse(p).map_err(Error::from)?,
            None => InstallationPrefix::from_database_name(&db.database_name().await?),
        };
        let tenant_migrations = self.tenant_migrations.unwrap_or_else(MigrationSet::tenant);
        let tenants = Tenants::new(db.clone(), prefix, tenant_migrations.clone());
        config.models.validate().map_err(config::ConfigError::from)?;
        let clock = self.clock.unwrap_or_else(|| Arc::new(clock::SystemClock));
        let models = llm::Models::new(&db, Arc::new(config.models.clone()), clock);
        let api_keys = auth::ApiKeys::new(db.clone());
        let isolation = self.extraction.unwrap_or(knowledge::extract::isolate::Isolation::InProcess);
        let knowledge =
            knowledge::Knowledge::new(models.clone(), config.knowledge.clone(), isolation, config.cache_dir());
        let agents = agents::Agents::new(db.clone(), models.clone(), knowledge.clone(), config.agents.clone());
        Ok(Aegis {
            inner: Arc::new(Inner {
                config,
                db,
                models,
                knowledge,
                agents,
                api_keys,
                embedded,
                tenants,
                tenant_migrations,
            }),
        })
    }
}

impl Aegis {
    /// A builder.
    pub fn builder() -> AegisBuilder {
        AegisBuilder::default()
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    /// The embedded cluster, when AEGIS runs its own.
    pub fn embedded(&self) -> Option<&EmbeddedPostgres> {
        self.inner.embedded.as_ref()
    }

    /// Tenants.
    pub fn tenants(&self) -> &Tenants {
        &self.inner.tenants
    }

    /// The model service: policy, quotas, routing, ledger.
    pub fn models(&self) -> &llm::Models {
        &self.inner.models
    }

    /// The knowledge base.
    pub fn knowledge(&self) -> &knowledge::Knowledge {
        &self.inner.knowledge
    }

    /// The agents: profiles, routing, runs, conversations.
    pub fn agents(&self) -> &agents::Agents {
        &self.inner.agents
    }

    /// Tenant API keys.
    pub fn api_keys(&self) -> &auth::ApiKeys {
        &self.inner.api_keys
    }

    /// The durable job queue.
    pub fn jobs(&self) -> Jobs {
        Jobs::new(self.inner.db.clone())
    }

    /// The tenant migration set in use.
    pub fn tenant_migrations(&self) -> &MigrationSet {
        &self.inner.tenant_migrations
    }

    /// Applies pending public migrations, then upgrades every tenant, `parallelism` at a
    /// time. One tenant's failure is reported in the result, not returned as an error; a
    /// rerun continues where this one stopped. Recorded in `platform_audit`.
    pub async fn migrate(&self, parallelism: usize, caller: &tenancy::Caller) -> Result<MigrateReport> {
        let public_applied = db::migrate::migrate_public(&self.inner.db, &MigrationSet::public()).await?;
        let tenants = self.inner.tenants.upgrade_all(parallelism).await?;
        let mut conn = self.inner.db.pool().acquire().await?;
        let detail = serde_json::json!({
            "public_applied": public_applied,
            "latest": tenants.latest,
            "upgraded": tenants.upgraded(),
            "failed": tenants.failed(),
        });
        tenancy::record_platform_audit(&mut conn, caller, "migrate", None, detail).await?;
        Ok(MigrateReport { public_applied, tenants })
    }

    /// Whether the public schema is fully migrated (for readiness checks).
    pub async fn public_schema_current(&self) -> Result<bool> {
        Ok(db::migrate::public_version(&self.inner.db).await? >= MigrationSet::public().latest())
    }
}
