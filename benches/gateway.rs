//! Gateway overhead: the same loopback upstream called directly and through `aegis serve`
//! (API key check, policy decision row, ledger row — the production path), open-loop at a
//! fixed request rate. Reports p50/p90/p99 latency of both, the difference, the gateway
//! process's CPU per request and its peak RSS; a metered alias (reservation and settlement
//! on the request path) is measured separately.
//!
//! `cargo run --release -p aegis-benches --bin bench-gateway -- --aegis-bin target/release/aegis [--rps 1000] [--seconds 10]`
//!
//! `--other <base-url>` also measures another OpenAI-compatible proxy pointed at the same
//! upstream (`--upstream-port` fixes the upstream's port so it can be configured first;
//! `--other-pid` reports that proxy's CPU per request and RSS, its process tree summed;
//! `--other-rps` drives it, and the upstream again as its baseline, at another rate).
//! `benches/litellm.sh` runs it against LiteLLM's proxy.
//!
//! The floor: a pass-through proxy on the same HTTP stack (an axum server, the provider
//! clients' hyper transport `aegis_core::llm::openai::ProviderHttp`, the gateway's runtime
//! threads on the same CPUs, in a process of its own) that forwards each request's bytes to
//! the upstream and the answer's bytes back — no key, no policy, no JSON, no logs. Whatever
//! CPU and latency it adds, any proxy on this machine adds at least; AEGIS's own cost is
//! what it adds above that.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aegis_core::{
    Aegis,
    auth::{NewApiKey, Scope, reveal},
    llm::openai::ProviderHttp,
    tenancy::{Caller, NewTenant, TenantId, Tier},
};
use axum::{Json, Router, routing::post};
use common::{Cluster, ms, percentile};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

// Shared by the bench binaries; each uses part of it.
#[allow(dead_code)]
mod common;

struct Args {
    aegis_bin: PathBuf,
    rps: u64,
    seconds: u64,
    upstream_port: u16,
    other: Option<String>,
    other_pid: Option<u32>,
    other_rps: Option<u64>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        aegis_bin: "target/release/aegis".into(),
        rps: 1000,
        seconds: 10,
        upstream_port: 0,
        other: None,
        other_pid: None,
        other_rps: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--aegis-bin" => args.aegis_bin = value()?.into(),
            "--rps" => args.rps = value()?.parse()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--upstream-port" => args.upstream_port = value()?.parse()?,
            "--other" => args.other = Some(value()?),
            "--other-pid" => args.other_pid = Some(value()?.parse()?),
            "--other-rps" => args.other_rps = Some(value()?.parse()?),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

const ANSWER: &str = r#"{"id":"up","object":"chat.completion","created":1,"model":"loop-1","choices":[{"index":0,"message":{"role":"assistant","content":"pong"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}}"#;

async fn upstream(port: u16) -> anyhow::Result<u16> {
    let answer: Value = serde_json::from_str(ANSWER)?;
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let a = answer.clone();
            async move { Json(a) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(port)
}

/// Process CPU seconds (user + system) and peak RSS in MB, from /proc.
fn process_usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // After the ')' : state is field 0, utime 11, stime 12 (in clock ticks, 100/s here).
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, hwm / 1024.0)
}

/// [`process_usage`] summed over `pid` and its descendants (a proxy with worker processes).
fn tree_usage(pid: u32) -> (f64, f64) {
    let parent_of = |p: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        stat.rsplit(')').next()?.split_whitespace().nth(1)?.parse().ok()
    };
    let in_tree = |mut p: u32| loop {
        if p == pid {
            return true;
        }
        match parent_of(p) {
            Some(parent) if parent > 1 => p = parent,
            _ => return false,
        }
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| in_tree(*p))
        .map(process_usage)
        .fold((0.0, 0.0), |(c, r), (cpu, rss)| (c + cpu, r + rss))
}

struct Run {
    /// Latencies of the answered requests, sorted.
    latencies: Vec<Duration>,
    /// (start since the run began, latency) of each answered request, in answer order.
    timeline: Vec<(Duration, Duration)>,
    errors: usize,
}

/// Open loop: one request every 1/rps seconds regardless of answers.
async fn load(http: &reqwest::Client, url: &str, key: &str, model: &str, rps: u64, seconds: u64) -> Run {
    let body =
        json!({ "model": model, "messages": [{ "role": "user", "content": "ping" }], "max_tokens": 8 }).to_string();
    let results = Arc::new(Mutex::new(Run { latencies: Vec::new(), timeline: Vec::new(), errors: 0 }));
    let begun = Instant::now();
    let total = rps * seconds;
    let period = Duration::from_nanos(1_000_000_000 / rps.max(1));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..total {
        ticker.tick().await;
        let (http, url, key, body, results) =
            (http.clone(), url.to_owned(), key.to_owned(), body.clone(), results.clone());
        tasks.spawn(async move {
            let t = Instant::now();
            let ok = match http
                .post(&url)
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
            {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            let elapsed = t.elapsed();
            let mut r = results.lock().unwrap_or_else(|e| e.into_inner());
            if ok { r.timeline.push((t - begun, elapsed)) } else { r.errors += 1 }
        });
    }
    while tasks.join_next().await.is_some() {}
    let mut run = std::mem::replace(
        &mut *results.lock().unwrap_or_else(|e| e.into_inner()),
        Run { latencies: Vec::new(), timeline: Vec::new(), errors: 0 },
    );
    run.latencies = run.timeline.iter().map(|(_, took)| *took).collect();
    run.latencies.sort();
    run
}

/// Prints a run's percentiles; with `BENCH_TIMELINE_DIR` set, also writes each request's
/// start and latency (microseconds) to `<dir>/<name>.tsv`, to see when the slow ones came.
fn report(name: &str, run: &Run) -> (Duration, Duration) {
    if let Ok(dir) = std::env::var("BENCH_TIMELINE_DIR") {
        let file: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        let rows: String =
            run.timeline.iter().map(|(at, took)| format!("{}\t{}\n", at.as_micros(), took.as_micros())).collect();
        if let Err(err) = std::fs::write(std::path::Path::new(&dir).join(format!("{file}.tsv")), rows) {
            eprintln!("cannot write the timeline: {err}");
        }
    }
    let (p50, p90, p99) =
        (percentile(&run.latencies, 0.5), percentile(&run.latencies, 0.9), percentile(&run.latencies, 0.99));
    println!(
        "{name:<28} n={:<6} errors={:<4} p50 {:>8}  p90 {:>8}  p99 {:>8}  max {:>8}",
        run.latencies.len(),
        run.errors,
        format!("{:.3} ms", p50.as_secs_f64() * 1e3),
        format!("{:.3} ms", p90.as_secs_f64() * 1e3),
        format!("{:.3} ms", p99.as_secs_f64() * 1e3),
        ms(*run.latencies.last().unwrap_or(&Duration::ZERO))
    );
    (p50, p99)
}

/// The pass-through proxy (run as `bench-gateway --passthrough <upstream-port>
/// <listen-port>`): forwards bytes both ways, nothing else.
async fn passthrough(upstream_port: u16, listen_port: u16) -> anyhow::Result<()> {
    let uri: http::Uri = format!("http://127.0.0.1:{upstream_port}/v1/chat/completions").parse()?;
    let transport = ProviderHttp::new(Duration::from_secs(10)).transport(&uri);
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |body: axum::body::Bytes| {
            let (transport, uri) = (transport.clone(), uri.clone());
            async move {
                let request = || {
                    let mut request = http::Request::new(Full::new(body.clone()));
                    *request.method_mut() = http::Method::POST;
                    *request.uri_mut() = uri.clone();
                    request.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
                    request
                };
                let answer = match transport.send(request).await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        r.into_body().collect().await.map(|body| (status, body.to_bytes())).map_err(|_| ())
                    }
                    Err(_) => Err(()),
                };
                match answer {
                    Ok((status, bytes)) => axum::http::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(axum::body::Body::from(bytes))
                        .unwrap_or_default(),
                    Err(()) => {
                        axum::http::Response::builder().status(502).body(axum::body::Body::empty()).unwrap_or_default()
                    }
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", listen_port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// The server settings `aegis serve` runs with here (defaults and `AEGIS_SERVER__*`), which
/// the pass-through floor copies: the same runtime threads on the same CPUs.
fn server_config() -> aegis_core::config::ServerConfig {
    aegis_core::config::Config::load(None, &Default::default()).map(|c| c.server).unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some("--passthrough") {
        let port = |i: usize| raw.get(i).and_then(|p| p.parse::<u16>().ok());
        let (Some(upstream), Some(listen)) = (port(2), port(3)) else {
            anyhow::bail!("--passthrough <upstream-port> <listen-port>");
        };
        return server_config().runtime()?.block_on(passthrough(upstream, listen));
    }
    let args = parse_args()?;
    // The load generator and the upstream keep two threads on any CPU, whatever the server
    // runs on.
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(async {
        let cluster = Cluster::start().await?;
        let result = run(&args, &cluster).await;
        cluster.stop().await?;
        result
    })
}

async fn run(args: &Args, cluster: &Cluster) -> anyhow::Result<()> {
    let port = upstream(args.upstream_port).await?;
    let config_path = cluster.data_dir().join("bench.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"
[workers]
enabled = false
[models.providers.up]
type = "openai"
base_url = "http://127.0.0.1:{port}/v1"
api_key = "upstream-key"
[models.models."up/m1"]
provider = "up"
name = "loop-1"
input_price_per_mtok = 0.5
output_price_per_mtok = 1.5
[models.models."up/p1"]
provider = "up"
name = "loop-1"
premium = true
input_price_per_mtok = 2.5
output_price_per_mtok = 10.0
[models.aliases.up-fast]
models = ["up/m1"]
[models.aliases.up-premium]
models = ["up/p1"]
[models.policy.pro]
chat = ["up-fast"]
[models.policy.business]
chat = ["up-premium", "up-fast"]
"#
        ),
    )?;
    let mut config = aegis_core::config::Config::load(Some(&config_path), &Default::default())?;
    config.database.url = Some(cluster.url.clone().into());
    let aegis = Aegis::builder().config(config).build().await?;
    let op = Caller::system("bench");
    let mut keys = Vec::new();
    for (id, tier) in [("bench_pro", Tier::Pro), ("bench_biz", Tier::Business)] {
        let tenant = TenantId::parse(id)?;
        aegis.tenants().create(&NewTenant { id: tenant.clone(), tier, name: None }, &op).await?;
        let key = aegis
            .api_keys()
            .create(&NewApiKey { tenant, name: "bench".into(), scopes: vec![Scope::Gateway], expires_at: None }, &op)
            .await?;
        keys.push(reveal(&key).to_owned());
    }
    let gateway_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut server = tokio::process::Command::new(&args.aegis_bin)
        .arg("--config")
        .arg(&config_path)
        .args(["--database-url", &cluster.url, "serve", "--bind", &format!("127.0.0.1:{gateway_port}")])
        .kill_on_drop(true)
        .spawn()?;
    let pid = server.id().ok_or_else(|| anyhow::anyhow!("aegis serve exited"))?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(512).tcp_nodelay(true).build()?;
    let ready = format!("http://127.0.0.1:{gateway_port}/readyz");
    while !http.get(&ready).send().await.is_ok_and(|r| r.status().is_success()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let floor_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut floor = tokio::process::Command::new(std::env::current_exe()?)
        .args(["--passthrough", &port.to_string(), &floor_port.to_string()])
        .kill_on_drop(true)
        .spawn()?;
    let floor_pid = floor.id().ok_or_else(|| anyhow::anyhow!("the pass-through proxy exited"))?;
    let floor_url = format!("http://127.0.0.1:{floor_port}/v1/chat/completions");
    while tokio::net::TcpStream::connect(("127.0.0.1", floor_port)).await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let direct_url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let gateway_url = format!("http://127.0.0.1:{gateway_port}/v1/chat/completions");
    // Warm both paths (connections, caches).
    load(&http, &direct_url, "k", "loop-1", 200, 1).await;
    load(&http, &floor_url, "k", "loop-1", 200, 1).await;
    load(&http, &gateway_url, &keys[0], "up-fast", 200, 1).await;
    load(&http, &gateway_url, &keys[1], "up-premium", 200, 1).await;

    let settings = server_config();
    println!(
        "\n## {} rps for {} s, open loop, non-streamed chat completions (gateway and floor: {} runtime threads, {})",
        args.rps,
        args.seconds,
        settings.runtime_threads(),
        match aegis_core::cpus::CpuSplit::for_process(settings.split_cpus) {
            Some(split) =>
                format!("workers on CPUs {:?}, the writers' backends on {:?}", split.runtime, split.database),
            None => "CPUs not split".into(),
        }
    );
    let direct = load(&http, &direct_url, "k", "loop-1", args.rps, args.seconds).await;
    let (d50, d99) = report("upstream directly", &direct);
    let (floor_cpu0, _) = process_usage(floor_pid);
    let through = load(&http, &floor_url, "k", "loop-1", args.rps, args.seconds).await;
    let (floor_cpu1, floor_rss) = process_usage(floor_pid);
    let (f50, f99) = report("pass-through proxy (floor)", &through);
    let postgres = || cluster.postmaster_pid().map(tree_usage).unwrap_or_default().0;
    let (cpu0, pg0) = (process_usage(pid).0, postgres());
    let gateway = load(&http, &gateway_url, &keys[0], "up-fast", args.rps, args.seconds).await;
    let ((cpu1, rss), pg1) = (process_usage(pid), postgres());
    let (g50, g99) = report("gateway, non-metered alias", &gateway);
    let metered = load(&http, &gateway_url, &keys[1], "up-premium", args.rps, args.seconds).await;
    let ((cpu2, rss_metered), pg2) = (process_usage(pid), postgres());
    let (m50, m99) = report("gateway, metered alias", &metered);
    let per = |cpu: f64, run: &Run| cpu * 1e3 / (run.latencies.len() + run.errors).max(1) as f64;
    let added = |at: Duration, baseline: Duration| (at.as_secs_f64() - baseline.as_secs_f64()) * 1e3;
    println!(
        "\nadded latency, pass-through: p50 {:+.3} ms  p99 {:+.3} ms; its CPU per request {:.3} ms, peak RSS {floor_rss:.1} MB",
        added(f50, d50),
        added(f99, d99),
        per(floor_cpu1 - floor_cpu0, &through)
    );
    println!("\nadded latency, non-metered: p50 {:+.3} ms  p99 {:+.3} ms", added(g50, d50), added(g99, d99));
    println!("added latency, metered:     p50 {:+.3} ms  p99 {:+.3} ms", added(m50, d50), added(m99, d99));
    println!(
        "gateway CPU per request: non-metered {:.3} ms, metered {:.3} ms",
        per(cpu1 - cpu0, &gateway),
        per(cpu2 - cpu1, &metered)
    );
    println!(
        "PostgreSQL CPU per request (its decision, ledger and meter writes): non-metered {:.3} ms, metered {:.3} ms",
        per(pg1 - pg0, &gateway),
        per(pg2 - pg1, &metered)
    );
    println!("gateway peak RSS: {rss:.1} MB after the non-metered run, {rss_metered:.1} MB after the metered run");
    if let Some(other) = &args.other {
        let url = format!("{}/chat/completions", other.trim_end_matches('/'));
        let rps = args.other_rps.unwrap_or(args.rps);
        println!("\n## another proxy at {rps} rps for {} s", args.seconds);
        let (b50, b99) = if rps == args.rps {
            (d50, d99)
        } else {
            report("upstream directly", &load(&http, &direct_url, "k", "loop-1", rps, args.seconds).await)
        };
        load(&http, &url, "sk-bench", "loop-1", rps.min(100), 1).await;
        let (cpu0, _) = args.other_pid.map(tree_usage).unwrap_or_default();
        let run = load(&http, &url, "sk-bench", "loop-1", rps, args.seconds).await;
        let (cpu1, rss) = args.other_pid.map(tree_usage).unwrap_or_default();
        let (o50, o99) = report("other proxy", &run);
        println!(
            "added latency, other proxy: p50 {:+.3} ms  p99 {:+.3} ms",
            (o50.as_secs_f64() - b50.as_secs_f64()) * 1e3,
            (o99.as_secs_f64() - b99.as_secs_f64()) * 1e3
        );
        if args.other_pid.is_some() {
            println!("other proxy CPU per request: {:.3} ms; peak RSS {rss:.1} MB", per(cpu1 - cpu0, &run));
        }
    }
    server.kill().await?;
    floor.kill().await?;
    Ok(())
}
