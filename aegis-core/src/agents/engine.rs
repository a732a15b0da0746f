//! The tool-calling loop of one agent run: a step cap, a per-tool timeout, a per-turn token
//! and cost budget computed from the ledger rows of the turn's runs, several tool calls from
//! one model reply (run concurrently), and tool errors handed back to the model as tool
//! messages. Every model request and response is stored in the tenant's schema before the
//! next step, content-addressed; every tool call is an audit event.

use std::time::{Duration, Instant};

use futures::{StreamExt, future::BoxFuture};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    AgentError, Agents, ChatEvent, EventSink, ResolvedAgent,
    holds::Amount,
    prompt::{ContextRequest, system_prompt},
    tools::{BudgetLeft, Citation, ToolContext},
};
use crate::{
    audit::{
        AuditEvent, chain,
        runs::{self, NewRun, RunEnd, RunKind, StepKind},
    },
    llm::{
        CallScope, ModelError, Target,
        types::{ChatRequest, ChatResponse, Message, StreamAccumulator},
    },
    policy::Intent,
    tenancy::TenantScope,
};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The agent answered.
    Ok,
    /// A model call was refused or every provider failed.
    Error,
    /// The step cap was reached before an answer.
    StepLimit,
    /// The turn's token or cost budget ran out.
    BudgetExhausted,
    /// No model is configured: documents offered instead.
    NoModel,
    /// A command answered without a model.
    Command,
}

impl Outcome {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::StepLimit => "step_limit",
            Outcome::BudgetExhausted => "budget_exhausted",
            Outcome::NoModel => "no_model",
            Outcome::Command => "command",
        }
    }
}

/// What a run asks for.
#[derive(Debug, Clone)]
pub(crate) struct RunSpec {
    pub scope: TenantScope,
    pub agent: ResolvedAgent,
    pub team: Vec<ResolvedAgent>,
    pub id: Uuid,
    pub parent: Option<Uuid>,
    pub root: Uuid,
    pub depth: i32,
    pub conversation: Option<Uuid>,
    pub history: Vec<Message>,
    pub text: String,
    pub routing: Option<Value>,
    pub pre_steps: Vec<Exchange>,
    pub sink: Option<EventSink>,
    pub kind: RunKind,
}

/// What a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The run.
    pub run_id: Uuid,
    /// The agent that answered.
    pub agent: String,
    /// The answer.
    pub text: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Sources the answer could cite.
    pub citations: Vec<Citation>,
    /// The messages the run added after the user's (tool calls, results, the answer).
    #[serde(skip)]
    pub transcript: Vec<Message>,
}

/// One model call as stored: the request as the provider received it, the response.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    pub request: Value,
    pub response: Option<Value>,
    pub detail: Value,
}

/// What the turn's runs have spent, from their ledger rows.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Spent {
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost: i64,
    pub unpriced: i64,
}

impl Agents {
    /// One model call under the tenant's policy, as run `run_id`; streamed to `sink` when
    /// given. Returns what to store whether or not it succeeded.
    pub(crate) async fn call_model(
        &self,
        scope: &TenantScope,
        run_id: Uuid,
        intent: Intent,
        request: ChatRequest,
        stream_to: Option<(&EventSink, &str)>,
    ) -> (Result<ChatResponse, ModelError>, Exchange) {
        let call = CallScope {
            tenant: scope.tenant().to_string(),
            tier: scope.tier(),
            caller: scope.caller().to_string(),
            run_id: Some(run_id),
        };
        let target = Target::Intent(intent);
        let models = self.models();
        let mut wire = request.clone();
        let result = match stream_to {
            None => models.complete(&call, &target, &request).await.map(|c| {
                let detail = json!({ "model": c.model, "alias": c.decision.alias, "decision_id": c.decision.id,
                    "cost_micro_usd": c.cost_micro_usd, "usage": c.response.usage, "stream": false });
                (c.response, c.model, detail)
            }),
            Some((sink, agent)) => match models.stream(&call, &target, &request).await {
                Ok((decision, mut stream)) => {
                    let model = stream.model().to_owned();
                    let mut acc = StreamAccumulator::default();
                    let mut failed = None;
                    while let Some(item) = stream.next().await {
                        match item {
                            Ok(chunk) => {
                                for choice in &chunk.choices {
                                    if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
                                        let _ = sink
                                            .send(ChatEvent::Delta { agent: agent.to_owned(), text: text.to_owned() });
                                    }
                                }
                                acc.push(&chunk);
                            }
                            Err(err) => failed = Some(err),
                        }
                    }
                    wire.stream = Some(true);
                    wire.stream_options = Some(crate::llm::types::StreamOptions { include_usage: true });
                    match failed {
                        Some(err) => Err(ModelError::AllFailed(crate::llm::router::RouterError::single(
                            decision.alias.clone().unwrap_or_default(),
                            &model,
                            err,
                        ))),
                        None => {
                            let response = acc.finish();
                            let detail = json!({ "model": model, "alias": decision.alias, "decision_id": decision.id,
                                "usage": response.usage, "stream": true });
                            Ok((response, model, detail))
                        }
                    }
                }
                Err(err) => Err(err),
            },
        };
        match result {
            Ok((response, model, detail)) => {
                wire.model = self.models().config().models.get(&model).map_or(model.clone(), |m| m.name.clone());
                let exchange = Exchange {
                    request: serde_json::to_value(&wire).unwrap_or(Value::Null),
                    response: serde_json::to_value(&response).ok(),
                    detail,
                };
                (Ok(response), exchange)
            }
            Err(err) => {
                let exchange = Exchange {
                    request: serde_json::to_value(&wire).unwrap_or(Value::Null),
                    response: None,
                    detail: json!({ "intent": intent, "error": err.to_string() }),
                };
                (Err(err), exchange)
            }
        }
    }

    /// What the runs of the turn rooted at `root` (or only `run`) have spent, from the ledger.
    pub(crate) async fn spent(&self, scope: &TenantScope, root: Uuid, only: Option<Uuid>) -> Result<Spent, AgentError> {
        self.models().ledger().flush().await;
        let ids: Vec<Uuid> = match only {
            Some(run) => vec![run],
            None => {
                let mut tx = scope.begin().await?;
                let ids = sqlx::query_scalar("SELECT id FROM runs WHERE root_run_id = $1")
                    .bind(root)
                    .fetch_all(tx.conn())
                    .await?;
                tx.commit().await?;
                ids
            }
        };
        let (tokens_in, tokens_out, cost, unpriced): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(tokens_in), 0)::bigint, COALESCE(SUM(tokens_out), 0)::bigint, \
             COALESCE(SUM(cost_micro_usd), 0)::bigint, COUNT(*) FILTER (WHERE NOT priced) \
             FROM public.provider_ledger WHERE tenant_id = $1 AND run_id = ANY($2)",
        )
        .bind(scope.tenant().as_str())
        .bind(&ids)
        .fetch_one(self.db().pool())
        .await?;
        Ok(Spent { tokens_in, tokens_out, cost, unpriced })
    }

    /// Runs one agent to its answer. Boxed: delegation makes runs recursive. A run that
    /// fails on the way (the database, a context source) is still finished, as `error`.
    pub(crate) fn run(&self, spec: RunSpec) -> BoxFuture<'static, Result<RunResult, AgentError>> {
        let this = self.clone();
        Box::pin(async move {
            let (scope, id, agent) = (spec.scope.clone(), spec.id, spec.agent.profile.name.clone());
            let result = this.run_loop(spec).await;
            if let Err(err) = &result {
                let end = RunEnd {
                    outcome: Outcome::Error.as_str().into(),
                    error: Some(err.to_string()),
                    ..RunEnd::default()
                };
                if let Ok(mut tx) = scope.begin().await
                    && runs::finish_run(tx.conn(), id, &end).await.is_ok()
                {
                    let _ = tx.commit().await;
                }
                this.finished(&scope, id, &agent, Outcome::Error);
            }
            result
        })
    }

    async fn run_loop(&self, spec: RunSpec) -> Result<RunResult, AgentError> {
        let started = Instant::now();
        let config = self.config().clone();
        let scope = &spec.scope;
        let agent = &spec.agent;
        let name = agent.profile.name.clone();
        let mut rec = Recorder { run_id: spec.id, seq: 0, model_calls: 0, prompt_hash: None, alias: None };
        {
            let mut tx = scope.begin().await?;
            runs::start_run(
                tx.conn(),
                &NewRun {
                    id: spec.id,
                    parent: spec.parent,
                    root: spec.root,
                    kind: spec.kind,
                    agent: Some(name.clone()),
                    agent_version: Some(agent.version),
                    conversation: spec.conversation,
                    depth: spec.depth,
                    routing: spec.routing.clone(),
                },
            )
            .await?;
            tx.commit().await?;
        }
        for exchange in &spec.pre_steps {
            rec.model_step(scope, exchange, false).await?;
        }
        for note in &agent.tools.notes {
            rec.note(scope, json!({ "note": note })).await?;
        }

        let mut blocks = Vec::new();
        for source in self.context_sources() {
            let request = ContextRequest { scope, agent, message: &spec.text };
            match source.context(&request).await {
                Ok(Some(block)) => blocks.push(block),
                Ok(None) => {}
                // The agent answers without that context rather than not at all.
                Err(err) => {
                    rec.note(scope, json!({ "note": format!("context source `{}` failed: {err}", source.name()) }))
                        .await?
                }
            }
        }
        let mut citations: Vec<Citation> = blocks.iter().flat_map(|b| b.citations.clone()).collect();
        let mut messages = vec![Message::system(system_prompt(agent, &spec.team, &blocks))];
        messages.extend(spec.history.iter().cloned());
        messages.push(Message::user(spec.text.clone()));
        let first_new = messages.len();
        let definitions: Vec<_> = agent.tools.tools.iter().map(|t| t.definition()).collect();

        let mut outcome = Outcome::StepLimit;
        let mut text = String::new();
        let mut error = None;
        for _step in 0..config.max_steps {
            // What the prompt will cost, by the same estimate as the meters (bytes / 3),
            // so that the call cannot spend past the budget by a whole prompt.
            let input = i64::try_from(serde_json::to_vec(&messages).map_or(0, |v| v.len()) / 3).unwrap_or(i64::MAX);
            let intent = agent.profile.default_intent;
            let most = |output: i64| Amount {
                tokens: input.saturating_add(output),
                cost: self.models().cost_ceiling(scope.tier(), intent, input, output),
            };
            // Held before the ledger is read (see `holds`): the turn's other calls in flight count.
            let (mut hold, others) = self.holds().hold(spec.root, most(i64::from(config.max_output_tokens)));
            let spent = self.spent(scope, spec.root, None).await?;
            let left = BudgetLeft {
                tokens: config.turn_token_budget - spent.tokens_in - spent.tokens_out - others.tokens,
                cost_micro_usd: config.turn_cost_budget_micro_usd - spent.cost - others.cost,
            };
            if left.tokens <= 0 || left.cost_micro_usd <= 0 {
                outcome = Outcome::BudgetExhausted;
                rec.note(scope, json!({ "note": "turn budget exhausted", "spent_tokens": spent.tokens_in + spent.tokens_out, "spent_micro_usd": spent.cost, "held_by_other_calls": others.tokens })).await?;
                break;
            }
            let room = left.tokens - input;
            let output = room.min(i64::from(config.max_output_tokens));
            if output < 16 || most(output).cost > left.cost_micro_usd {
                outcome = Outcome::BudgetExhausted;
                rec.note(scope, json!({ "note": "turn budget exhausted: this call could spend more than is left", "left_tokens": left.tokens, "left_micro_usd": left.cost_micro_usd, "prompt_tokens_estimate": input })).await?;
                break;
            }
            hold.lower_to(most(output));
            let mut request = ChatRequest::new(messages.clone());
            request.max_tokens = Some(u32::try_from(output).unwrap_or(config.max_output_tokens));
            if !definitions.is_empty() {
                request.tools = Some(definitions.clone());
            }
            let sink = spec.sink.as_ref().map(|s| (s, name.as_str()));
            let (result, exchange) = self.call_model(scope, spec.id, intent, request, sink).await;
            // The call's ledger rows are queued: its hold can go.
            drop(hold);
            rec.model_step(scope, &exchange, true).await?;
            let response = match result {
                Ok(response) => response,
                Err(err) => {
                    outcome = match err {
                        ModelError::Quota(_) => Outcome::BudgetExhausted,
                        _ => Outcome::Error,
                    };
                    error = Some(err.to_string());
                    break;
                }
            };
            let Some(reply) = response.message().cloned() else {
                outcome = Outcome::Error;
                error = Some("the model's response has no message".into());
                break;
            };
            let calls = reply.tool_calls.clone().unwrap_or_default();
            messages.push(reply.clone());
            if calls.is_empty() {
                text = reply.text();
                outcome = Outcome::Ok;
                break;
            }
            let ctx = ToolContext {
                scope: scope.clone(),
                run_id: spec.id,
                root_run_id: spec.root,
                agent: name.clone(),
                depth: spec.depth,
                budget: left,
                agents: self.clone(),
            };
            let timeout = Duration::from_secs(config.tool_timeout_secs);
            let sink_ref = spec.sink.as_ref();
            let results = futures::future::join_all(calls.iter().map(|call| {
                let ctx = &ctx;
                let tool = agent.tools.tools.iter().find(|t| t.name() == call.function.name).cloned();
                async move {
                    let started = Instant::now();
                    if let Some(sink) = sink_ref {
                        let _ = sink.send(ChatEvent::ToolCall {
                            agent: ctx.agent.clone(),
                            tool: call.function.name.clone(),
                            arguments: call.function.arguments.clone(),
                        });
                    }
                    let result = match tool {
                        None => Err(format!("tool `{}` is not available to this agent", call.function.name)),
                        // A delegation is a run with its own step cap and tool timeouts.
                        Some(tool) if !tool.timed() => {
                            tool.call_json(ctx, &call.function.arguments).await.map_err(|e| e.0)
                        }
                        Some(tool) => {
                            match tokio::time::timeout(timeout, tool.call_json(ctx, &call.function.arguments)).await {
                                Ok(Ok(out)) => Ok(out),
                                Ok(Err(e)) => Err(e.0),
                                Err(_) => Err(format!(
                                    "tool `{}` did not finish within {} s",
                                    call.function.name,
                                    timeout.as_secs()
                                )),
                            }
                        }
                    };
                    (result, started.elapsed())
                }
            }))
            .await;
            for (call, (result, elapsed)) in calls.iter().zip(results) {
                let (content, ok) = match result {
                    Ok(out) => {
                        citations.extend(out.citations);
                        (out.content.replace('\0', ""), true)
                    }
                    Err(e) => (format!("error: {e}").replace('\0', ""), false),
                };
                if let Some(sink) = &spec.sink {
                    let _ =
                        sink.send(ChatEvent::ToolResult { agent: name.clone(), tool: call.function.name.clone(), ok });
                }
                let event = AuditEvent::ToolCalled {
                    agent: name.clone(),
                    tool: call.function.name.clone(),
                    call_id: call.id.clone(),
                    arguments: call.function.arguments.clone(),
                    outcome: if ok { "ok" } else { "error" }.into(),
                    latency_ms: i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
                };
                let detail = json!({ "tool": call.function.name, "call_id": call.id, "arguments": call.function.arguments, "ok": ok, "result": content });
                rec.tool_step(scope, detail, &event).await?;
                messages.push(Message::tool(call.id.clone(), content));
            }
        }
        if outcome != Outcome::Ok {
            text = failure_text(outcome, error.as_deref(), config.max_steps);
            messages.push(Message::assistant(text.clone()));
        }
        let citations = super::unique_citations(citations);

        let spent = self.spent(scope, spec.root, Some(spec.id)).await?;
        let end = RunEnd {
            outcome: outcome.as_str().into(),
            error,
            alias: rec.alias.clone(),
            prompt_hash: rec.prompt_hash.clone(),
            steps: rec.model_calls(),
            tokens_in: spent.tokens_in,
            tokens_out: spent.tokens_out,
            cost_micro_usd: spent.cost,
            unpriced_calls: i32::try_from(spent.unpriced).unwrap_or(i32::MAX),
            latency_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
        };
        let mut tx = scope.begin().await?;
        runs::finish_run(tx.conn(), spec.id, &end).await?;
        tx.commit().await?;
        self.finished(scope, spec.id, &name, outcome);
        Ok(RunResult {
            run_id: spec.id,
            agent: name,
            text,
            outcome,
            citations,
            transcript: messages.split_off(first_new),
        })
    }
}

/// The answer of a run that ended without one: plain about what happened.
fn failure_text(outcome: Outcome, error: Option<&str>, max_steps: u32) -> String {
    match outcome {
        Outcome::StepLimit => format!(
            "I stopped after {max_steps} steps without reaching an answer. Please narrow the question or try again."
        ),
        Outcome::BudgetExhausted => "I ran out of this turn's model budget before finishing, so I stopped here.".into(),
        _ => format!("I could not answer: {}", error.unwrap_or("the model call failed")),
    }
}

/// Writes a run's steps in order, each in its own short transaction.
struct Recorder {
    run_id: Uuid,
    seq: i32,
    model_calls: i32,
    prompt_hash: Option<String>,
    alias: Option<String>,
}

impl Recorder {
    fn model_calls(&self) -> i32 {
        self.model_calls
    }

    /// Stores a model call. `own`: the agent's own call (not routing or a summary), whose
    /// first request is the run's `prompt_hash`.
    async fn model_step(&mut self, scope: &TenantScope, exchange: &Exchange, own: bool) -> Result<(), AgentError> {
        let mut tx = scope.begin().await?;
        let request_hash = runs::store_payload(tx.conn(), &without_nul(&exchange.request)).await?;
        let response_hash = match &exchange.response {
            Some(r) => Some(runs::store_payload(tx.conn(), &without_nul(r)).await?),
            None => None,
        };
        self.model_calls += 1;
        self.seq += 1;
        runs::add_step(
            tx.conn(),
            self.run_id,
            self.seq,
            StepKind::ModelCall,
            (Some(&request_hash), response_hash.as_deref()),
            &exchange.detail,
        )
        .await?;
        tx.commit().await?;
        if own && self.prompt_hash.is_none() {
            self.prompt_hash = Some(request_hash);
        }
        if let Some(alias) = exchange.detail["alias"].as_str() {
            self.alias = Some(alias.to_owned());
        }
        Ok(())
    }

    async fn tool_step(&mut self, scope: &TenantScope, detail: Value, event: &AuditEvent) -> Result<(), AgentError> {
        let mut tx = scope.begin().await?;
        self.seq += 1;
        runs::add_step(tx.conn(), self.run_id, self.seq, StepKind::ToolCall, (None, None), &detail).await?;
        chain::append(tx.conn(), &scope.caller().to_string(), Some(self.run_id), event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn note(&mut self, scope: &TenantScope, detail: Value) -> Result<(), AgentError> {
        let mut tx = scope.begin().await?;
        self.seq += 1;
        runs::add_step(tx.conn(), self.run_id, self.seq, StepKind::Note, (None, None), &detail).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// `value` with NUL characters removed from its strings (PostgreSQL's text and jsonb
/// refuse them); borrowed unchanged in the usual case of there being none.
fn without_nul(value: &Value) -> std::borrow::Cow<'_, Value> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    fn clean(v: &mut Value) {
        match v {
            Value::String(s) => *s = s.replace('\0', ""),
            Value::Array(items) => items.iter_mut().for_each(clean),
            Value::Object(map) => {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, mut v)| {
                        (k.replace('\0', ""), {
                            clean(&mut v);
                            v
                        })
                    })
                    .collect();
            }
            _ => {}
        }
    }
    if has_nul(value) {
        let mut owned = value.clone();
        clean(&mut owned);
        std::borrow::Cow::Owned(owned)
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}
