//! Tenancy benchmarks: provisioning time per tenant, `aegis migrate` over every tenant, the
//! cost of a `TenantTx` against a plain transaction, and `aegis serve` readiness on an
//! existing cluster. See benches/README.md.
//!
//! `cargo run --release -p aegis-benches --bin bench-tenancy -- --tenants 1000 [--aegis-bin target/release/aegis]`

use std::{
    borrow::Cow,
    path::PathBuf,
    time::{Duration, Instant},
};

use aegis_core::{
    Aegis,
    config::Config,
    db::migrate::{Migration, MigrationSet},
    tenancy::{Caller, NewTenant, TenantId, Tier},
};
use common::{Cluster, ms, percentile};

// Shared by the bench binaries; each uses part of it.
#[allow(dead_code)]
mod common;

struct Args {
    tenants: usize,
    parallelism: usize,
    iterations: usize,
    aegis_bin: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args { tenants: 100, parallelism: 4, iterations: 5000, aegis_bin: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--tenants" => args.tenants = value()?.parse()?,
            "--parallelism" => args.parallelism = value()?.parse()?,
            "--iterations" => args.iterations = value()?.parse()?,
            "--aegis-bin" => args.aegis_bin = Some(value()?.into()),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let cluster = Cluster::start().await?;
    let result = run(&args, &cluster.config).await;
    cluster.stop().await?;
    result
}

async fn run(args: &Args, config: &Config) -> anyhow::Result<()> {
    let config = config.clone();
    let aegis = Aegis::builder().config(config.clone()).build().await?;
    let db = aegis.db().clone();
    let size_before: i64 =
        sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(db.pool()).await?;

    // 1. Provisioning, one tenant after another.
    let caller = Caller::system("bench");
    let mut times = Vec::with_capacity(args.tenants);
    let total = Instant::now();
    for i in 0..args.tenants {
        let new = NewTenant { id: TenantId::parse(&format!("b{i:05}"))?, tier: Tier::ALL[i % 5], name: None };
        let t = Instant::now();
        aegis.tenants().create(&new, &caller).await?;
        times.push(t.elapsed());
    }
    let total = total.elapsed();
    times.sort();
    let size_after: i64 =
        sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(db.pool()).await?;
    println!("\n## provisioning {} tenants (sequential)", args.tenants);
    println!(
        "total {}  mean {}  p50 {}  p95 {}  p99 {}  max {}",
        ms(total),
        ms(total / args.tenants as u32),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.95)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().unwrap_or(&Duration::ZERO))
    );
    println!("database size grew by {:.1} MB", (size_after - size_before) as f64 / 1e6);

    // 2. `aegis migrate` with one new migration (a table, two indexes) for every tenant.
    let v2 = MigrationSet::tenant().with(Migration {
        version: 1000,
        name: Cow::Borrowed("bench_notes"),
        sql: Cow::Borrowed(
            "CREATE TABLE bench_notes (id bigserial PRIMARY KEY, title text NOT NULL, body text, created_at timestamptz NOT NULL DEFAULT now()); \
             CREATE INDEX bench_notes_title ON bench_notes (title); CREATE INDEX bench_notes_created ON bench_notes (created_at);",
        ),
    })?;
    let upgraded = Aegis::builder().config(config.clone()).tenant_migrations(v2).build().await?;
    let t = Instant::now();
    let report = upgraded.migrate(args.parallelism, &caller).await?;
    let took = t.elapsed();
    println!("\n## aegis migrate: {} tenants, parallelism {}", report.tenants.tenants.len(), args.parallelism);
    println!(
        "total {}  per tenant {}  upgraded {}  failed {}",
        ms(took),
        ms(took / report.tenants.tenants.len().max(1) as u32),
        report.tenants.upgraded(),
        report.tenants.failed()
    );

    // 3. TenantTx against a plain transaction doing the same query, interleaved.
    let scope = aegis.tenants().scope(&TenantId::parse("b00000")?, caller.clone()).await?;
    let (mut tenant_tx, mut plain_tx) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..args.iterations {
        let t = Instant::now();
        let mut tx = scope.begin().await?;
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM settings").fetch_one(tx.conn()).await?;
        tx.commit().await?;
        tenant_tx += t.elapsed();

        let t = Instant::now();
        let mut tx = db.begin_platform().await?;
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM tenant_b00000.settings").fetch_one(&mut *tx).await?;
        tx.commit().await?;
        plain_tx += t.elapsed();
    }
    let n = args.iterations as f64;
    println!("\n## TenantTx vs plain transaction ({} iterations each: BEGIN, one SELECT, COMMIT)", args.iterations);
    println!(
        "TenantTx {:.1} µs/op  plain {:.1} µs/op  overhead {:+.1} µs/op",
        tenant_tx.as_secs_f64() * 1e6 / n,
        plain_tx.as_secs_f64() * 1e6 / n,
        (tenant_tx.as_secs_f64() - plain_tx.as_secs_f64()) * 1e6 / n
    );

    if let Some(bin) = &args.aegis_bin {
        serve_ready(bin, &config).await?;
    }
    Ok(())
}

/// Time from spawning `aegis serve` (the cluster already running) to `/readyz` answering 200.
async fn serve_ready(bin: &PathBuf, config: &Config) -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let t = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .arg("--data-dir")
        .arg(&config.data_dir)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .kill_on_drop(true)
        .spawn()?;
    loop {
        if let Ok(r) = http.get(&url).send().await
            && r.status() == 200
        {
            break;
        }
        anyhow::ensure!(t.elapsed() < Duration::from_secs(30), "aegis serve not ready after 30 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("\n## aegis serve ready (embedded cluster already running): {}", ms(t.elapsed()));
    child.kill().await?;
    Ok(())
}
