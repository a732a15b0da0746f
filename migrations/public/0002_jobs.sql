-- Durable jobs and inbox: one row per unit of work, unique by (queue, source_key), claimed
-- with FOR UPDATE SKIP LOCKED, every attempt recorded, every row ending terminal.
-- The outbox is the same mechanism on queues named 'outbox:<transport>', keyed by the
-- idempotency key.

CREATE TABLE public.jobs (
    id            uuid PRIMARY KEY,
    queue         text NOT NULL,
    source_key    text NOT NULL,
    tenant_id     text REFERENCES public.tenants (id) ON DELETE CASCADE,
    payload       jsonb NOT NULL DEFAULT '{}'::jsonb,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'done', 'failed', 'dead')),
    attempts      integer NOT NULL DEFAULT 0,
    max_attempts  integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    run_at        timestamptz NOT NULL,
    locked_by     text,
    locked_until  timestamptz,
    last_error    text,
    result        jsonb,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    UNIQUE (queue, source_key)
);
CREATE INDEX jobs_ready ON public.jobs (queue, run_at) WHERE status = 'queued';
CREATE INDEX jobs_leased ON public.jobs (locked_until) WHERE status = 'running';

CREATE TABLE public.job_attempts (
    job_id      uuid NOT NULL REFERENCES public.jobs (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    worker_id   text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    outcome     text CHECK (outcome IN ('done', 'retry', 'failed', 'dead', 'lease_expired')),
    error       text,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE public.worker_heartbeats (
    worker_id     text PRIMARY KEY,
    kind          text NOT NULL,
    host          text NOT NULL,
    pid           integer NOT NULL,
    started_at    timestamptz NOT NULL,
    last_beat_at  timestamptz NOT NULL,
    status        text NOT NULL CHECK (status IN ('running', 'stopping', 'stopped')),
    is_leader     boolean NOT NULL DEFAULT false,
    jobs_done     bigint NOT NULL DEFAULT 0
);
