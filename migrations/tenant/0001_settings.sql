-- Runs with search_path = tenant_<id>, ext: names are unqualified on purpose.
CREATE TABLE settings (
    key        text PRIMARY KEY,
    value      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
