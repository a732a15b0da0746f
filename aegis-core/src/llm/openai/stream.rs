//! A streamed chat completion: SSE events parsed as bytes arrive, each turned into a
//! [`ChatChunk`], with an idle timeout between chunks and an error (never a silent end)
//! when the stream breaks before `[DONE]`.

use std::collections::VecDeque;

use futures::{StreamExt, stream::BoxStream};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::{SseParser, Timeouts, classify, transport::describe};
use crate::llm::{ChatStream, ErrorClass, LlmError, types::ChatChunk};

struct State {
    body: BoxStream<'static, Result<bytes::Bytes, hyper::Error>>,
    parser: SseParser,
    ready: VecDeque<Result<ChatChunk, LlmError>>,
    provider: String,
    model: String,
    timeouts: Timeouts,
    finished: bool,
    saw_finish_reason: bool,
}

impl State {
    fn err(&self, class: ErrorClass, message: impl Into<String>) -> LlmError {
        LlmError::new(class, &self.provider, &self.model, message)
    }

    /// Handles one SSE event; returns false once the stream is over.
    fn event(&mut self, data: &str) -> bool {
        if data.trim() == "[DONE]" {
            return false;
        }
        match serde_json::from_str::<serde_json::Value>(data) {
            Ok(value) if value.get("error").is_some() => {
                let message = classify::error_message(data);
                let status = value
                    .pointer("/error/code")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|c| u16::try_from(c).ok());
                let class = status.map_or(ErrorClass::ServerError, |s| classify::from_status(s, data));
                self.ready.push_back(Err(self.err(class, format!("error inside the stream: {message}"))));
                false
            }
            Ok(value) => match serde_json::from_value::<ChatChunk>(value) {
                Ok(chunk) => {
                    self.saw_finish_reason |= chunk.choices.iter().any(|c| c.finish_reason.is_some());
                    self.ready.push_back(Ok(chunk));
                    true
                }
                Err(e) => {
                    self.ready.push_back(Err(
                        self.err(ErrorClass::Malformed, format!("chunk is not a chat completion chunk: {e}"))
                    ));
                    false
                }
            },
            Err(e) => {
                self.ready.push_back(Err(self.err(ErrorClass::Malformed, format!("chunk is not JSON: {e}"))));
                false
            }
        }
    }
}

/// Turns a 2xx `text/event-stream` response into chunks.
pub fn chunks(body: Incoming, provider: String, model: String, timeouts: Timeouts) -> ChatStream {
    let state = State {
        body: body.into_data_stream().boxed(),
        parser: SseParser::default(),
        ready: VecDeque::new(),
        provider,
        model,
        timeouts,
        finished: false,
        saw_finish_reason: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(item) = state.ready.pop_front() {
                return Some((item, state));
            }
            if state.finished {
                return None;
            }
            match tokio::time::timeout(state.timeouts.stream_idle, state.body.next()).await {
                Err(_) => {
                    state.finished = true;
                    let err = state.err(ErrorClass::Timeout, "the stream went silent");
                    state.ready.push_back(Err(err));
                }
                Ok(Some(Ok(bytes))) => match state.parser.push(&bytes) {
                    Ok(events) => {
                        for event in events {
                            if !state.event(&event.data) {
                                state.finished = true;
                                break;
                            }
                        }
                    }
                    Err(message) => {
                        state.finished = true;
                        let err = state.err(ErrorClass::Malformed, message);
                        state.ready.push_back(Err(err));
                    }
                },
                Ok(Some(Err(e))) => {
                    state.finished = true;
                    let err = state.err(ErrorClass::Connection, format!("the stream broke off: {}", describe(&e)));
                    state.ready.push_back(Err(err));
                }
                Ok(None) => {
                    state.finished = true;
                    let parser = std::mem::take(&mut state.parser);
                    if let Some(event) = parser.finish()
                        && !state.event(&event.data)
                    {
                        continue;
                    }
                    if !state.saw_finish_reason {
                        let err = state.err(ErrorClass::Connection, "the stream ended before [DONE]");
                        state.ready.push_back(Err(err));
                    }
                }
            }
        }
    })
    .boxed()
}
