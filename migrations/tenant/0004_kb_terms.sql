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
