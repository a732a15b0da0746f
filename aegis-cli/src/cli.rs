//! Command-line grammar.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// AEGIS: a multi-tenant AI agent platform.
#[derive(Debug, Parser)]
#[command(name = "aegis", version, about)]
pub struct Cli {
    /// Configuration file (default: ./aegis.toml when present).
    #[arg(long, global = true, env = "AEGIS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (the embedded PostgreSQL lives in <data-dir>/postgres).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL; when absent, AEGIS runs its own embedded cluster.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Log progress to stderr.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server and background workers.
    Serve(ServeArgs),
    /// Manage the embedded PostgreSQL cluster.
    Db {
        /// What to do with it.
        #[command(subcommand)]
        action: DbAction,
    },
    /// Apply pending migrations: the public set, then every tenant.
    Migrate(MigrateArgs),
    /// Manage tenants.
    Tenant {
        /// What to do.
        #[command(subcommand)]
        action: TenantAction,
    },
    /// Ingest files and folders (recursively) into a tenant's knowledge base.
    Ingest {
        /// Tenant id.
        tenant: String,
        /// Files and folders.
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
        /// Then delete every other document of the tenant, so that its knowledge base
        /// mirrors these paths (files that failed keep their documents).
        #[arg(long)]
        prune: bool,
    },
    /// Search a tenant's knowledge base.
    Search {
        /// Tenant id.
        tenant: String,
        /// The query (one that starts with `-`, such as a negative number, is a query).
        #[arg(allow_hyphen_values = true)]
        query: String,
        /// Hits.
        #[arg(long, default_value_t = 8)]
        k: usize,
        /// hybrid, vector or keyword.
        #[arg(long, default_value = "hybrid")]
        mode: String,
        /// Only within these documents (source key or id; repeatable).
        #[arg(long = "doc")]
        documents: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Print how PostgreSQL ran the search (EXPLAIN ANALYZE of the generic plan searches use) instead of its hits.
        #[arg(long)]
        explain: bool,
    },
    /// A tenant's documents.
    Docs {
        /// What to do.
        #[command(subcommand)]
        action: DocsAction,
    },
    /// Extract one file and print its sections (no database).
    Extract {
        /// The file.
        path: std::path::PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Internal: extraction child process (`<format> <path>`), answers JSON on stdout.
    #[command(hide = true)]
    ExtractWorker {
        /// Format.
        format: String,
        /// Path.
        path: std::path::PathBuf,
    },
    /// Manage tenant API keys.
    Apikey {
        /// What to do.
        #[command(subcommand)]
        action: ApikeyAction,
    },
    /// A tenant's agents: list, show, versions, diff, revert, export, import, bind.
    Agents {
        /// What to do.
        #[command(subcommand)]
        action: AgentsAction,
    },
    /// Talk to a tenant's agents: one message, or an interactive session without one.
    Chat(ChatArgs),
    /// A tenant's conversations.
    Conversations {
        /// What to do.
        #[command(subcommand)]
        action: ConversationsAction,
    },
    /// A tenant's audit trail: runs, a run's whole timeline, the hash chain.
    Audit {
        /// What to do.
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Configuration helpers.
    Config {
        /// What to do.
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// `aegis serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default from config: 127.0.0.1:8080).
    #[arg(long)]
    pub bind: Option<std::net::SocketAddr>,
}

/// `aegis db …`.
#[derive(Debug, Subcommand)]
pub enum DbAction {
    /// Start the cluster (creating it on first use).
    Start,
    /// Stop the cluster.
    Stop,
    /// Show whether it runs.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the owner role's connection URL (it contains the password).
    Url,
}

/// `aegis migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// `status` shows each tenant's version instead of migrating.
    #[command(subcommand)]
    pub action: Option<MigrateAction>,
    /// Tenants migrated at once (default from config).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `aegis migrate status`.
#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Show each tenant's schema version.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `aegis tenant …`.
#[derive(Debug, Subcommand)]
pub enum TenantAction {
    /// Create a tenant: schema, role and tables, all or nothing.
    Create {
        /// Tenant id: ^[a-z][a-z0-9_]{0,39}$.
        id: String,
        /// free, trial, pro, business or enterprise.
        #[arg(long)]
        tier: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tenants.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one tenant.
    Show {
        /// Tenant id.
        id: String,
        /// Print JSON (includes schema and role names).
        #[arg(long)]
        json: bool,
    },
    /// Change a tenant's tier.
    SetTier {
        /// Tenant id.
        id: String,
        /// The new tier.
        tier: String,
    },
    /// Delete a tenant and all its data.
    Delete {
        /// Tenant id.
        id: String,
        /// Confirm: the tenant's schema, role and platform rows are dropped.
        #[arg(long)]
        yes: bool,
    },
}

/// `aegis config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print a commented example aegis.toml.
    Example,
    /// Print the effective configuration (secrets redacted).
    Show,
}

/// `aegis apikey …`.
#[derive(Debug, Subcommand)]
pub enum ApikeyAction {
    /// Create a key; it is printed once and never stored.
    Create {
        /// Tenant id.
        tenant: String,
        /// A label.
        #[arg(long, default_value = "default")]
        name: String,
        /// Comma-separated scopes: gateway, api.
        #[arg(long, default_value = "gateway,api", value_delimiter = ',')]
        scopes: Vec<String>,
        /// Days until it expires (never, by default).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List a tenant's keys (never their secrets).
    List {
        /// Tenant id.
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key.
    Revoke {
        /// Tenant id.
        tenant: String,
        /// The key's id (from `apikey list`).
        key_id: String,
    },
}

/// `aegis docs …`.
#[derive(Debug, Subcommand)]
pub enum DocsAction {
    /// List documents.
    List {
        /// Tenant id.
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a document (source key or id) and its chunks.
    Delete {
        /// Tenant id.
        tenant: String,
        /// Source key or id.
        document: String,
    },
    /// Show the tenant's text-search configuration, or set it (e.g. `english`), which
    /// re-tokenises every stored chunk.
    TextSearch {
        /// Tenant id.
        tenant: String,
        /// The configuration to set (one of PostgreSQL's); absent, the current one is shown.
        #[arg(value_name = "CONFIGURATION")]
        name: Option<String>,
    },
}

/// `aegis agents …`.
#[derive(Debug, Subcommand)]
pub enum AgentsAction {
    /// The tenant's team.
    List {
        /// Tenant id.
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One agent's current profile (or an older version).
    Show {
        /// Tenant id.
        tenant: String,
        /// Agent name.
        name: String,
        /// A version (0: the built-in default).
        #[arg(long)]
        version: Option<i32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every version of an agent's profile.
    Versions {
        /// Tenant id.
        tenant: String,
        /// Agent name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// What changed between two versions.
    Diff {
        /// Tenant id.
        tenant: String,
        /// Agent name.
        name: String,
        /// The older version.
        from: i32,
        /// The newer version.
        to: i32,
    },
    /// Make an older version current again (as a new version).
    Revert {
        /// Tenant id.
        tenant: String,
        /// Agent name.
        name: String,
        /// The version to bring back.
        version: i32,
    },
    /// Write an agent's profile as TOML (to stdout or a file).
    Export {
        /// Tenant id.
        tenant: String,
        /// Agent name.
        name: String,
        /// Write here instead of stdout.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Store a profile file (TOML, as exported) as the agent's next version.
    Import {
        /// Tenant id.
        tenant: String,
        /// The file.
        file: PathBuf,
    },
    /// Route a channel (or one thread of it) to an agent.
    Bind {
        /// Tenant id.
        tenant: String,
        /// Agent name.
        agent: String,
        /// The channel (`telegram`, `email`, `api`, …).
        #[arg(long)]
        channel: String,
        /// Only this thread of the channel.
        #[arg(long, default_value = "")]
        thread: String,
    },
}

/// `aegis chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Tenant id.
    pub tenant: String,
    /// The message; without one, an interactive session reads lines from stdin.
    pub message: Option<String>,
    /// Ask this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// Ask the boardroom (these agents, comma-separated; empty for the default seats).
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    pub boardroom: Option<String>,
    /// The conversation thread (default: one per OS user).
    #[arg(long)]
    pub thread: Option<String>,
    /// Print the reply as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `aegis conversations …`.
#[derive(Debug, Subcommand)]
pub enum ConversationsAction {
    /// Conversations, most recent first.
    List {
        /// Tenant id.
        tenant: String,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A conversation's participants and messages.
    Show {
        /// Tenant id.
        tenant: String,
        /// Conversation id.
        id: uuid::Uuid,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `aegis audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Recent runs.
    Runs {
        /// Tenant id.
        tenant: String,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A run's whole timeline (its tree of runs, model requests and responses, tool
    /// calls, events), read from the database only.
    Show {
        /// Tenant id.
        tenant: String,
        /// Run id.
        run: uuid::Uuid,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the hash chain of the tenant's audit log.
    Verify {
        /// Tenant id.
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own checks of every subcommand, and one it lacks: an argument of a subcommand
    /// with the id of a global option (`config`, `verbose`, …) passes them, then panics
    /// when that subcommand runs (the two values have one slot).
    #[test]
    fn the_command_line_is_well_formed() {
        let cli = super::Cli::command();
        let globals: Vec<String> =
            cli.get_arguments().filter(|a| a.is_global_set()).map(|a| a.get_id().to_string()).collect();
        let mut stack: Vec<&clap::Command> = cli.get_subcommands().collect();
        while let Some(command) = stack.pop() {
            for arg in command.get_arguments() {
                assert!(
                    !globals.contains(&arg.get_id().to_string()),
                    "`{}` has an argument `{}`, the id of a global option",
                    command.get_name(),
                    arg.get_id()
                );
            }
            stack.extend(command.get_subcommands());
        }
        cli.debug_assert();
    }
}
