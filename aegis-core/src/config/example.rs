//! The commented example printed by `aegis config example`.

/// A commented `aegis.toml` showing every setting with its default.
pub const EXAMPLE_TOML: &str = r#"# aegis.toml: AEGIS configuration.
# Precedence: built-in defaults < this file < AEGIS_* environment variables < command-line flags.
# Nested keys in the environment use "__": AEGIS_SERVER__BIND=0.0.0.0:8080.

# Where AEGIS keeps its state. Default: /var/lib/aegis as root, else ~/.local/share/aegis.
# data_dir = "/var/lib/aegis"

[database]
# A PostgreSQL 16 + pgvector URL (env: AEGIS_DATABASE_URL). Leave unset to let AEGIS run
# its own embedded cluster in <data_dir>/postgres.
# url = "postgres://aegis:password@127.0.0.1:5432/aegis"
max_connections = 16
# Tenant roles are cluster-wide, so their names carry this prefix: <prefix>_t_<tenant>.
# Default: derived from the database name. Set it if several installations share a cluster.
# installation_prefix = "aegis"

[database.embedded]
# Directory with pg_ctl, initdb and postgres (PostgreSQL 16 with pgvector >= 0.6)
# (env: AEGIS_PG_BIN). Default: PATH when pgvector is installed there, else the PyPI
# package `pgserver`, installed with pip into the cache directory on first use.
# pg_bin = "/usr/lib/postgresql/16/bin"
# Preferred port; a free one is chosen when it is taken.
port = 5544
# PostgreSQL refuses to run as root: as root, AEGIS runs it as this system user.
system_user = "aegis-pg"
# cache_dir = "/var/cache/aegis"
pgserver_version = "0.1.4"

[server]
bind = "127.0.0.1:8080"
shutdown_grace_secs = 10

[workers]
# Run background workers inside `aegis serve`.
enabled = true
concurrency = 4
poll_interval_ms = 500
heartbeat_secs = 10
# A job whose worker stops heart-beating is retried after this lease runs out.
lease_secs = 60

[migrate]
# Tenants upgraded at once by `aegis migrate`.
parallelism = 4

[secrets]
# Secrets are best given in the environment: AEGIS_SECRETS__MASTER_KEY, AEGIS_SECRETS__OPERATOR_KEY.
# 32-byte key (hex or base64) that encrypts the integration token vault.
# master_key = "..."
# Operator API key for platform administration over HTTP.
# operator_key = "..."
"#;
