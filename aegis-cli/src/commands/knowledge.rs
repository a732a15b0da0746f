//! `aegis ingest`, `aegis search`, `aegis docs list | delete`, `aegis extract`.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use crate::output::outln;
use aegis_core::{
    config::Config,
    knowledge::{
        IngestOutcome, SearchOptions, collect_files,
        extract::{
            Format, PdfReader,
            isolate::{Isolation, extract_file},
        },
    },
    tenancy::TenantId,
};

use crate::{cli::DocsAction, output};

pub async fn ingest(
    config: Config,
    tenant: &str,
    paths: &[PathBuf],
    json: bool,
    prune: bool,
) -> anyhow::Result<ExitCode> {
    TenantId::parse(tenant)?;
    let files = collect_files(paths)?;
    let (aegis, scope) = super::scope_of(config, tenant).await?;
    let mut outcomes = aegis
        .knowledge()
        .ingest_files(&scope, files, |progress, outcome| {
            if !json {
                let (mark, key) = (outcome.status(), outcome.source_key());
                let width = 30;
                let filled = progress.done * width / progress.total.max(1);
                eprint!(
                    "\r[{}{}] {}/{} {mark:<9} {key:.60}\x1b[K",
                    "#".repeat(filled),
                    " ".repeat(width - filled),
                    progress.done,
                    progress.total
                );
                let _ = std::io::stderr().flush();
            }
        })
        .await;
    if !json {
        eprintln!();
    }
    if prune {
        if outcomes.is_empty() {
            anyhow::bail!(
                "no file was found under the paths given: --prune would delete every document; nothing deleted"
            );
        }
        let keep: std::collections::BTreeSet<String> = outcomes.iter().map(|o| o.source_key().to_owned()).collect();
        let removed = aegis.knowledge().prune(&scope, &keep).await?;
        outcomes.extend(removed.into_iter().map(|source_key| IngestOutcome::Removed { source_key }));
    }
    let failed: Vec<&IngestOutcome> = outcomes.iter().filter(|o| matches!(o, IngestOutcome::Failed { .. })).collect();
    if json {
        output::json(&outcomes)?;
    } else {
        let stored = outcomes.iter().filter(|o| matches!(o, IngestOutcome::Stored { .. })).count();
        let unchanged = outcomes.iter().filter(|o| matches!(o, IngestOutcome::Unchanged { .. })).count();
        for outcome in &outcomes {
            if let IngestOutcome::Stored { source_key, notes, .. } = outcome {
                for note in notes {
                    outln!("note   {source_key}: {note}");
                }
            }
        }
        for outcome in &failed {
            if let IngestOutcome::Failed { source_key, error, .. } = outcome {
                outln!("failed {source_key}: {error}");
            }
        }
        let mut removed = 0;
        for outcome in &outcomes {
            if let IngestOutcome::Removed { source_key } = outcome {
                let why = if prune { "not among the files ingested" } else { "its archive no longer holds it" };
                outln!("removed {source_key}: {why}");
                removed += 1;
            }
        }
        // An archive counts as the files in it.
        let files = outcomes.len() - removed;
        let removed = if removed > 0 { format!(", {removed} removed") } else { String::new() };
        outln!("{files} files: {stored} stored, {unchanged} unchanged, {} failed{removed}", failed.len());
    }
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

pub async fn search(
    config: Config,
    tenant: &str,
    query: &str,
    k: usize,
    mode: &str,
    documents: Vec<String>,
    (json, explain): (bool, bool),
) -> anyhow::Result<ExitCode> {
    let mode = mode.parse().map_err(anyhow::Error::msg)?;
    let (aegis, scope) = super::scope_of(config, tenant).await?;
    let options = SearchOptions { k, mode, documents: (!documents.is_empty()).then_some(documents) };
    if explain {
        for line in aegis.knowledge().explain_search(&scope, query, &options).await? {
            outln!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let hits = aegis.knowledge().search(&scope, query, &options).await?;
    if json {
        output::json(&hits)?;
    } else if hits.is_empty() {
        outln!("no hits");
    } else {
        for (i, hit) in hits.iter().enumerate() {
            outln!("{:>2}. {} ({})  score {:.4}", i + 1, hit.source_key, hit.anchor, hit.score);
            outln!("    {}", hit.span.replace('\n', " "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn docs(config: Config, action: DocsAction) -> anyhow::Result<ExitCode> {
    match action {
        DocsAction::List { tenant, json } => {
            let (aegis, scope) = super::scope_of(config, &tenant).await?;
            let docs = aegis.knowledge().list(&scope).await?;
            if json {
                output::json(&docs)?;
            } else {
                let rows: Vec<Vec<String>> = docs
                    .iter()
                    .map(|d| {
                        vec![
                            d.source_key.clone(),
                            d.format.clone(),
                            d.version.to_string(),
                            d.chunks.to_string(),
                            d.bytes.to_string(),
                            d.updated_at.format("%Y-%m-%d %H:%M").to_string(),
                        ]
                    })
                    .collect();
                output::table(&["document", "format", "version", "chunks", "bytes", "updated"], &rows);
            }
        }
        DocsAction::Delete { tenant, document } => {
            let (aegis, scope) = super::scope_of(config, &tenant).await?;
            aegis.knowledge().delete(&scope, &document).await?;
            outln!("deleted {document}");
        }
        DocsAction::TextSearch { tenant, name: None } => {
            let (aegis, scope) = super::scope_of(config, &tenant).await?;
            outln!("{}", aegis.knowledge().text_search_config(&scope).await?);
        }
        DocsAction::TextSearch { tenant, name: Some(name) } => {
            let (aegis, scope) = super::scope_of(config, &tenant).await?;
            let change = aegis.knowledge().set_text_search_config(&scope, &name).await?;
            if change.previous == change.current {
                outln!("already {}", change.current);
            } else {
                outln!("{} → {}: {} chunks re-tokenised", change.previous, change.current, change.chunks);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn extract(config: &Config, path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    // All of it, to look inside a package; a file past the size limit is refused by the
    // extraction anyway.
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bytes =
        if size <= config.knowledge.limits.max_file_bytes { std::fs::read(path).unwrap_or_default() } else { vec![] };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let format =
        Format::detect(&name, &bytes).ok_or_else(|| anyhow::anyhow!("`{}`: unsupported format", path.display()))?;
    drop(bytes);
    let isolation = Isolation::current_exe_worker().unwrap_or(Isolation::InProcess);
    let pdf = match format {
        Format::Pdf => config.knowledge.pdf.resolve_blocking(&config.cache_dir()).await.map_err(anyhow::Error::msg)?,
        _ => PdfReader::Lopdf,
    };
    let extracted = extract_file(&isolation, format, path, &config.knowledge.limits, &pdf).await?;
    if json {
        output::json(&extracted)?;
    } else {
        for section in &extracted.sections {
            outln!("--- {} [{}]", section.anchor, format!("{:?}", section.kind).to_lowercase());
            outln!("{}", section.text);
        }
        for note in &extracted.notes {
            outln!("note: {note}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
