-- Agents: versioned overrides of built-in definitions (agent profiles now, skills later),
-- conversations with their participants and messages, the idempotent inbound log, runs,
-- content-addressed model payloads, run steps, and the hash-chained audit log.

-- A tenant's versions of a built-in definition. Version 0 is the built-in default and is
-- never stored; a revert is a new version whose body is an older one's.
CREATE TABLE definition_versions (
    kind        text NOT NULL CHECK (kind IN ('agent', 'skill')),
    name        text NOT NULL,
    version     integer NOT NULL CHECK (version > 0),
    body        jsonb NOT NULL,
    note        text,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (kind, name, version)
);

-- Which agent answers a channel (or one thread of it) when no command or mention decides.
CREATE TABLE channel_bindings (
    channel    text NOT NULL,
    thread     text NOT NULL DEFAULT '',
    agent      text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (channel, thread)
);

CREATE TABLE conversations (
    id         uuid PRIMARY KEY,
    channel    text NOT NULL,
    thread     text NOT NULL,
    agent      text,
    title      text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    UNIQUE (channel, thread)
);

CREATE TABLE conversation_participants (
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('user', 'agent')),
    name            text NOT NULL,
    first_seen      timestamptz NOT NULL,
    PRIMARY KEY (conversation_id, kind, name)
);

-- Every message, never deleted. A `summary` row stands in the prompt for every message up
-- to `covers_through`.
CREATE TABLE messages (
    id              uuid PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    role            text NOT NULL CHECK (role IN ('user', 'assistant', 'tool', 'summary')),
    agent           text,
    sender          text,
    content         text,
    tool_calls      jsonb,
    tool_call_id    text,
    covers_through  bigint,
    run_id          uuid,
    created_at      timestamptz NOT NULL
);
CREATE INDEX messages_conversation_seq ON messages (conversation_id, seq);

-- Every inbound message, unique on (channel, source_id): a replay returns the stored reply.
CREATE TABLE inbound_messages (
    channel         text NOT NULL,
    source_id       text NOT NULL,
    thread          text NOT NULL,
    sender          text NOT NULL,
    text            text NOT NULL,
    status          text NOT NULL CHECK (status IN ('processing', 'done', 'failed')),
    attempts        integer NOT NULL DEFAULT 1,
    claimed_until   timestamptz NOT NULL,
    conversation_id uuid,
    run_id          uuid,
    reply           jsonb,
    error           text,
    received_at     timestamptz NOT NULL,
    finished_at     timestamptz,
    PRIMARY KEY (channel, source_id)
);

-- One row per agent run (skills later): a boardroom is a run with child runs.
CREATE TABLE runs (
    id              uuid PRIMARY KEY,
    parent_run_id   uuid REFERENCES runs (id),
    root_run_id     uuid NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('agent', 'boardroom', 'skill')),
    agent           text,
    agent_version   integer,
    skill_id        text,
    skill_version   integer,
    conversation_id uuid,
    depth           integer NOT NULL DEFAULT 0,
    routing         jsonb,
    alias           text,
    prompt_hash     text,
    schema_valid    boolean,
    rating          smallint,
    steps           integer NOT NULL DEFAULT 0,
    tokens_in       bigint NOT NULL DEFAULT 0,
    tokens_out      bigint NOT NULL DEFAULT 0,
    cost_micro_usd  bigint NOT NULL DEFAULT 0,
    unpriced_calls  integer NOT NULL DEFAULT 0,
    latency_ms      integer,
    outcome         text NOT NULL CHECK (outcome IN ('running', 'ok', 'error', 'step_limit', 'budget_exhausted', 'no_model', 'command')),
    error           text,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz
);
CREATE INDEX runs_root ON runs (root_run_id);
CREATE INDEX runs_conversation ON runs (conversation_id);

-- Model requests and responses, content-addressed by SHA-256 of their canonical JSON.
CREATE TABLE model_payloads (
    hash       text PRIMARY KEY,
    body       jsonb NOT NULL,
    created_at timestamptz NOT NULL
);

-- A run's timeline: model calls (with their payload hashes) and tool calls, in order.
CREATE TABLE run_steps (
    run_id        uuid NOT NULL REFERENCES runs (id),
    seq           integer NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('model_call', 'tool_call', 'note')),
    at            timestamptz NOT NULL,
    request_hash  text REFERENCES model_payloads (hash),
    response_hash text REFERENCES model_payloads (hash),
    detail        jsonb NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Typed events, hash-chained from the first row; `audit_head` holds the last link so that
-- a removed tail is detected too.
CREATE TABLE audit_logs (
    seq       bigint PRIMARY KEY CHECK (seq > 0),
    id        uuid NOT NULL UNIQUE,
    at        timestamptz NOT NULL,
    event     text NOT NULL,
    actor     text NOT NULL,
    run_id    uuid,
    data      jsonb NOT NULL,
    prev_hash text NOT NULL,
    hash      text NOT NULL
);
CREATE INDEX audit_logs_run ON audit_logs (run_id) WHERE run_id IS NOT NULL;

-- Rows are never changed or removed by AEGIS: refuse it, so that tampering takes a
-- deliberate DDL step by the owner (and is then caught by the chain).
CREATE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only';
END
$$;
CREATE TRIGGER audit_logs_no_change BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only();
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only();

CREATE TABLE audit_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       bigint NOT NULL,
    hash      text NOT NULL
);
INSERT INTO audit_head (seq, hash) VALUES (0, repeat('0', 64));
