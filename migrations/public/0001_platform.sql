-- Platform tables: tenants, operator audit, platform secrets.
-- Every statement is schema-qualified: platform code never relies on search_path.

CREATE SCHEMA IF NOT EXISTS ext;
CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA ext;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

CREATE TABLE public.tenants (
    id             text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_]{0,39}$'),
    name           text NOT NULL,
    tier           text NOT NULL CHECK (tier IN ('free', 'trial', 'pro', 'business', 'enterprise')),
    schema_name    text NOT NULL UNIQUE,
    role_name      text NOT NULL UNIQUE,
    schema_version integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE TABLE public.platform_audit (
    id         uuid PRIMARY KEY,
    at         timestamptz NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    tenant_id  text,
    detail     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX platform_audit_tenant_at ON public.platform_audit (tenant_id, at);

-- Secrets the platform keeps in the database (e.g. the vault key check value).
-- Tenant roles have no rights on any platform table.
CREATE TABLE public.platform_secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
