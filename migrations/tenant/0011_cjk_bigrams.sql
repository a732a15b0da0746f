-- Keyword search finds a word inside a run of Chinese, Japanese or Korean text. Those
-- scripts write words without spaces between them, so PostgreSQL's parser took a whole
-- run (`東京都庁舎に行きます`, or Korean's word with its particle, `서울에서`) as one token,
-- and a query for `東京都` or `서울` found nothing. A run is now tokenised as its
-- overlapping character pairs (`東京 京都 都庁 庁舎 …`, as Lucene's CJK analyser and
-- pg_bigm do), set apart from the letters around it, and a query is too: `東京都` becomes
-- `東京 京都`, found wherever those two pairs stand side by side (the phrase ranks such a
-- chunk first). A run of one character stays itself, so a query of one character finds it
-- only standing alone. Han (with its extensions and compatibility forms), kana and Hangul
-- syllables are paired; the other scripts are as they were.
CREATE FUNCTION kb_bigrams(t text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    -- Each run between marks (U+0002, U+0003); each of its characters written twice, with
    -- a space between (`AB` → `A AB B`); the first and the last character of each run,
    -- left alone by that, dropped with the marks, which become spaces. A run of one
    -- character keeps it. (Three passes without look-ahead: a third of the time of an
    -- equivalent with it, which cost ~2 ms per 1,000 characters.)
    RETURN regexp_replace(regexp_replace(regexp_replace(t, '([\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]+)', E'\x02\\1\x03', 'g'),
        '([\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f])', '\1 \1', 'g'),
        E'\x02[\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f] |\x02| [\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]\x03|\x03', ' ', 'g');

-- `kb_fold` (tenant migration 10) pairs the runs after folding diacritics; chunks and
-- queries go through it, so both are paired alike. Only text with such characters (or
-- Hangul stored decomposed, as conjoining jamo, which the fold composes) is paired, and
-- the test is on `t` itself: `kb_bigrams` names its argument once and `t` is a column or
-- a parameter where `kb_fold` is called, so both are inlined into the calling statement
-- (a SQL function naming an expensive argument more than once is not, and runs through
-- the function executor at ~40 µs a call against ~6 µs, measured on 20,000 words).
CREATE OR REPLACE FUNCTION kb_fold(t text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE WHEN octet_length(t) = length(t) THEN t
                WHEN t ~ '[\u1100-\u11ff\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff\U00020000-\U0002fa1f]' THEN kb_bigrams(normalize(regexp_replace(normalize(t, NFD),
                    '[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e4\u06e7\u06e8\u06ea-\u06ed]',
                    '', 'g'), NFC))
                ELSE normalize(regexp_replace(normalize(t, NFD),
                    '[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e4\u06e7\u06e8\u06ea-\u06ed]',
                    '', 'g'), NFC) END;

-- The stored chunks holding such text re-tokenised, when there are any, as tenant migration
-- 10 does (its comment says why the search indexes are dropped and built once), and the
-- lexeme statistics recounted. A tenant without them keeps its indexes and its counts.
-- Hangul stored decomposed (conjoining jamo, which `kb_fold` composes into syllables)
-- counts as such text.
SELECT pg_advisory_xact_lock(hashtext('aegis.kb_tsv.' || current_schema()));
DO $$
DECLARE
    -- The characters `kb_fold` tests for, as above.
    paired CONSTANT text := '[\u1100-\u11ff\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff\U00020000-\U0002fa1f]';
BEGIN
    IF EXISTS (SELECT 1 FROM chunks WHERE text ~ paired) THEN
        DROP INDEX IF EXISTS chunks_tsv;
        DROP INDEX IF EXISTS chunks_embedding_hnsw;
        UPDATE chunks SET tsv = to_tsvector(
            COALESCE((SELECT value #>> '{}' FROM settings WHERE key = 'kb.text_search_config'), 'simple')::regconfig,
            kb_fold(text))
        WHERE text ~ paired;
        CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw ON chunks
            USING hnsw ((embedding::halfvec(768)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 64);
        CREATE INDEX IF NOT EXISTS chunks_tsv ON chunks USING gin (tsv) WITH (fastupdate = off);
        DELETE FROM kb_terms;
        INSERT INTO kb_terms (lexeme, chunks) SELECT u.lexeme, count(*) FROM chunks c, unnest(c.tsv) u GROUP BY u.lexeme;
    END IF;
END $$;
