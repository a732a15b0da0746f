-- An inbound message is the record of a delivery and of the reply it was given: a replay
-- of the same (channel, source_id) is answered from it. So what was received never
-- changes, an answered message never changes, and none is deleted — not even by the
-- tenant role, which runs every query AEGIS makes for the tenant. Before this, a rewritten
-- reply would be replayed as the agent's, and a deleted row would let a replay run again.
-- A message still being processed, or failed, keeps moving (lease renewals, retries).
CREATE FUNCTION inbound_messages_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'inbound message %/% is history: it cannot be deleted', OLD.channel, OLD.source_id;
    END IF;
    IF OLD.status = 'done' AND to_jsonb(NEW) IS DISTINCT FROM to_jsonb(OLD) THEN
        RAISE EXCEPTION 'inbound message %/% was answered: it is history', OLD.channel, OLD.source_id;
    END IF;
    IF (NEW.channel, NEW.source_id, NEW.thread, NEW.sender, NEW.text, NEW.received_at)
       IS DISTINCT FROM (OLD.channel, OLD.source_id, OLD.thread, OLD.sender, OLD.text, OLD.received_at) THEN
        RAISE EXCEPTION 'inbound message %/%: what was received cannot change', OLD.channel, OLD.source_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER inbound_messages_history BEFORE UPDATE OR DELETE ON inbound_messages
    FOR EACH ROW EXECUTE FUNCTION inbound_messages_guard();
