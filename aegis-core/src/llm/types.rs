//! Request and response types of OpenAI's chat-completions and embeddings APIs: the wire
//! format every supported provider speaks. Fields AEGIS does not interpret are kept in
//! `extra` and passed through, so the gateway forwards what clients send.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// Instructions (OpenAI's newer name for system).
    Developer,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

/// A message's content: plain text or a list of typed parts (text, images, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Typed parts, passed through as given.
    Parts(Vec<Value>),
}

impl Content {
    /// The text of the content (text parts joined).
    pub fn text(&self) -> String {
        match self {
            Content::Text(t) => t.clone(),
            Content::Parts(parts) => {
                parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("")
            }
        }
    }
}

/// A function call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Call id, echoed by the tool message that answers it.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function and its JSON arguments.
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".into()
}

/// The function part of a tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments as a JSON string (as the model wrote them).
    pub arguments: String,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Author.
    pub role: Role,
    /// Content (absent on assistant messages that only call tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Optional author name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls of an assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    fn with(role: Role, text: impl Into<String>) -> Self {
        Self { role, content: Some(Content::Text(text.into())), name: None, tool_calls: None, tool_call_id: None }
    }

    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Self::with(Role::System, text)
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self::with(Role::User, text)
    }

    /// An assistant message.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::with(Role::Assistant, text)
    }

    /// A tool result answering `call_id`.
    pub fn tool(call_id: impl Into<String>, text: impl Into<String>) -> Self {
        Self { tool_call_id: Some(call_id.into()), ..Self::with(Role::Tool, text) }
    }

    /// The message's text, empty when it has none.
    pub fn text(&self) -> String {
        self.content.as_ref().map(Content::text).unwrap_or_default()
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Always `function`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDefinition,
}

/// A callable function: name, description and JSON-schema parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDefinition {
    /// Name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Strict schema adherence (OpenAI structured outputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// How the model should choose tools: `"none"`, `"auto"`, `"required"` or a named function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `none`, `auto` or `required`.
    Mode(String),
    /// `{"type": "function", "function": {"name": …}}`.
    Named(Value),
}

/// The shape of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// `{name, schema, strict}` as OpenAI defines it.
        json_schema: Value,
    },
}

/// Options for streamed responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Ask for a final chunk carrying token usage.
    pub include_usage: bool,
}

/// A chat-completions request.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ChatRequest {
    /// The model: a provider model name upstream; an alias or `intent:<name>` at the gateway.
    pub model: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolDefinition>>,
    /// Tool selection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Answer shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Maximum tokens to generate (older name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Maximum tokens to generate (newer name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Stop sequences (a string or a list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Value>,
    /// Stream the answer as server-sent events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Every other field, passed through untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

super::extra_fields::deserialize_keeping_extra!(ChatRequest {
    optional {
        model: String::new(),
        tools: None,
        tool_choice: None,
        response_format: None,
        temperature: None,
        max_tokens: None,
        max_completion_tokens: None,
        stop: None,
        stream: None,
        stream_options: None,
    }
    required { messages }
});

impl ChatRequest {
    /// A request with these messages and nothing else set.
    pub fn new(messages: Vec<Message>) -> Self {
        Self { messages, ..Self::default() }
    }

    /// The output limit asked for, whichever field carries it.
    pub fn max_output_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

/// Token counts reported by a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Their sum.
    #[serde(default)]
    pub total_tokens: u64,
}

/// One answer choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Its index.
    #[serde(default)]
    pub index: u32,
    /// The message.
    pub message: Message,
    /// Why generation stopped (`stop`, `length`, `tool_calls`, …).
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// A chat-completions response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatResponse {
    /// Response id.
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    /// Unix seconds.
    pub created: i64,
    /// The model that answered.
    pub model: String,
    /// Choices (usually one).
    pub choices: Vec<Choice>,
    /// Token usage, when the provider reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Other fields, passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

super::extra_fields::deserialize_keeping_extra!(ChatResponse {
    optional {
        id: String::new(),
        object: completion_object(),
        created: 0,
        model: String::new(),
        usage: None,
    }
    required { choices }
});

fn completion_object() -> String {
    "chat.completion".into()
}

impl ChatResponse {
    /// The first choice's message, if any.
    pub fn message(&self) -> Option<&Message> {
        self.choices.first().map(|c| &c.message)
    }
}

/// A piece of a tool call in a stream: pieces with the same `index` are concatenated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which call this piece belongs to.
    pub index: u32,
    /// The call id (first piece).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function` (first piece).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name and argument fragments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
}

/// Fragments of a function call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    /// Name (first piece).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A fragment of the JSON arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// What a stream chunk adds to the message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Delta {
    /// Set on the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// A text fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool-call fragments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// One choice's part of a stream chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Choice index.
    #[serde(default)]
    pub index: u32,
    /// What it adds.
    #[serde(default)]
    pub delta: Delta,
    /// Set on the last chunk of the choice.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// One server-sent event of a streamed chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    /// Response id.
    #[serde(default)]
    pub id: String,
    /// Always `chat.completion.chunk`.
    #[serde(default = "chunk_object")]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: i64,
    /// The model.
    #[serde(default)]
    pub model: String,
    /// Choice deltas (empty on the final usage chunk).
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// Usage, on the final chunk when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

fn chunk_object() -> String {
    "chat.completion.chunk".into()
}

/// Builds a complete response from stream chunks: text concatenated, tool-call pieces
/// joined by index, usage from the last chunk that had it.
#[derive(Debug, Default, Clone)]
pub struct StreamAccumulator {
    id: String,
    model: String,
    created: i64,
    role: Option<Role>,
    text: String,
    tool_calls: Vec<ToolCall>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl StreamAccumulator {
    /// Adds one chunk.
    pub fn push(&mut self, chunk: &ChatChunk) {
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
            self.model.clone_from(&chunk.model);
            self.created = chunk.created;
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            if let Some(role) = choice.delta.role {
                self.role = Some(role);
            }
            if let Some(text) = &choice.delta.content {
                self.text.push_str(text);
            }
            for piece in choice.delta.tool_calls.iter().flatten() {
                let index = piece.index as usize;
                while self.tool_calls.len() <= index {
                    self.tool_calls.push(ToolCall {
                        id: String::new(),
                        kind: function_type(),
                        function: FunctionCall { name: String::new(), arguments: String::new() },
                    });
                }
                let call = &mut self.tool_calls[index];
                if let Some(id) = &piece.id {
                    call.id.clone_from(id);
                }
                if let Some(f) = &piece.function {
                    if let Some(name) = &f.name {
                        call.function.name.push_str(name);
                    }
                    if let Some(args) = &f.arguments {
                        call.function.arguments.push_str(args);
                    }
                }
            }
            if choice.finish_reason.is_some() {
                self.finish_reason.clone_from(&choice.finish_reason);
            }
        }
    }

    /// Usage seen so far.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The response the chunks add up to.
    pub fn finish(self) -> ChatResponse {
        let message = Message {
            role: self.role.unwrap_or(Role::Assistant),
            content: (!self.text.is_empty() || self.tool_calls.is_empty()).then_some(Content::Text(self.text)),
            name: None,
            tool_calls: (!self.tool_calls.is_empty()).then_some(self.tool_calls),
            tool_call_id: None,
        };
        ChatResponse {
            id: self.id,
            object: completion_object(),
            created: self.created,
            model: self.model,
            choices: vec![Choice { index: 0, message, finish_reason: self.finish_reason }],
            usage: self.usage,
            extra: Map::new(),
        }
    }
}

/// An embeddings request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    /// The model (an alias at the gateway).
    #[serde(default)]
    pub model: String,
    /// A string or a list of strings.
    pub input: EmbeddingInput,
    /// Output dimensions, for models that can shorten their vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// `float` (default) or `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
}

/// Embedding input: one text or many.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    One(String),
    /// Many texts.
    Many(Vec<String>),
}

impl EmbeddingInput {
    /// The texts, in order.
    pub fn texts(&self) -> Vec<String> {
        match self {
            EmbeddingInput::One(t) => vec![t.clone()],
            EmbeddingInput::Many(ts) => ts.clone(),
        }
    }
}

/// One vector of an embeddings response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingData {
    /// Always `embedding`.
    #[serde(default = "embedding_object")]
    pub object: String,
    /// Position in the input.
    pub index: u32,
    /// The vector.
    pub embedding: Vec<f32>,
}

fn embedding_object() -> String {
    "embedding".into()
}

/// An embeddings response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    /// Always `list`.
    #[serde(default = "list_object")]
    pub object: String,
    /// One entry per input text.
    pub data: Vec<EmbeddingData>,
    /// The model that embedded.
    #[serde(default)]
    pub model: String,
    /// Usage, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

fn list_object() -> String {
    "list".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_with_unknown_fields() {
        let raw = serde_json::json!({
            "model": "intent:chat",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"}
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
            "temperature": 0.2, "max_tokens": 10, "stop": ["\n"], "stream": true,
            "stream_options": {"include_usage": true},
            "seed": 7, "top_p": 0.9
        });
        let req: ChatRequest = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(req.messages[1].text(), "hi");
        assert_eq!(req.extra.get("seed"), Some(&serde_json::json!(7)));
        assert!(matches!(req.response_format, Some(ResponseFormat::JsonSchema { .. })));
        assert_eq!(serde_json::to_value(&req).unwrap(), raw);
    }

    #[test]
    fn absent_fields_take_their_defaults_and_bad_ones_are_refused() {
        let req: ChatRequest =
            serde_json::from_str(r#"{"messages":[{"role":"user","content":"x"}],"temperature":null}"#)
                .unwrap_or_default();
        assert_eq!((req.model.as_str(), req.temperature, req.messages.len()), ("", None, 1));
        let missing = serde_json::from_str::<ChatRequest>(r#"{"model":"m"}"#).unwrap_err();
        assert!(missing.to_string().contains("missing field `messages`"), "{missing}");
        let twice = serde_json::from_str::<ChatRequest>(r#"{"messages":[],"model":"a","model":"b"}"#).unwrap_err();
        assert!(twice.to_string().contains("duplicate field `model`"), "{twice}");
        let wrong = serde_json::from_str::<ChatRequest>(r#"{"messages":[],"max_tokens":"ten"}"#).unwrap_err();
        assert!(wrong.to_string().contains("invalid type"), "{wrong}");
        assert!(serde_json::from_str::<ChatRequest>("[1]").is_err());

        let raw = serde_json::json!({
            "id": "r1", "created": 5, "model": "m", "system_fingerprint": "fp",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        });
        let response: ChatResponse = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(response.object, "chat.completion", "absent, it takes its default");
        assert_eq!(response.extra.get("system_fingerprint"), Some(&serde_json::json!("fp")));
        let mut expected = raw;
        expected["object"] = serde_json::json!("chat.completion");
        assert_eq!(serde_json::to_value(&response).unwrap(), expected);
        assert!(serde_json::from_str::<ChatResponse>(r#"{"id":"x"}"#).is_err(), "choices are required");
    }

    #[test]
    fn tool_call_pieces_are_joined_by_index() {
        let chunks = [
            r#"{"id":"x","model":"m","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"kb_","arguments":""}}]}}]}"#,
            r#"{"id":"x","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"search","arguments":"{\"q\":"}}]}}]}"#,
            r#"{"id":"x","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","function":{"name":"now","arguments":"{}"}}]}}]}"#,
            r#"{"id":"x","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"refunds\"}"}}]},"finish_reason":"tool_calls"}]}"#,
            r#"{"id":"x","model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#,
        ];
        let mut acc = StreamAccumulator::default();
        for c in chunks {
            acc.push(&serde_json::from_str(c).unwrap());
        }
        let response = acc.finish();
        let calls = response.choices[0].message.tool_calls.clone().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].id, "call_a");
        assert_eq!(calls[0].function.name, "kb_search");
        assert_eq!(calls[0].function.arguments, r#"{"q":"refunds"}"#);
        assert_eq!(calls[1].function.name, "now");
        assert_eq!(response.usage.unwrap().total_tokens, 12);
        assert_eq!(response.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    }
}
