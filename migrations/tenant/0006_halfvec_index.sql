-- The HNSW index holds half-precision copies of the embeddings (pgvector 0.7+): half the
-- index's pages to read per search and half its memory, with the distances of float16
-- values (their rounding moves recall@10 by well under a hundredth). The column keeps
-- full precision; exact scans (a search within documents) use it. Searches order by the
-- same expression, `embedding::halfvec(768) <=> $1::halfvec(768)`, so the planner picks
-- the index. Rebuilding reads every chunk of the tenant once.
DROP INDEX chunks_embedding_hnsw;
CREATE INDEX chunks_embedding_hnsw ON chunks
    USING hnsw ((embedding::halfvec(768)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 64);
