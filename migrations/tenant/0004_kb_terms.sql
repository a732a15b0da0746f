-- How many chunks contain each lexeme: the keyword side of search takes its candidates
-- from a query's rarest lexemes, so it ranks a bounded set of chunks instead of every chunk
-- that shares one common word. Kept in step with the chunks by every version written or
-- document deleted, in the same transaction.
CREATE TABLE kb_terms (
    lexeme text PRIMARY KEY,
    chunks integer NOT NULL CHECK (chunks >= 0)
);
INSERT INTO kb_terms (lexeme, chunks)
SELECT u.lexeme, count(*) FROM chunks c, unnest(c.tsv) u GROUP BY u.lexeme;

-- A GIN index with fast updates keeps new entries in a pending list that every search
-- scans linearly until a vacuum merges it: after a large ingest that made keyword search
-- several times slower. Chunk inserts already pay for the HNSW index; pay for the GIN
-- index at insert time too, and keep searches flat.
ALTER INDEX chunks_tsv SET (fastupdate = off);
SELECT gin_clean_pending_list('chunks_tsv'::regclass);
