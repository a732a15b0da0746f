//! Knowledge-base search at scale: N chunks (default 100,000) of corpus text in one tenant,
//! embedded by the offline embedder, then hybrid, vector and keyword searches through the
//! production path (`Knowledge::search`: query embedding, decision row, tenant
//! transaction) beside the raw pgvector top-10 query and an exact scan (for recall@10).
//!
//! `cargo run --release -p aegis-benches --bin bench-knowledge -- [--chunks 100000] [--queries 300] [--ef-search 100,200] [--text-search english]`
//!
//! `--text-search <config>` then changes the tenant's text-search configuration and times
//! it (every chunk re-tokenised, the lexeme statistics recounted, the vector index rebuilt).
//!
//! Chunk texts are 60-word windows at pseudo-random offsets of the shared corpus's ground
//! truth texts (`../shared/corpus/generated/*/*.txt`), so vectors come from real word
//! distributions, not random numbers. The HNSW index is built after the bulk load, as
//! DESIGN.md advises for a large first load.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use aegis_core::{
    Aegis,
    knowledge::{SearchMode, SearchOptions},
    llm::offline::OfflineEmbedder,
    tenancy::{Caller, NewTenant, TenantId, Tier},
};
use common::{Cluster, ms, percentile};

// Shared by the bench binaries; each uses part of it.
#[allow(dead_code)]
mod common;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn corpus_words() -> anyhow::Result<Vec<String>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/generated");
    let mut words = Vec::new();
    for dir in ["pdf", "docx", "xlsx", "pptx"] {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(root.join(dir))?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        files.sort();
        for file in files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "txt")) {
            words.extend(std::fs::read_to_string(file)?.split_whitespace().map(str::to_owned));
        }
    }
    anyhow::ensure!(words.len() > 1000, "the corpus texts are missing");
    Ok(words)
}

fn window(words: &[String], rng: &mut Rng, len: usize) -> String {
    let start = (rng.next() as usize) % (words.len() - len);
    words[start..start + len].join(" ")
}

/// A line of an `EXPLAIN` for the terminal: a node nested deeper than 24 columns shows its
/// depth as a number instead of its indentation, so that its timings still fit.
fn plan_line(line: &str) -> String {
    let text = line.trim_start();
    let depth = line.len() - text.len();
    let text: String = text.chars().take(150).collect();
    if depth <= 24 { format!("  {}{text}", " ".repeat(depth)) } else { format!("  [{depth}] {text}") }
}

fn report(name: &str, times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    let (p50, p99) = (percentile(times, 0.5), percentile(times, 0.99));
    println!(
        "{name:<32} p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms",
        p50.as_secs_f64() * 1e3,
        percentile(times, 0.9).as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    (p50, p99)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut chunks = 100_000usize;
    let mut queries = 300usize;
    let mut ef_searches: Vec<u32> = Vec::new();
    let mut ef_construction = None;
    let mut text_search = None;
    let mut hold = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--chunks" => chunks = args.next().unwrap_or_default().parse()?,
            "--queries" => queries = args.next().unwrap_or_default().parse()?,
            "--ef-search" => {
                ef_searches =
                    args.next().unwrap_or_default().split(',').map(str::parse).collect::<Result<Vec<u32>, _>>()?
            }
            "--ef-construction" => ef_construction = Some(args.next().unwrap_or_default().parse()?),
            "--text-search" => text_search = args.next(),
            "--hold" => hold = true,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    let cluster = Cluster::start().await?;
    let result = run(&cluster, chunks, queries, &ef_searches, ef_construction, text_search.as_deref()).await;
    if hold {
        println!("\nholding the cluster at {} (schema tenant_bench); a line on stdin stops it", cluster.url);
        std::io::stdin().read_line(&mut String::new())?;
    }
    cluster.stop().await?;
    result
}

async fn run(
    cluster: &Cluster,
    n: usize,
    queries: usize,
    ef_searches: &[u32],
    ef_construction: Option<u32>,
    text_search: Option<&str>,
) -> anyhow::Result<()> {
    let aegis = Aegis::builder().config(cluster.config.clone()).build().await?;
    let id = TenantId::parse("bench")?;
    aegis
        .tenants()
        .create(&NewTenant { id: id.clone(), tier: Tier::Pro, name: None }, &Caller::system("bench"))
        .await?;
    let scope = aegis.tenants().scope(&id, Caller::system("bench")).await?;
    let words = corpus_words()?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let texts: Vec<String> = (0..n).map(|_| window(&words, &mut rng, 60)).collect();
    let t = Instant::now();
    let vectors: Vec<pgvector::Vector> =
        texts.iter().map(|t| pgvector::Vector::from(OfflineEmbedder::embed_one(t))).collect();
    println!(
        "{n} chunks from {} corpus words; embedded in {} ({:.0} chunks/s)",
        words.len(),
        ms(t.elapsed()),
        n as f64 / t.elapsed().as_secs_f64()
    );

    // Bulk load as the owner, index built afterwards. This pool puts `ext` (pgvector's
    // schema) on the path so vectors can be bound outside a tenant transaction.
    let options = std::str::FromStr::from_str(&cluster.url)
        .map(|o: sqlx::postgres::PgConnectOptions| o.options([("search_path", "public,ext")]))?;
    let owner = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect_with(options).await?;
    let pool = &owner;
    let doc = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO tenant_bench.documents (id, source_key, title, format, content_hash, version, bytes, chunks, created_at, updated_at) VALUES ($1, 'bench-corpus', 'bench', 'text', 'x', 1, 0, $2, now(), now())")
        .bind(doc)
        .bind(i32::try_from(n)?)
        .execute(pool)
        .await?;
    // The production index (as the tenant migrations made it) is dropped for the bulk load
    // and rebuilt from its own definition, with the construction depth asked for.
    let index_sql: String =
        sqlx::query_scalar("SELECT pg_get_indexdef('tenant_bench.chunks_embedding_hnsw'::regclass)")
            .fetch_one(pool)
            .await?;
    let index_sql = match ef_construction {
        Some(depth) => with_ef_construction(&index_sql, depth)?,
        None => index_sql,
    };
    sqlx::query("DROP INDEX tenant_bench.chunks_embedding_hnsw").execute(pool).await?;
    let t = Instant::now();
    for (i, batch) in texts.chunks(2000).enumerate() {
        let start = i * 2000;
        insert_chunks(pool, doc, start, batch, &vectors[start..start + batch.len()]).await?;
    }
    println!("loaded in {}", ms(t.elapsed()));
    let t = Instant::now();
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql("SET maintenance_work_mem = '1GB'; SET max_parallel_maintenance_workers = 1")
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql(&index_sql).execute(&mut *conn).await?;
    sqlx::raw_sql("ANALYZE tenant_bench.chunks").execute(&mut *conn).await?;
    println!("{index_sql}\n  built in {}", ms(t.elapsed()));
    let t = Instant::now();
    aegis.knowledge().recount_terms(&scope).await?;
    println!("lexeme statistics counted in {}", ms(t.elapsed()));
    let plan: Vec<(String,)> =
        sqlx::query_as(&format!("EXPLAIN {}", *RAW_TOP10)).bind(&vectors[0]).fetch_all(&mut *conn).await?;
    println!("\nEXPLAIN of the vector top-10:");
    for (line,) in &plan {
        // The plan spells out the query vector; the first part of the line says enough.
        let shown: String = line.chars().take(120).collect();
        println!("  {shown}{}", if line.chars().count() > 120 { " …" } else { "" });
    }
    drop(conn);

    let questions: Vec<String> = (0..queries).map(|_| window(&words, &mut rng, 8)).collect();
    for mode in [SearchMode::Keyword, SearchMode::Hybrid] {
        println!("\nEXPLAIN ANALYZE of a {mode:?} search for {:?}:", questions[0]);
        let options = SearchOptions { k: 10, mode, documents: None };
        for line in aegis.knowledge().explain_search(&scope, &questions[0], &options).await? {
            println!("{}", plan_line(&line));
        }
    }
    measure_inserts(pool, doc, n, &words, &mut rng).await?;
    let defaults = [aegis.config().knowledge.ef_search];
    for &ef_search in if ef_searches.is_empty() { &defaults[..] } else { ef_searches } {
        let mut config = cluster.config.clone();
        config.knowledge.ef_search = ef_search;
        let aegis = Aegis::builder().config(config).build().await?;
        let scope = aegis.tenants().scope(&id, Caller::system("bench")).await?;
        measure(&aegis, &scope, pool, &questions, ef_search).await?;
    }
    if let Some(config) = text_search {
        let t = Instant::now();
        let change = aegis.knowledge().set_text_search_config(&scope, config).await?;
        println!(
            "\ntext-search configuration {} → {}: {} chunks re-tokenised, index rebuilt, in {}",
            change.previous,
            change.current,
            change.chunks,
            ms(t.elapsed())
        );
        let options = SearchOptions { k: 10, mode: SearchMode::Keyword, documents: None };
        let mut times = Vec::new();
        for q in &questions {
            let t = Instant::now();
            aegis.knowledge().search(&scope, q, &options).await?;
            times.push(t.elapsed());
        }
        report(&format!("keyword search ({config})"), &mut times);
    }
    Ok(())
}

/// Inserts chunks `start..` of the bench's document, texts and vectors side by side.
async fn insert_chunks(
    pool: &sqlx::PgPool,
    doc: uuid::Uuid,
    start: usize,
    texts: &[String],
    vectors: &[pgvector::Vector],
) -> anyhow::Result<()> {
    let ids: Vec<uuid::Uuid> = texts.iter().map(|_| uuid::Uuid::now_v7()).collect();
    let ordinals: Vec<i32> = (start..start + texts.len()).map(|o| i32::try_from(o).unwrap_or(i32::MAX)).collect();
    sqlx::query(
        "INSERT INTO tenant_bench.chunks (id, document_id, version, ordinal, text, anchor, tsv, embedding, embedding_model) \
         SELECT u.id, $1, 1, u.ordinal, u.text, '{}'::jsonb, to_tsvector('simple', tenant_bench.kb_fold(u.text)), u.embedding, $5 \
         FROM UNNEST($2::uuid[], $3::int[], $4::text[], $6::ext.vector[]) AS u(id, ordinal, text, embedding)",
    )
    .bind(doc)
    .bind(&ids)
    .bind(&ordinals)
    .bind(texts)
    .bind(aegis_core::llm::offline::OFFLINE_MODEL_ID)
    .bind(vectors)
    .execute(pool)
    .await?;
    Ok(())
}

/// What an ingest pays per chunk once the index exists: 500 more chunks inserted into the
/// indexed table in statements of 50 (HNSW at its construction depth, GIN, btrees).
async fn measure_inserts(
    pool: &sqlx::PgPool,
    doc: uuid::Uuid,
    n: usize,
    words: &[String],
    rng: &mut Rng,
) -> anyhow::Result<()> {
    const EXTRA: usize = 500;
    let texts: Vec<String> = (0..EXTRA).map(|_| window(words, rng, 60)).collect();
    let vectors: Vec<pgvector::Vector> =
        texts.iter().map(|t| pgvector::Vector::from(OfflineEmbedder::embed_one(t))).collect();
    let t = Instant::now();
    for (i, batch) in texts.chunks(50).enumerate() {
        let start = i * 50;
        insert_chunks(pool, doc, n + start, batch, &vectors[start..start + batch.len()]).await?;
    }
    let took = t.elapsed();
    println!(
        "\n{EXTRA} chunks inserted into the indexed table in {}: {:.2} ms per chunk",
        ms(took),
        took.as_secs_f64() * 1000.0 / EXTRA as f64
    );
    Ok(())
}

/// pgvector's own top-10 on the production index: the baseline.
static RAW_TOP10: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let distance = aegis_core::knowledge::INDEXED_DISTANCE;
    format!("SELECT c.id FROM tenant_bench.chunks c ORDER BY {distance} LIMIT 10")
});

/// The index definition `pg_get_indexdef` gave, with another `ef_construction`.
fn with_ef_construction(definition: &str, ef_construction: u32) -> anyhow::Result<String> {
    let at =
        definition.find("ef_construction='").ok_or_else(|| anyhow::anyhow!("no ef_construction in {definition}"))?;
    let value_start = at + "ef_construction='".len();
    let value_end = value_start
        + definition[value_start..].find('\'').ok_or_else(|| anyhow::anyhow!("unterminated ef_construction"))?;
    Ok(format!("{}{ef_construction}{}", &definition[..value_start], &definition[value_end..]))
}

/// Runs every question on every path at one `ef_search` and prints the figures.
async fn measure(
    aegis: &Aegis,
    scope: &aegis_core::tenancy::TenantScope,
    pool: &sqlx::PgPool,
    questions: &[String],
    ef_search: u32,
) -> anyhow::Result<()> {
    let queries = questions.len();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tenant_bench.chunks").fetch_one(pool).await?;
    let (mut raw, mut exact_t, mut hybrid, mut vector, mut keyword) = (vec![], vec![], vec![], vec![], vec![]);
    let mut recall_sum = 0.0;
    let mut slowest_keyword: Option<(Duration, String)> = None;
    // The exact scans (the recall baseline) first, in a pass of their own: each reads every
    // row and would evict the shared buffers between the timed searches.
    let mut exacts = Vec::with_capacity(queries);
    for q in questions {
        let v = pgvector::Vector::from(OfflineEmbedder::embed_one(q));
        let t = Instant::now();
        let exact: Vec<(uuid::Uuid,)> =
            sqlx::query_as("SELECT id FROM tenant_bench.chunks ORDER BY (embedding <=> $1) + 0 LIMIT 10")
                .bind(&v)
                .fetch_all(pool)
                .await?;
        exact_t.push(t.elapsed());
        exacts.push(exact);
    }
    for (q, exact) in questions.iter().zip(&exacts) {
        let v = pgvector::Vector::from(OfflineEmbedder::embed_one(q));
        // Baseline: the raw pgvector top-10 in a transaction with the same ef_search.
        let t = Instant::now();
        let mut conn = pool.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::query("SELECT set_config('hnsw.ef_search', $1, true)")
            .bind(ef_search.to_string())
            .execute(&mut *tx)
            .await?;
        let _: Vec<(uuid::Uuid,)> = sqlx::query_as(&RAW_TOP10).bind(&v).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        raw.push(t.elapsed());

        let options = |mode| SearchOptions { k: 10, mode, documents: None };
        let t = Instant::now();
        let hits = aegis.knowledge().search(scope, q, &options(SearchMode::Vector)).await?;
        vector.push(t.elapsed());
        let found = hits.iter().filter(|h| exact.iter().any(|(id,)| *id == h.chunk_id)).count();
        recall_sum += found as f64 / exact.len().max(1) as f64;
        let t = Instant::now();
        aegis.knowledge().search(scope, q, &options(SearchMode::Hybrid)).await?;
        hybrid.push(t.elapsed());
        let t = Instant::now();
        aegis.knowledge().search(scope, q, &options(SearchMode::Keyword)).await?;
        keyword.push(t.elapsed());
        if slowest_keyword.as_ref().is_none_or(|(d, _)| t.elapsed() > *d) {
            slowest_keyword = Some((t.elapsed(), q.clone()));
        }
    }
    println!(
        "\n## {queries} queries over {n} chunks, k = 10, ef_search {ef_search}, {} candidates per list",
        10 * aegis.config().knowledge.candidates_per_hit
    );
    let (_, raw99) = report("raw pgvector top-10 (baseline)", &mut raw);
    report("exact scan top-10", &mut exact_t);
    report("vector search (production path)", &mut vector);
    let (_, hybrid99) = report("hybrid search (production path)", &mut hybrid);
    report("keyword search (production path)", &mut keyword);
    println!("recall@10 of vector search against the exact scan: {:.3}", recall_sum / queries as f64);
    println!("hybrid p99 / raw top-10 p99: {:.2}×", hybrid99.as_secs_f64() / raw99.as_secs_f64().max(1e-9));
    if let Some((took, q)) = slowest_keyword {
        println!("\nEXPLAIN ANALYZE of the slowest keyword search ({}) for {q:?}:", ms(took));
        let options = SearchOptions { k: 10, mode: SearchMode::Keyword, documents: None };
        for line in aegis.knowledge().explain_search(scope, &q, &options).await? {
            println!("{}", plan_line(&line));
        }
    }
    Ok(())
}
