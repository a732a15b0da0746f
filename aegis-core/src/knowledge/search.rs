//! Search: hybrid (vector top-k and full-text top-k fused by reciprocal rank fusion, in one
//! SQL statement), vector-only or keyword-only, optionally within some documents. Only
//! vectors of the query's embedding model are compared. A search within documents scans the
//! documents' chunks exactly, at full precision, so it returns k hits when k exist. In a
//! tenant holding chunks of several models the index is scanned iteratively (pgvector 0.8)
//! keeping only the query's model, and exactly when that scan gives up short. A chunk
//! holding the query's words side by side, in order (someone pasting a sentence they
//! remember), comes first in the keyword list and among the fused hits. Fused scores tie
//! whenever the two lists' best hits differ (1/61 each): the chunk holding the words asked
//! for then comes before a vector neighbour that does not.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Knowledge, KnowledgeError, extract::Anchor};
use crate::{llm::Target, policy::Intent, tenancy::TenantScope};

/// How to search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Vector and full text, fused.
    #[default]
    Hybrid,
    /// Vector only.
    Vector,
    /// Full text only.
    Keyword,
}

impl std::str::FromStr for SearchMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hybrid" => Ok(SearchMode::Hybrid),
            "vector" => Ok(SearchMode::Vector),
            "keyword" => Ok(SearchMode::Keyword),
            other => Err(format!("unknown search mode `{other}` (hybrid, vector or keyword)")),
        }
    }
}

/// Search parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchOptions {
    /// Hits wanted (1–100).
    pub k: usize,
    /// Mode.
    pub mode: SearchMode,
    /// Only these documents (source keys or ids), when set.
    pub documents: Option<Vec<String>>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self { k: 8, mode: SearchMode::Hybrid, documents: None }
    }
}

/// One hit, with its citation.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// The chunk.
    pub chunk_id: Uuid,
    /// Its document.
    pub document_id: Uuid,
    /// The document's source key.
    pub source_key: String,
    /// The document's title.
    pub title: String,
    /// Where in the document.
    pub anchor: Anchor,
    /// The chunk's text.
    pub text: String,
    /// The matching span (query terms marked with `**`).
    pub span: String,
    /// Fused score (higher is better).
    pub score: f64,
    /// Rank in the vector list, if it was there.
    pub vector_rank: Option<i64>,
    /// Rank in the keyword list, if it was there.
    pub keyword_rank: Option<i64>,
    /// The chunk holds the query's words side by side, in order (a query of two words or
    /// more): such hits come first, whatever their fused score.
    pub phrase: bool,
}

#[derive(sqlx::FromRow)]
struct Row {
    chunk_id: Uuid,
    document_id: Uuid,
    source_key: String,
    title: String,
    anchor: serde_json::Value,
    text: String,
    span: String,
    score: f64,
    vector_rank: Option<i64>,
    keyword_rank: Option<i64>,
    phrase: bool,
}

/// The statement; `{VECTOR}` is the vector candidates' query ([`VectorScan`], put in by
/// [`statement`]). `vector_found` says how many candidates that query found.
const SEARCH: &str = "
WITH cfg AS (
  SELECT COALESCE((SELECT value #>> '{}' FROM settings WHERE key = 'kb.text_search_config'), 'simple')::regconfig AS cfg
), words AS (
  -- The query folded as the chunks were (`kb_fold`: no diacritics, tenant migration 10; CJK
  -- runs as their character pairs, migration 11, which `cjk::pair_query` wrote already).
  SELECT websearch_to_tsquery(cfg.cfg, kb_fold($3)) AS all_words,
         replace(websearch_to_tsquery(cfg.cfg, kb_fold($3))::text, ' & ', ' | ')::tsquery AS any_word,
         phraseto_tsquery(cfg.cfg, kb_fold($10)) AS phrase,
         tsvector_to_array(to_tsvector(cfg.cfg, kb_fold($3))) AS folded FROM cfg
), q AS (
  -- Ranked by how many of the query's words a chunk has, and how close together.
  SELECT words.any_word AS tq FROM words
), cand AS (
  -- Which chunks are ranked at all: those with one of the query's rarest lexemes (or all
  -- of a few, or the quoted phrase), at most $9 of them; see `keyword_candidates`. When
  -- every lexeme is common ('all', and 'all few' below), the chunks with every word of the query are taken
  -- first, so that the cap does not drop the one that holds the sentence asked for (an
  -- Append reads its branches in order: the rest only fill what the cap leaves, and are
  -- not read at all when those chunks fill it).
  SELECT CASE
           WHEN $8 = 'phrase' THEN (SELECT all_words FROM words)
           WHEN $8 IN ('all', 'all few') THEN (SELECT string_agg(quote_literal(l), ' & ')::tsquery FROM unnest($7::text[]) l)
           ELSE (SELECT string_agg(quote_literal(l), ' | ')::tsquery FROM unnest($7::text[]) l)
         END AS tq
), docs AS (
  SELECT array_agg(id) AS ids FROM documents WHERE $4::text[] IS NOT NULL AND (source_key = ANY($4) OR id::text = ANY($4))
), vec AS (
  SELECT v.id, row_number() OVER (ORDER BY v.distance) AS rank FROM ({VECTOR}) v
), kw AS (
  -- Two passes: ts_rank (term frequency, cheap) keeps twice the list's length of the
  -- candidates, ts_rank_cd (cover density: how close together the words are, several times
  -- dearer) orders those. In both, a chunk with the query's words as a phrase (in order,
  -- side by side) comes first, then one with every word, then one with only some: a long
  -- chunk full of the query's common words must not outrank the sentence itself.
  SELECT k.id, k.phrase, row_number() OVER (ORDER BY k.phrase DESC, k.every DESC, k.r DESC) AS rank FROM (
    SELECT p.id, p.phrase, p.every, ts_rank_cd(p.tsv, q.tq) AS r FROM (
      SELECT m.id, m.tsv, m.every, m.every AND m.tsv @@ words.phrase AS phrase
      FROM (SELECT u.id, u.tsv, u.every FROM (
              (SELECT c.id, c.tsv, true AS every FROM chunks c, docs, words
               WHERE $5 > 0 AND $8 = 'all' AND c.tsv @@ words.all_words
                 AND ($4::text[] IS NULL OR c.document_id = ANY(docs.ids)) LIMIT $9)
              UNION ALL
              (SELECT c.id, c.tsv, c.tsv @@ words.all_words FROM chunks c, docs, cand, words
               WHERE $5 > 0 AND $8 <> 'all few' AND c.tsv @@ cand.tq AND NOT ($8 = 'all' AND c.tsv @@ words.all_words)
                 AND ($4::text[] IS NULL OR c.document_id = ANY(docs.ids)) LIMIT $9)
              UNION ALL
              -- 'all few': the rarest lexemes are together in few chunks, so one index scan
              -- reads them all and those with every word are sorted first (a chunk with
              -- every word has the rarest ones too), the phrase first among them, instead
              -- of a second index scan of every word's posting list. The phrase is tested
              -- before the cap: more than the cap's number of chunks can have every word.
              (SELECT v.id, v.tsv, v.every FROM (
                 SELECT c.id, c.tsv, c.tsv @@ words.all_words AS every FROM chunks c, docs, cand, words
                 WHERE $5 > 0 AND $8 = 'all few' AND c.tsv @@ cand.tq
                   AND ($4::text[] IS NULL OR c.document_id = ANY(docs.ids))) v, words
               ORDER BY v.every DESC, v.every AND v.tsv @@ words.phrase DESC, v.id LIMIT $9)) u
            LIMIT $9) m,
           q, words
      ORDER BY phrase DESC, m.every DESC, ts_rank(m.tsv, q.tq) DESC LIMIT 2 * $5
    ) p, q
    ORDER BY p.phrase DESC, p.every DESC, r DESC LIMIT $5
  ) k
), fused AS (
  SELECT id, sum(1.0 / (60 + rank))::float8 AS score,
         min(rank) FILTER (WHERE src = 'v') AS vector_rank, min(rank) FILTER (WHERE src = 'k') AS keyword_rank,
         bool_or(phrase) AND numnode((SELECT phrase FROM words)) > 1 AS phrase
  FROM (SELECT id, rank, 'v' AS src, false AS phrase FROM vec UNION ALL SELECT id, rank, 'k', phrase FROM kw) u
  GROUP BY id
)
SELECT c.id AS chunk_id, c.document_id, d.source_key, d.title, c.anchor, c.text,
       -- A phrase hit's span is where the phrase is, not wherever one of its words is.
       -- The span shows the text as written: its words are marked where they fold to one
       -- of the query's (`Zürich` for `zurich`), from the lexemes of the chunk's words that
       -- are not ASCII alone (the others fold to themselves). Those words are picked out by
       -- a pattern and tokenised alone, which costs a tenth of tokenising the whole chunk.
       -- A run of CJK text is one word as written and several character pairs folded
       -- (tenant migration 11): it is marked whole when one of its pairs is the query's.
       -- Each lexeme is folded once (`OFFSET 0` keeps the planner from copying the fold
       -- into every condition that reads it).
       ts_headline(cfg.cfg, c.text,
                   CASE WHEN f.phrase THEN words.phrase || phraseto_tsquery(cfg.cfg, $10) ELSE q.tq END
                   || COALESCE((SELECT string_agg(quote_literal(l.lexeme), ' | ')::tsquery
                                FROM unnest(to_tsvector(cfg.cfg, array_to_string(ARRAY(
                                       SELECT (regexp_matches(c.text, '\\S*[^\\x01-\\x7f]\\S*', 'g'))[1]), ' '))) l,
                                     LATERAL (SELECT kb_fold(l.lexeme) AS folded OFFSET 0) lf
                                WHERE l.lexeme <> lf.folded
                                  AND (lf.folded = ANY (words.folded)
                                       OR (strpos(lf.folded, ' ') > 0
                                           AND tsvector_to_array(to_tsvector(cfg.cfg, lf.folded)) && words.folded))),
                               CASE WHEN f.phrase THEN words.phrase ELSE q.tq END),
                   'MaxWords=35, MinWords=12, MaxFragments=1, StartSel=\u{FDD0}, StopSel=\u{FDD1}') AS span,
       f.score, f.vector_rank, f.keyword_rank, f.phrase, (SELECT count(*) FROM vec) AS vector_found
FROM fused f JOIN chunks c ON c.id = f.id JOIN documents d ON d.id = c.document_id, cfg, q, words
ORDER BY f.phrase DESC, f.score DESC, f.keyword_rank NULLS LAST, c.id LIMIT $6";

/// Everything the search statement needs to know first, in one round trip: the session's
/// `ef_search`; iterative index scans (pgvector 0.8: a filtered index scan goes on past
/// `ef_search` until enough rows pass the filter, up to `hnsw.max_scan_tuples`; without a
/// filter it changes nothing); generic plans for the search statement (planning it afresh
/// for every query cost more than running it); whether chunks of another embedding model
/// exist (`$2`; two range conditions, answerable from the btree, where `<>` would scan
/// every chunk); and the keyword query's lexemes (`$3`, when set) with the number of chunks
/// holding each, and the planner's estimate of the tenant's chunks (`reltuples`: -1 before
/// the table is first analysed).
const PREPARE: &str = "
WITH terms AS (
  SELECT u.lexeme, COALESCE(t.chunks, 0)::bigint AS chunks
  FROM (SELECT DISTINCT lexeme FROM unnest(to_tsvector(
          COALESCE((SELECT value #>> '{}' FROM settings WHERE key = 'kb.text_search_config'), 'simple')::regconfig,
          kb_fold(COALESCE($3, ''))))) u
  LEFT JOIN kb_terms t USING (lexeme) WHERE $3::text IS NOT NULL
)
SELECT set_config('hnsw.ef_search', $1, true) AS ef_search,
       set_config('hnsw.iterative_scan', 'strict_order', true) AS iterative_scan,
       set_config('plan_cache_mode', 'force_generic_plan', true) AS plan_cache_mode,
       $2::text IS NOT NULL AND (EXISTS (SELECT 1 FROM chunks WHERE embedding_model < $2)
                                 OR EXISTS (SELECT 1 FROM chunks WHERE embedding_model > $2)) AS mixed_models,
       COALESCE((SELECT array_agg(lexeme ORDER BY lexeme) FROM terms), '{}') AS lexemes,
       COALESCE((SELECT array_agg(chunks ORDER BY lexeme) FROM terms), '{}') AS counts,
       (SELECT reltuples FROM pg_class WHERE oid = 'chunks'::regclass)::float8 AS chunks_estimate";

/// What [`PREPARE`] returns that the search uses (the `set_config` columns are not read).
#[derive(sqlx::FromRow)]
struct Prepared {
    mixed_models: bool,
    lexemes: Vec<String>,
    counts: Vec<i64>,
    chunks_estimate: f64,
}

/// How the keyword side picks the chunks it ranks.
#[derive(Debug, PartialEq, Eq)]
enum Candidates {
    /// Chunks with any of these lexemes (together in at most the cap's number of chunks).
    AnyOf(Vec<String>),
    /// Chunks with all of these (each too common alone), after those with every word of
    /// the query, which an index scan of every word's posting list finds first.
    AllOf(Vec<String>),
    /// As [`Candidates::AllOf`] when these few are together in few chunks: one index scan
    /// reads all of those, and the ones with every word are sorted first.
    AllOfFew(Vec<String>),
    /// Chunks with the quoted phrase (web-search syntax).
    Phrase,
}

/// How many index postings of the keyword side cost as much as reading one chunk's row
/// (measured on the 100k-chunk bench: an index scan of seven lexemes in ~23,000 chunks
/// each took 4.7 ms; reading and testing 1,385 rows, 2.2 ms).
const POSTINGS_PER_ROW: f64 = 50.0;

impl Candidates {
    /// The rarest lexemes whose chunks add up to at most `cap`; when even the rarest is in
    /// more chunks than that, the three rarest together. Lexemes in no chunk are dropped.
    /// `chunks` estimates the tenant's chunks (not known when not positive).
    ///
    /// For the three rarest, the cheaper of two plans: reading every chunk with all three
    /// (as many as `chunks` × the product of their shares, were they independent) costs
    /// the rows beyond the cap; the other plan's index scan of every word costs the sum of
    /// their postings. A word in no chunk makes that scan free.
    fn choose(query: &str, mut counts: Vec<(String, i64)>, cap: usize, chunks: f64) -> Self {
        if query.contains('"') {
            return Candidates::Phrase;
        }
        let absent = counts.iter().any(|(_, n)| *n <= 0);
        counts.retain(|(_, n)| *n > 0);
        counts.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        let mut total = 0i64;
        let mut any = Vec::new();
        for (lexeme, n) in &counts {
            if total + n > cap {
                break;
            }
            total += n;
            any.push(lexeme.clone());
        }
        if !any.is_empty() || counts.is_empty() {
            return Candidates::AnyOf(any);
        }
        let postings: f64 = counts.iter().map(|(_, n)| *n as f64).sum();
        let rarest: Vec<String> = counts.iter().take(3).map(|(l, _)| l.clone()).collect();
        let together = counts.iter().take(3).fold(chunks, |rows, (_, n)| rows * (*n as f64 / chunks));
        if !absent && chunks > 0.0 && (together - cap as f64).max(0.0) * POSTINGS_PER_ROW <= postings {
            return Candidates::AllOfFew(rarest);
        }
        Candidates::AllOf(rarest)
    }

    fn binds(&self) -> (&'static str, &[String]) {
        match self {
            Candidates::AnyOf(l) => ("any", l),
            Candidates::AllOf(l) => ("all", l),
            Candidates::AllOfFew(l) => ("all few", l),
            Candidates::Phrase => ("phrase", &[]),
        }
    }
}

/// The distance the HNSW index answers (tenant migration 6): half-precision copies of chunk
/// `c`'s embedding and of the query vector `$1`. A top-k query ordering by exactly this,
/// with no other condition, is answered from the index.
pub const INDEXED_DISTANCE: &str = "c.embedding::halfvec(768) <=> $1::halfvec(768)";

/// How the vector side finds its candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VectorScan {
    /// pgvector's top-k query exactly, answered from the HNSW index: every chunk has the
    /// query's model and no document filter is set.
    Indexed,
    /// The index with an iterative scan keeping only the query's model (the tenant holds
    /// chunks of other models too). It can give up before finding enough; then the search
    /// runs again with [`VectorScan::Exact`].
    IndexedOneModel,
    /// Filtered by model and documents and ordered by `distance + 0`, which no index
    /// answers: every matching row is scanned, and k hits come back when k exist.
    Exact,
}

/// The search statement with its vector candidates' query. The vector list's length is a
/// literal, not a parameter: the statement runs with generic plans, and for `LIMIT $n` a
/// generic plan assumes a tenth of the table, which pgvector 0.8 (rightly) costs above a
/// sequential scan and sort — every search became an exact scan. Lengths are at most
/// 100 × `candidates_per_hit`, so few statements are cached per connection.
fn statement(scan: VectorScan, vector_limit: i64) -> String {
    let vector = match scan {
        VectorScan::Indexed => format!(
            "SELECT c.id, {INDEXED_DISTANCE} AS distance FROM chunks c WHERE $2::text IS NOT NULL \
             ORDER BY {INDEXED_DISTANCE} LIMIT {vector_limit}"
        ),
        VectorScan::IndexedOneModel => format!(
            "SELECT c.id, {INDEXED_DISTANCE} AS distance FROM chunks c WHERE c.embedding_model = $2 \
             ORDER BY {INDEXED_DISTANCE} LIMIT {vector_limit}"
        ),
        VectorScan::Exact => format!(
            "SELECT c.id, c.embedding <=> $1 AS distance FROM chunks c, docs \
             WHERE c.embedding_model = $2 AND ($4::text[] IS NULL OR c.document_id = ANY(docs.ids)) \
             ORDER BY (c.embedding <=> $1) + 0 LIMIT {vector_limit}"
        ),
    };
    SEARCH.replace("{VECTOR}", &vector)
}

/// The search statement's parameters, `$1` to `$10`, in their order.
struct Binds<'a> {
    vector: pgvector::Vector,
    model: &'a str,
    keywords: &'a str,
    documents: Option<&'a [String]>,
    keyword_limit: i64,
    k: i64,
    lexemes: &'a [String],
    how: &'static str,
    keyword_cap: i64,
    /// The query as asked, stop words and all: its words side by side are the phrase.
    phrase: &'a str,
}

/// The parameter types of [`Binds`], as sqlx sends them, for a `PREPARE` of the statement.
const BIND_TYPES: &str = "vector, text, text, text[], int8, int8, text[], text, int8, text";

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

impl Binds<'_> {
    fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(&self.vector)
            .bind(self.model)
            .bind(self.keywords)
            .bind(self.documents)
            .bind(self.keyword_limit)
            .bind(self.k)
            .bind(self.lexemes)
            .bind(self.how)
            .bind(self.keyword_cap)
            .bind(self.phrase)
    }
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the statement with the generic plan production runs
/// ([`PREPARE`] forces generic plans). An `EXPLAIN` of the statement with bound values
/// would plan it for those values instead, and parameters cannot reach the arguments of
/// an `EXPLAIN EXECUTE`; so the statement is prepared under a name of its own, and
/// PostgreSQL's `format('%L')` quotes the values into the `EXECUTE`.
async fn explain_generic(
    conn: &mut sqlx::PgConnection,
    sql: &str,
    binds: &Binds<'_>,
) -> Result<Vec<sqlx::postgres::PgRow>, KnowledgeError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name =
        format!("aegis_explain_{}_{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let prepare = format!("PREPARE {name} ({BIND_TYPES}) AS {sql}");
    sqlx::query(&prepare).persistent(false).execute(&mut *conn).await?;
    // A prepared statement is not transactional: if the EXPLAIN fails, the savepoint
    // brings the transaction back so that the statement can still be deallocated rather
    // than left on the pooled connection.
    sqlx::query("SAVEPOINT aegis_explain").persistent(false).execute(&mut *conn).await?;
    let explained = explain_prepared(conn, &name, binds).await;
    if explained.is_err() {
        sqlx::query("ROLLBACK TO SAVEPOINT aegis_explain").persistent(false).execute(&mut *conn).await?;
    }
    let deallocate = format!("DEALLOCATE {name}");
    sqlx::query(&deallocate).persistent(false).execute(&mut *conn).await?;
    Ok(explained?)
}

/// Runs `EXPLAIN (ANALYZE, BUFFERS)` of the prepared statement `name` with the values quoted in.
async fn explain_prepared(
    conn: &mut sqlx::PgConnection,
    name: &str,
    binds: &Binds<'_>,
) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
    let render = format!(
        "SELECT format('EXPLAIN (ANALYZE, BUFFERS) EXECUTE {name}(%L, %L, %L, %L, %L, %L, %L, %L, %L, %L)', \
         $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    let explain: String = binds
        .bind(sqlx::query(&render).persistent(false))
        .fetch_one(&mut *conn)
        .await
        .and_then(|r| sqlx::Row::try_get(&r, 0))?;
    sqlx::query(&explain).persistent(false).fetch_all(&mut *conn).await
}

/// How many vector candidates the search statement found (0 when it returned no rows).
fn vector_found(rows: &[sqlx::postgres::PgRow]) -> Result<i64, sqlx::Error> {
    rows.first().map_or(Ok(0), |row| sqlx::Row::try_get(row, "vector_found"))
}

/// Function words dropped from unquoted queries before their words are ORed: they match
/// nearly every chunk and only cost ranking time. (English and a few common others; the
/// tenant's text-search configuration may add its own stop words.)
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how", "i", "in", "is", "it",
    "many", "much", "my", "of", "on", "or", "our", "the", "this", "to", "was", "we", "what", "when", "where", "which",
    "who", "why", "with", "you", "your", "der", "die", "das", "und", "le", "la", "les", "et", "de", "el", "los", "y",
];

/// The query's words without stop words (kept whole when it quotes a phrase or is all stop words).
fn keyword_query(query: &str) -> String {
    if query.contains('"') {
        return query.to_owned();
    }
    let kept: Vec<&str> = query
        .split_whitespace()
        .filter(|w| !STOP_WORDS.contains(&w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase().as_str()))
        .collect();
    if kept.is_empty() { query.to_owned() } else { kept.join(" ") }
}

impl Knowledge {
    /// Searches the tenant's documents.
    #[tracing::instrument(skip_all, fields(tenant = %scope.tenant()))]
    pub async fn search(
        &self,
        scope: &TenantScope,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Vec<Hit>, KnowledgeError> {
        let (_, rows) = self.run_search(scope, query, options, false).await?;
        let rows = rows.iter().map(<Row as sqlx::FromRow<_>>::from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .map(|r| Hit {
                chunk_id: r.chunk_id,
                document_id: r.document_id,
                source_key: r.source_key,
                title: r.title,
                anchor: serde_json::from_value(r.anchor).unwrap_or_default(),
                text: r.text,
                span: super::cjk::narrow_span(&r.span, query),
                score: r.score,
                vector_rank: r.vector_rank,
                keyword_rank: r.keyword_rank,
                phrase: r.phrase,
            })
            .collect())
    }

    /// The search's statement as PostgreSQL ran it (`EXPLAIN (ANALYZE, BUFFERS)`), for an
    /// operator asking why a search is slow. It runs the search once.
    pub async fn explain_search(
        &self,
        scope: &TenantScope,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Vec<String>, KnowledgeError> {
        let (candidates, rows) = self.run_search(scope, query, options, true).await?;
        let mut plan = vec![format!("keyword candidates: {candidates:?}")];
        for row in &rows {
            plan.push(sqlx::Row::try_get::<String, _>(row, 0)?);
        }
        Ok(plan)
    }

    /// Runs the search statement (or its `EXPLAIN`), returning how the keyword side chose
    /// its candidates and the statement's rows.
    async fn run_search(
        &self,
        scope: &TenantScope,
        query: &str,
        options: &SearchOptions,
        explain: bool,
    ) -> Result<(Candidates, Vec<sqlx::postgres::PgRow>), KnowledgeError> {
        let query = query.trim();
        if query.is_empty() {
            return Err(KnowledgeError::Invalid("the query is empty".into()));
        }
        // Punctuation or symbols alone match no word: the vector side would still rank
        // chunks by their punctuation, and answer with noise.
        if !query.chars().any(char::is_alphanumeric) {
            return Err(KnowledgeError::Invalid("the query has no letters or digits to search for".into()));
        }
        if !(1..=100).contains(&options.k) {
            return Err(KnowledgeError::Invalid("k must be between 1 and 100".into()));
        }
        let candidates = i64::try_from(options.k * self.config().candidates_per_hit.max(1)).unwrap_or(400);
        let (vector, model) = if options.mode == SearchMode::Keyword {
            (vec![0.0f32; crate::llm::config::EMBEDDING_DIMENSIONS as usize], String::new())
        } else {
            let call = Self::call_scope(scope);
            let (_, mut embeddings) =
                self.inner.models.embed(&call, &Target::Intent(Intent::Embedding), &[query.to_owned()]).await?;
            (embeddings.vectors.pop().unwrap_or_default(), embeddings.model)
        };
        let (vector_limit, keyword_limit) = match options.mode {
            SearchMode::Hybrid => (candidates, candidates),
            SearchMode::Vector => (candidates, 0),
            SearchMode::Keyword => (0, candidates),
        };
        // CJK runs as their character pairs, web-search syntax kept (`cjk::pair_query`).
        let keywords = super::cjk::pair_query(&keyword_query(query));
        let mut tx = scope.begin().await?;
        if let Some(documents) = &options.documents {
            // A filter naming a document the tenant lacks is a mistake, not "no hits".
            let missing: Option<String> = sqlx::query_scalar(
                "SELECT k FROM unnest($1::text[]) k \
                 WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.source_key = k OR d.id::text = k) LIMIT 1",
            )
            .bind(documents)
            .fetch_optional(tx.conn())
            .await?;
            if let Some(missing) = missing {
                return Err(KnowledgeError::NotFound(missing));
            }
        }
        let Prepared { mixed_models, lexemes, counts, chunks_estimate } = sqlx::query_as(PREPARE)
            .bind(self.config().ef_search.max(u32::try_from(candidates).unwrap_or(u32::MAX)).to_string())
            .bind((vector_limit > 0).then_some(&model))
            .bind((keyword_limit > 0).then_some(&keywords))
            .fetch_one(tx.conn())
            .await?;
        let candidates = if keyword_limit > 0 {
            Candidates::choose(
                &keywords,
                lexemes.into_iter().zip(counts).collect(),
                self.config().keyword_candidates.max(1),
                chunks_estimate,
            )
        } else {
            Candidates::AnyOf(Vec::new())
        };
        let (how, lexemes) = candidates.binds();
        let scan = match (options.documents.is_some(), mixed_models) {
            (true, _) => VectorScan::Exact,
            (false, true) => VectorScan::IndexedOneModel,
            (false, false) => VectorScan::Indexed,
        };
        let binds = Binds {
            vector: pgvector::Vector::from(vector),
            model: &model,
            keywords: &keywords,
            documents: options.documents.as_deref(),
            keyword_limit,
            k: i64::try_from(options.k).unwrap_or(8),
            lexemes,
            how,
            keyword_cap: i64::try_from(self.config().keyword_candidates.max(1)).unwrap_or(i64::MAX),
            phrase: query,
        };
        let mut rows = Vec::new();
        for scan in [scan, VectorScan::Exact] {
            let sql = statement(scan, vector_limit);
            if explain {
                rows = explain_generic(tx.conn(), &sql, &binds).await?;
                break;
            }
            rows = binds.bind(sqlx::query(&sql)).fetch_all(tx.conn()).await?;
            // An iterative scan that gave up short of the list's length: scan exactly.
            if scan != VectorScan::IndexedOneModel || vector_found(&rows)? >= vector_limit {
                break;
            }
        }
        tx.commit().await?;
        Ok((candidates, rows))
    }
}

#[cfg(test)]
mod tests {
    use super::Candidates;

    #[test]
    fn the_statement_marks_matches_as_the_span_narrowing_reads_them() {
        use super::super::cjk::{START_MARK, STOP_MARK};
        assert!(super::SEARCH.contains(&format!("StartSel={START_MARK}, StopSel={STOP_MARK}")));
    }

    fn counts(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
        pairs.iter().map(|(l, n)| ((*l).to_owned(), *n)).collect()
    }

    #[test]
    fn the_rarest_lexemes_are_the_candidates() {
        let c = counts(&[("refund", 40), ("the", 90_000), ("days", 700), ("zebra", 0)]);
        assert_eq!(
            Candidates::choose("refund the days zebra", c, 1000, 100_000.0),
            Candidates::AnyOf(vec!["refund".into(), "days".into()])
        );
        let common = counts(&[("a", 5000), ("b", 3000), ("c", 9000), ("d", 4000)]);
        assert_eq!(
            Candidates::choose("a b c d", common, 1000, -1.0),
            Candidates::AllOf(vec!["b".into(), "d".into(), "a".into()])
        );
        assert_eq!(Candidates::choose("\"exact phrase\"", Vec::new(), 1000, 10.0), Candidates::Phrase);
        assert_eq!(Candidates::choose("nothing", counts(&[("nothing", 0)]), 1000, 10.0), Candidates::AnyOf(Vec::new()));
    }

    #[test]
    fn common_words_found_together_in_few_chunks_are_read_in_one_scan() {
        // Seven words, each in 23 % of 100,000 chunks: the three rarest are together in
        // about 1,200, fewer rows to read than the 161,000 postings of every word.
        let words = ["w1", "w2", "w3", "w4", "w5", "w6", "w7"];
        let seven: Vec<(String, i64)> = words.iter().zip(23_000..).map(|(w, n)| ((*w).to_owned(), n)).collect();
        let rarest = vec!["w1".to_owned(), "w2".into(), "w3".into()];
        assert_eq!(Candidates::choose("q", seven.clone(), 500, 100_000.0), Candidates::AllOfFew(rarest.clone()));
        // Not when the table's size is not known yet, nor when one word is in no chunk
        // (then no chunk has every word, and that index scan ends at once).
        assert_eq!(Candidates::choose("q", seven.clone(), 500, -1.0), Candidates::AllOf(rarest.clone()));
        let mut absent = seven;
        absent.push(("w8".into(), 0));
        assert_eq!(Candidates::choose("q", absent, 500, 100_000.0), Candidates::AllOf(rarest));
        // Three words in 80–95 % of 10,000 chunks are together in ~6,800: reading those
        // costs more than 26,500 postings.
        let dense = counts(&[("x", 8000), ("y", 9000), ("z", 9500)]);
        assert_eq!(
            Candidates::choose("q", dense, 500, 10_000.0),
            Candidates::AllOf(vec!["x".into(), "y".into(), "z".into()])
        );
    }
}
