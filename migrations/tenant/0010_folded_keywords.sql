-- Keyword search folds diacritics: a chunk is tokenised from its text with the marks
-- removed (`Zürich` → `Zurich`, `crème` → `creme`, Arabic and Hebrew vowel points), and so
-- is a query, so that a word typed without its accents finds it written with them and the
-- other way round. Decomposed (NFD), the combining marks below are dropped, and the rest
-- composed again (NFC: Hangul and kana come back whole). Marks that carry a letter's
-- identity (Indic vowel signs, Japanese voicing marks) are not among them. The body is
-- bound when the function is created (a SQL-standard body), so it does not depend on
-- the search path of the session that calls it. Text of ASCII alone (as many bytes as
-- characters) is returned as it is. Needs a UTF8 database.
CREATE FUNCTION kb_fold(t text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE WHEN octet_length(t) = length(t) THEN t ELSE normalize(regexp_replace(normalize(t, NFD),
        '[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e4\u06e7\u06e8\u06ea-\u06ed]',
        '', 'g'), NFC) END;

-- Every stored chunk re-tokenised, under the tenant's tokenisation lock (as a change of
-- text-search configuration does). Both search indexes are dropped for the update and
-- built once after it, as a bulk import does: updated rows are new row versions, which
-- every index would otherwise take one by one (13.5k chunks: 5.7 s so, against 7.2 s
-- with the vector index kept). IF EXISTS: an interrupted bulk import may have left them
-- dropped. The lexeme statistics are recounted.
SELECT pg_advisory_xact_lock(hashtext('aegis.kb_tsv.' || current_schema()));
DROP INDEX IF EXISTS chunks_tsv;
DROP INDEX IF EXISTS chunks_embedding_hnsw;
UPDATE chunks SET tsv = to_tsvector(
    COALESCE((SELECT value #>> '{}' FROM settings WHERE key = 'kb.text_search_config'), 'simple')::regconfig,
    kb_fold(text));
CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw ON chunks
    USING hnsw ((embedding::halfvec(768)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 64);
CREATE INDEX IF NOT EXISTS chunks_tsv ON chunks USING gin (tsv) WITH (fastupdate = off);
DELETE FROM kb_terms;
INSERT INTO kb_terms (lexeme, chunks) SELECT u.lexeme, count(*) FROM chunks c, unnest(c.tsv) u GROUP BY u.lexeme;
