-- Model policy decisions, the provider ledger, usage meters with reservations, and API keys.
-- Rows that carry a tenant id are deleted with the tenant by Tenants::delete (no foreign
-- key on the append-only tables, so a batch insert never fails on a just-deleted tenant).

CREATE TABLE public.ai_audit_log (
    id             uuid PRIMARY KEY,
    at             timestamptz NOT NULL,
    tenant_id      text NOT NULL,
    caller         text NOT NULL,
    policy_version text NOT NULL,
    tier           text NOT NULL,
    intent         text NOT NULL,
    requested      text,
    candidates     jsonb NOT NULL,
    alias          text,
    chain          jsonb NOT NULL,
    filtered       jsonb NOT NULL,
    allowed        boolean NOT NULL,
    reason         text NOT NULL,
    metered        boolean NOT NULL
);
CREATE INDEX ai_audit_log_tenant_at ON public.ai_audit_log (tenant_id, at);

CREATE TABLE public.provider_ledger (
    id             uuid PRIMARY KEY,
    at             timestamptz NOT NULL,
    tenant_id      text NOT NULL,
    decision_id    uuid NOT NULL,
    run_id         uuid,
    alias          text NOT NULL,
    model          text NOT NULL,
    provider       text NOT NULL,
    provider_model text NOT NULL,
    attempt        integer NOT NULL,
    stream         boolean NOT NULL,
    outcome        text NOT NULL CHECK (outcome IN ('ok', 'error', 'cancelled')),
    error_class    text,
    error          text,
    latency_ms     integer NOT NULL,
    ttft_ms        integer,
    tokens_in      bigint,
    tokens_out     bigint,
    cost_micro_usd bigint,
    priced         boolean NOT NULL,
    premium        boolean NOT NULL,
    CHECK (priced = (cost_micro_usd IS NOT NULL))
);
CREATE INDEX provider_ledger_tenant_at ON public.provider_ledger (tenant_id, at);
CREATE INDEX provider_ledger_decision ON public.provider_ledger (decision_id);
CREATE INDEX provider_ledger_run ON public.provider_ledger (run_id) WHERE run_id IS NOT NULL;

-- One primitive for quotas and rate limits: (tenant, meter, window) with a limit.
CREATE TABLE public.usage_meters (
    tenant_id      text NOT NULL,
    meter          text NOT NULL,
    window_start   timestamptz NOT NULL,
    window_end     timestamptz NOT NULL,
    limit_value    bigint NOT NULL,
    used           bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
    reserved       bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    unpriced_calls bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, meter, window_start)
);

CREATE TABLE public.usage_reservations (
    id           uuid PRIMARY KEY,
    tenant_id    text NOT NULL,
    meter        text NOT NULL,
    window_start timestamptz NOT NULL,
    amount       bigint NOT NULL CHECK (amount >= 0),
    status       text NOT NULL CHECK (status IN ('held', 'settled', 'released', 'expired')),
    actual       bigint,
    unpriced     boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    settled_at   timestamptz
);
CREATE INDEX usage_reservations_held ON public.usage_reservations (expires_at) WHERE status = 'held';

-- Per-tenant overrides of a meter's limit (else the tier default applies).
CREATE TABLE public.usage_limits (
    tenant_id   text NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    meter       text NOT NULL,
    limit_value bigint NOT NULL CHECK (limit_value >= 0),
    PRIMARY KEY (tenant_id, meter)
);

CREATE TABLE public.api_keys (
    id           uuid PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    name         text NOT NULL,
    prefix       text NOT NULL UNIQUE,
    hash         bytea NOT NULL,
    scopes       text[] NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_keys_tenant ON public.api_keys (tenant_id);
