//! `aegis agents …`, `aegis chat`, `aegis conversations …`.

use crate::output::{out, outln};
use std::{io::Write, process::ExitCode};

use tokio::io::AsyncBufReadExt;

use aegis_core::{
    Aegis,
    agents::{ChatEvent, ChatReply, InboundMessage, profile},
    config::Config,
    tenancy::{Caller, TenantScope},
};

use super::scope_of;
use crate::{
    cli::{AgentsAction, ChatArgs, ConversationsAction},
    output,
};

pub async fn run(config: Config, action: AgentsAction) -> anyhow::Result<ExitCode> {
    match action {
        AgentsAction::List { tenant, json } => {
            let (aegis, scope) = scope_of(config, &tenant).await?;
            let team = aegis.agents().team(&scope).await?;
            if json {
                let rows: Vec<_> = team
                    .iter()
                    .map(|a| serde_json::json!({ "version": a.version, "profile": a.profile, "tool_notes": a.tools.notes }))
                    .collect();
                output::json(&rows)?;
            } else {
                let rows: Vec<Vec<String>> = team
                    .iter()
                    .map(|a| {
                        vec![
                            a.profile.name.clone(),
                            a.profile.role.clone(),
                            a.profile.default_intent.to_string(),
                            a.version.to_string(),
                            a.profile.tools.join(","),
                        ]
                    })
                    .collect();
                output::table(&["name", "role", "intent", "version", "tools"], &rows);
            }
        }
        AgentsAction::Show { tenant, name, version, json } => {
            let (aegis, scope) = scope_of(config, &tenant).await?;
            let versions = aegis.agents().versions(&scope, &name).await?;
            let chosen = match version {
                Some(v) => versions
                    .iter()
                    .find(|p| p.version == v)
                    .ok_or_else(|| anyhow::anyhow!("agent `{name}` has no version {v}"))?,
                None => versions.last().ok_or_else(|| anyhow::anyhow!("agent `{name}` has no versions"))?,
            };
            if json {
                output::json(chosen)?;
            } else {
                outln!("# {} version {}", chosen.profile.name, chosen.version);
                out!("{}", chosen.profile.to_toml());
            }
        }
        AgentsAction::Versions { tenant, name, json } => {
            let (aegis, scope) = scope_of(config, &tenant).await?;
            let versions = aegis.agents().versions(&scope, &name).await?;
            if json {
                output::json(&versions)?;
            } else {
                let rows: Vec<Vec<String>> = versions
                    .iter()
                    .map(|v| {
                        vec![
                            v.version.to_string(),
                            v.created_at.map_or("-".into(), |t| t.to_rfc3339()),
                            v.created_by.clone(),
                            v.note.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::table(&["version", "created", "by", "note"], &rows);
            }
        }
        AgentsAction::Diff { tenant, name, from, to } => {
            let (aegis, scope) = scope_of(config, &tenant).await?;
            let changes = aegis.agents().diff(&scope, &name, from, to).await?;
            if changes.is_empty() {
                outln!("versions {from} and {to} of {name} are the same");
            }
            for c in changes {
                outln!("{}:", c.path);
                if let Some(old) = c.old {
                    outln!("  - {old}");
                }
                if let Some(new) = c.new {
                    outln!("  + {new}");
                }
            }
        }
        AgentsAction::Revert { tenant, name, version } => {
            let (aegis, scope) = scope_of(config, &tenant).await?;
            let new = aegis.agents().revert(&scope, &name, version).await?;
            outln!("{name}: version {version} is current again as version {new}");
        }
        AgentsAction::Export { tenant, name, out } => {
            let (aegis, scope) = scope_of(config, &tenant).await?;
            let agent = aegis.agents().agent(&scope, &name).await?;
            let text = agent.profile.to_toml();
            match out {
                Some(path) => {
                    std::fs::write(&path, text)?;
                    eprintln!("wrote {} (version {})", path.display(), agent.version);
                }
                None => out!("{text}"),
            }
        }
        AgentsAction::Import { tenant, file } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let profile = profile::parse_profile(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let (aegis, scope) = scope_of(config, &tenant).await?;
            let version = aegis.agents().save_profile(&scope, &profile, "import").await?;
            outln!("{}: imported as version {version}", profile.name);
        }
        AgentsAction::Bind { tenant, agent, channel, thread } => {
            let (aegis, scope) = scope_of(config, &tenant).await?;
            aegis.agents().bind(&scope, &channel, &thread, &agent).await?;
            let place = if thread.is_empty() { channel } else { format!("{channel} thread {thread}") };
            outln!("{place} now goes to {agent}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn default_thread() -> String {
    let user = match Caller::local_operator() {
        Caller::Operator { name } => name,
        other => other.to_string(),
    };
    format!("cli-{}", user.trim_start_matches("cli:"))
}

async fn send(
    aegis: &Aegis,
    scope: &TenantScope,
    args: &ChatArgs,
    text: &str,
    thread: &str,
) -> anyhow::Result<ChatReply> {
    let message = InboundMessage {
        channel: "cli".into(),
        source_id: uuid::Uuid::now_v7().to_string(),
        thread: thread.to_owned(),
        sender: default_thread().trim_start_matches("cli-").to_owned(),
        text: text.to_owned(),
        agent: args.agent.clone(),
        boardroom: args
            .boardroom
            .as_ref()
            .map(|s| s.split(',').map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()).collect()),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let live = !args.json;
    let printer = tokio::spawn(async move {
        let mut streamed = false;
        while let Some(event) = rx.recv().await {
            if !live {
                continue;
            }
            match event {
                ChatEvent::Routed { agent, method, .. } => {
                    eprintln!("[{agent} · {}]", serde_json::to_value(method).unwrap_or_default().as_str().unwrap_or(""))
                }
                ChatEvent::ToolCall { agent, tool, arguments } => eprintln!("[{agent} calls {tool} {arguments}]"),
                ChatEvent::ToolResult { tool, ok, .. } => eprintln!("[{tool} {}]", if ok { "ok" } else { "failed" }),
                ChatEvent::Delta { text, .. } => {
                    streamed = true;
                    out!("{text}");
                    let _ = std::io::stdout().flush();
                }
            }
        }
        streamed
    });
    let reply = aegis.agents().handle(scope, &message, Some(tx)).await;
    let streamed = printer.await.unwrap_or(false);
    let reply = reply?;
    if args.json {
        output::json(&reply)?;
    } else {
        if streamed {
            outln!();
        } else {
            outln!("{}", reply.text);
        }
        for (i, c) in reply.citations.iter().enumerate() {
            outln!("  [{}] {} {}", i + 1, c.source_key, c.anchor);
        }
        eprintln!("(run {} · {})", reply.run_id, reply.outcome);
    }
    Ok(reply)
}

pub async fn chat(config: Config, args: ChatArgs) -> anyhow::Result<ExitCode> {
    let (aegis, scope) = scope_of(config, &args.tenant).await?;
    let thread = args.thread.clone().unwrap_or_else(default_thread);
    if let Some(message) = &args.message {
        let reply = send(&aegis, &scope, &args, message, &thread).await?;
        return Ok(if reply.outcome == "error" { ExitCode::FAILURE } else { ExitCode::SUCCESS });
    }
    eprintln!("chatting with {} (thread {thread}); /help for commands, an empty line or Ctrl-D to leave", args.tenant);
    // Read without blocking the runtime's thread: with one thread (decision 42) the batched
    // decision and ledger writes would otherwise wait for the next line.
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        eprint!("> ");
        let _ = std::io::stderr().flush();
        let Some(line) = lines.next_line().await? else { break };
        if line.trim().is_empty() {
            break;
        }
        if let Err(err) = send(&aegis, &scope, &args, line.trim(), &thread).await {
            eprintln!("error: {err}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn conversations(config: Config, action: ConversationsAction) -> anyhow::Result<ExitCode> {
    match action {
        ConversationsAction::List { tenant, limit, json } => {
            let (aegis, scope) = scope_of(config, &tenant).await?;
            let list = aegis.agents().conversations(&scope, limit).await?;
            if json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|c| {
                        vec![
                            c.id.to_string(),
                            c.channel.clone(),
                            c.thread.clone(),
                            c.updated_at.to_rfc3339(),
                            c.title.clone(),
                        ]
                    })
                    .collect();
                output::table(&["id", "channel", "thread", "updated", "title"], &rows);
            }
        }
        ConversationsAction::Show { tenant, id, json } => {
            let (aegis, scope) = scope_of(config, &tenant).await?;
            let history = aegis.agents().conversation(&scope, id).await?;
            if json {
                output::json(&history)?;
            } else {
                for m in &history.messages {
                    let who = m.agent.as_deref().or(m.sender.as_deref()).unwrap_or(&m.role);
                    outln!("#{} {} {who}: {}", m.seq, m.role, m.content.as_deref().unwrap_or(""));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
