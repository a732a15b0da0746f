-- How a document's current version was made (extractor version, PDF reader, chunk sizes,
-- embedding model). Ingesting the same bytes again is a no-op only when this matches too,
-- so a better reader, new chunk sizes or a new embedding model take effect on re-ingest.
-- Versions stored before this column existed have '' and are remade on their next ingest.
ALTER TABLE documents ADD COLUMN recipe text NOT NULL DEFAULT '';
