//! A routed stream: chunks of the model that answered first, with the ledger row (and any
//! hooks, such as settling a reservation) completed before the stream reports its end, or
//! in a background task if the consumer drops it early.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use futures::{FutureExt, Stream, future::BoxFuture};

use super::{AttemptFailure, PremiumSpend, RoutedModel};
use crate::llm::{
    ChatStream, LlmError,
    ledger::{Ledger, LedgerRow, millis, price},
    types::{ChatChunk, ChatResponse, StreamAccumulator, Usage},
};

/// How a stream ended.
#[derive(Debug, Clone)]
pub enum StreamOutcome {
    /// The model finished.
    Completed,
    /// It broke after its first chunk.
    Failed(LlmError),
    /// The consumer stopped reading.
    Cancelled,
}

/// A summary handed to end hooks.
#[derive(Debug, Clone)]
pub struct StreamEnd {
    /// How it ended.
    pub outcome: StreamOutcome,
    /// The model that answered.
    pub model: String,
    /// Usage, if the provider reported it.
    pub usage: Option<Usage>,
    /// Cost of the answering attempt (`None`: unpriced).
    pub cost_micro_usd: Option<i64>,
    /// Premium spend over all attempts.
    pub premium_spend: PremiumSpend,
    /// What the chunks added up to.
    pub response: ChatResponse,
}

/// Runs when a stream ends.
pub type EndHook = Box<dyn FnOnce(StreamEnd) -> BoxFuture<'static, ()> + Send>;

struct Finisher {
    model: RoutedModel,
    row: LedgerRow,
    started: Instant,
    ledger: Ledger,
    spend_before: PremiumSpend,
    hooks: Vec<EndHook>,
}

impl Finisher {
    fn finish(self, outcome: StreamOutcome, accumulated: StreamAccumulator) -> BoxFuture<'static, ()> {
        let Finisher { model, mut row, started, ledger, spend_before, hooks } = self;
        let usage = accumulated.usage();
        let cost = price(&model.config, usage.as_ref());
        row.latency_ms = millis(started.elapsed());
        row.tokens_in = usage.map(|u| i64::try_from(u.prompt_tokens).unwrap_or(i64::MAX));
        row.tokens_out = usage.map(|u| i64::try_from(u.completion_tokens).unwrap_or(i64::MAX));
        row.cost_micro_usd = cost;
        match &outcome {
            StreamOutcome::Completed => {}
            StreamOutcome::Failed(err) => {
                row.outcome = "error";
                row.error_class = Some(err.class.as_str().to_owned());
                row.error = Some(err.message.clone());
            }
            StreamOutcome::Cancelled => row.outcome = "cancelled",
        }
        let spend = match (model.config.premium, cost) {
            (false, _) => spend_before,
            (true, Some(c)) => match spend_before {
                PremiumSpend::Priced(before) => PremiumSpend::Priced(before + c),
                PremiumSpend::Unpriced => PremiumSpend::Unpriced,
            },
            (true, None) => PremiumSpend::Unpriced,
        };
        let end = StreamEnd {
            outcome,
            model: model.id.clone(),
            usage,
            cost_micro_usd: cost,
            premium_spend: spend,
            response: accumulated.finish(),
        };
        async move {
            ledger.record(row).await;
            for hook in hooks {
                hook(end.clone()).await;
            }
        }
        .boxed()
    }
}

/// The chunks of a routed, streamed completion.
pub struct RoutedStream {
    first: Option<ChatChunk>,
    inner: ChatStream,
    accumulated: StreamAccumulator,
    model: String,
    finisher: Option<Finisher>,
    finishing: Option<BoxFuture<'static, ()>>,
    failures: Vec<AttemptFailure>,
}

impl std::fmt::Debug for RoutedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutedStream").field("model", &self.model).finish()
    }
}

impl RoutedStream {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        first: ChatChunk,
        inner: ChatStream,
        model: RoutedModel,
        row: LedgerRow,
        started: Instant,
        ledger: Ledger,
        spend_before: PremiumSpend,
        failures: Vec<AttemptFailure>,
    ) -> Self {
        Self {
            first: Some(first),
            inner,
            accumulated: StreamAccumulator::default(),
            model: model.id.clone(),
            finisher: Some(Finisher { model, row, started, ledger, spend_before, hooks: Vec::new() }),
            finishing: None,
            failures,
        }
    }

    /// The model that answers.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Failed attempts before this model answered.
    pub fn failures(&self) -> &[AttemptFailure] {
        &self.failures
    }

    /// Adds a hook run once when the stream ends (completed, failed or dropped).
    pub fn on_end(&mut self, hook: EndHook) {
        if let Some(finisher) = &mut self.finisher {
            finisher.hooks.push(hook);
        }
    }

    fn end(&mut self, outcome: StreamOutcome) -> Option<BoxFuture<'static, ()>> {
        let finisher = self.finisher.take()?;
        Some(finisher.finish(outcome, std::mem::take(&mut self.accumulated)))
    }
}

impl Stream for RoutedStream {
    type Item = Result<ChatChunk, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(finishing) = &mut this.finishing {
                return match finishing.poll_unpin(cx) {
                    Poll::Ready(()) => {
                        this.finishing = None;
                        Poll::Ready(None)
                    }
                    Poll::Pending => Poll::Pending,
                };
            }
            if this.finisher.is_none() {
                return Poll::Ready(None);
            }
            if let Some(first) = this.first.take() {
                this.accumulated.push(&first);
                return Poll::Ready(Some(Ok(first)));
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    this.accumulated.push(&chunk);
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Poll::Ready(Some(Err(err))) => {
                    this.finishing = this.end(StreamOutcome::Failed(err.clone()));
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Ready(None) => {
                    this.finishing = this.end(StreamOutcome::Completed);
                }
            }
        }
    }
}

impl Drop for RoutedStream {
    fn drop(&mut self) {
        let pending = self.finishing.take().or_else(|| self.end(StreamOutcome::Cancelled));
        if let Some(finishing) = pending
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(finishing);
        }
    }
}
