-- What a run did is history: its steps and the payloads they point to from the moment they
-- are written, the run row itself once it has ended. The tenant role — the role of every
-- query AEGIS runs for a tenant — can add to that history but not rewrite or remove it
-- (audit_logs is guarded the same way since migration 3); changing it takes a deliberate
-- DDL step by the owner. A finished run's `rating` stays writable: feedback comes later.
CREATE FUNCTION refuse_history_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;
CREATE TRIGGER run_steps_no_change BEFORE UPDATE OR DELETE ON run_steps
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER model_payloads_no_change BEFORE UPDATE OR DELETE ON model_payloads
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();

CREATE FUNCTION runs_end_as_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'runs are history: run % cannot be deleted', OLD.id;
    END IF;
    IF OLD.outcome <> 'running' AND (to_jsonb(NEW) - 'rating') IS DISTINCT FROM (to_jsonb(OLD) - 'rating') THEN
        RAISE EXCEPTION 'run % has ended: only its rating can change', OLD.id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER runs_history BEFORE UPDATE OR DELETE ON runs
    FOR EACH ROW EXECUTE FUNCTION runs_end_as_history();
