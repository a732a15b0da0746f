-- The keyword side of every search ranks up to `keyword_candidates` chunks by their
-- tsvector. With the 3 KB embedding kept inline (STORAGE PLAIN, migration 2), the toaster
-- moved text and tsv out of line to bring rows under its 2 KB target, so every ranking
-- detoasted every candidate's tsv: ~12 ms of each search at 100k chunks (benches/README.md).
-- Store the embedding out of line instead (the vector type's default): rows shrink to
-- ~1.2 KB with text and tsv inline; the vector side reads only its hits' vectors from
-- TOAST; an exact scan (a search within documents) pays a TOAST read per row it scans.
-- Rows written before this keep their layout until their document's next version.
ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE EXTERNAL;
