//! `aegis audit runs | show | verify`.

use crate::output::outln;
use std::process::ExitCode;

use aegis_core::{
    audit::{self, Timeline},
    config::Config,
};

use crate::{cli::AuditAction, output};

pub async fn run(config: Config, action: AuditAction) -> anyhow::Result<ExitCode> {
    let (tenant, json) = match &action {
        AuditAction::Runs { tenant, json, .. }
        | AuditAction::Show { tenant, json, .. }
        | AuditAction::Verify { tenant, json } => (tenant.clone(), *json),
    };
    let (_aegis, scope) = super::scope_of(config, &tenant).await?;
    match action {
        AuditAction::Runs { limit, .. } => {
            let runs = audit::recent_runs(&scope, limit).await?;
            if json {
                output::json(&runs)?;
            } else {
                let rows: Vec<Vec<String>> = runs
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            r.started_at.to_rfc3339(),
                            r.kind.clone(),
                            r.agent.clone().unwrap_or_default(),
                            r.outcome.clone(),
                            r.steps.to_string(),
                            (r.tokens_in + r.tokens_out).to_string(),
                        ]
                    })
                    .collect();
                output::table(&["run", "started", "kind", "agent", "outcome", "steps", "tokens"], &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditAction::Show { run, .. } => {
            let timeline = audit::timeline(&scope, run).await?;
            if json {
                output::json(&timeline)?;
            } else {
                print_timeline(&timeline);
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditAction::Verify { .. } => {
            let report = audit::verify(&scope).await?;
            if json {
                output::json(&report)?;
            } else {
                match &report.broken {
                    None => outln!("audit chain intact: {} rows", report.rows),
                    Some(b) => outln!("audit chain BROKEN at row {}: {}", b.seq, b.problem),
                }
            }
            Ok(if report.broken.is_none() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

fn print_timeline(timeline: &Timeline) {
    for entry in &timeline.runs {
        let r = &entry.run;
        let indent = "  ".repeat(usize::try_from(r.depth).unwrap_or(0));
        outln!(
            "{indent}run {} · {} {} · {} · {} steps · {} in / {} out tokens · {} µUSD{} · {} ms",
            r.id,
            r.kind,
            r.agent.as_deref().unwrap_or("-"),
            r.outcome,
            r.steps,
            r.tokens_in,
            r.tokens_out,
            r.cost_micro_usd,
            if r.unpriced_calls > 0 { format!(" (+{} unpriced)", r.unpriced_calls) } else { String::new() },
            r.latency_ms.unwrap_or(0)
        );
        if let Some(routing) = &r.routing {
            outln!("{indent}  routing: {routing}");
        }
        if let Some(error) = &r.error {
            outln!("{indent}  error: {error}");
        }
        for s in &entry.steps {
            let step = &s.step;
            outln!("{indent}  #{} {} {}", step.seq, step.at.to_rfc3339(), step.kind);
            outln!("{indent}    {}", step.detail);
            if let Some(request) = &s.request {
                outln!("{indent}    request {}: {request}", step.request_hash.as_deref().unwrap_or(""));
            }
            if let Some(response) = &s.response {
                outln!("{indent}    response {}: {response}", step.response_hash.as_deref().unwrap_or(""));
            }
        }
        for e in &entry.events {
            outln!("{indent}  event #{} {} {} {}", e.seq, e.event, e.actor, e.data);
        }
    }
}
