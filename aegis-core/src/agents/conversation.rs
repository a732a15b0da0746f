//! Conversations per tenant, with their participants and every message (role, content,
//! tool calls and results). History is never deleted: when it outgrows the context budget,
//! a `summary` message covering the old turns takes their place in the prompt.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use crate::llm::types::{Message, Role, ToolCall};

/// A conversation.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Conversation {
    /// Id.
    pub id: Uuid,
    /// The channel (`api`, `cli`, `telegram`, …).
    pub channel: String,
    /// The thread within the channel.
    pub thread: String,
    /// The agent chosen with `/agent <name>`, if any.
    pub agent: Option<String>,
    /// A title (the first message, shortened).
    pub title: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last message.
    pub updated_at: DateTime<Utc>,
}

/// A stored message.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct StoredMessage {
    /// Id.
    pub id: Uuid,
    /// Order within the conversation.
    pub seq: i64,
    /// `user`, `assistant`, `tool` or `summary`.
    pub role: String,
    /// The agent that wrote it (assistant, tool).
    pub agent: Option<String>,
    /// The person who wrote it (user).
    pub sender: Option<String>,
    /// Its text.
    pub content: Option<String>,
    /// Tool calls of an assistant message.
    pub tool_calls: Option<Value>,
    /// The call a tool message answers.
    pub tool_call_id: Option<String>,
    /// For a summary: the last message it stands for.
    pub covers_through: Option<i64>,
    /// The run that wrote it.
    pub run_id: Option<Uuid>,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl StoredMessage {
    /// The message as the model sees it.
    pub fn to_prompt(&self) -> Message {
        let text = self.content.clone().unwrap_or_default();
        match self.role.as_str() {
            "user" => {
                let mut m = Message::user(text);
                m.name = self.sender.as_deref().map(prompt_name);
                m
            }
            "tool" => Message::tool(self.tool_call_id.clone().unwrap_or_default(), text),
            "summary" => Message::system(format!("Summary of the earlier conversation:\n{text}")),
            _ => {
                let calls: Option<Vec<ToolCall>> =
                    self.tool_calls.as_ref().and_then(|v| serde_json::from_value(v.clone()).ok());
                let mut m = Message::assistant(text);
                if calls.as_ref().is_some_and(|c| !c.is_empty()) {
                    m.content = self.content.clone().map(crate::llm::types::Content::Text);
                    m.tool_calls = calls;
                }
                m
            }
        }
    }
}

/// OpenAI's `name` allows `[a-zA-Z0-9_-]{1,64}`.
fn prompt_name(sender: &str) -> String {
    let cleaned: String =
        sender.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(64).collect();
    if cleaned.is_empty() { "user".into() } else { cleaned }
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The model-shaped message.
    pub message: Message,
    /// Its agent (assistant and tool messages).
    pub agent: Option<String>,
    /// Its sender (user messages).
    pub sender: Option<String>,
}

/// The statements' column lists, spliced at compile time (`concat!`), never at run time.
macro_rules! message_columns {
    () => {
        "id, seq, role, agent, sender, content, tool_calls, tool_call_id, covers_through, run_id, created_at"
    };
}
macro_rules! conversation_columns {
    () => {
        "id, channel, thread, agent, title, created_at, updated_at"
    };
}

/// The conversation of (channel, thread), created when missing.
pub async fn get_or_create(
    conn: &mut PgConnection,
    channel: &str,
    thread: &str,
    first_text: &str,
) -> Result<Conversation, sqlx::Error> {
    let title: String = first_text.chars().take(80).collect();
    let now = Utc::now();
    sqlx::query(
        "INSERT INTO conversations (id, channel, thread, title, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
         ON CONFLICT (channel, thread) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(channel)
    .bind(thread)
    .bind(title)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query_as(concat!(
        "SELECT ",
        conversation_columns!(),
        " FROM conversations WHERE channel = $1 AND thread = $2"
    ))
    .bind(channel)
    .bind(thread)
    .fetch_one(conn)
    .await
}

/// Locks the conversation's row until the transaction ends, so that two turns of one
/// conversation never interleave their messages (a tool result must follow its call).
pub async fn lock(conn: &mut PgConnection, conversation: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE").bind(conversation).execute(conn).await?;
    Ok(())
}

/// Records a participant once.
pub async fn add_participant(
    conn: &mut PgConnection,
    conversation: Uuid,
    kind: &str,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO conversation_participants (conversation_id, kind, name, first_seen) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(conversation)
    .bind(kind)
    .bind(name)
    .bind(Utc::now())
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets the conversation's chosen agent (`/agent <name>`).
pub async fn set_agent(conn: &mut PgConnection, conversation: Uuid, agent: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE conversations SET agent = $2 WHERE id = $1")
        .bind(conversation)
        .bind(agent)
        .execute(conn)
        .await?;
    Ok(())
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Tool => "tool",
        Role::System | Role::Developer => "summary",
        Role::Assistant => "assistant",
    }
}

/// Appends messages in order.
pub async fn append(
    conn: &mut PgConnection,
    conversation: Uuid,
    run_id: Option<Uuid>,
    messages: &[NewMessage],
) -> Result<(), sqlx::Error> {
    for m in messages {
        let tool_calls = m.message.tool_calls.as_ref().map(|c| serde_json::to_value(c).unwrap_or(Value::Null));
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, role, agent, sender, content, tool_calls, tool_call_id, run_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(Uuid::now_v7())
        .bind(conversation)
        .bind(role_name(m.message.role))
        .bind(&m.agent)
        .bind(&m.sender)
        .bind(m.message.content.as_ref().map(crate::llm::types::Content::text))
        .bind(tool_calls)
        .bind(&m.message.tool_call_id)
        .bind(run_id)
        .bind(Utc::now())
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("UPDATE conversations SET updated_at = $2 WHERE id = $1")
        .bind(conversation)
        .bind(Utc::now())
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores a summary standing for every message up to `covers_through`.
pub async fn add_summary(
    conn: &mut PgConnection,
    conversation: Uuid,
    run_id: Uuid,
    text: &str,
    covers_through: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, role, content, covers_through, run_id, created_at) \
         VALUES ($1, $2, 'summary', $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(conversation)
    .bind(text)
    .bind(covers_through)
    .bind(run_id)
    .bind(Utc::now())
    .execute(conn)
    .await?;
    Ok(())
}

/// What the prompt shows of the history: the newest summary (if any), then every message
/// after what it covers, in order.
pub async fn prompt_history(conn: &mut PgConnection, conversation: Uuid) -> Result<Vec<StoredMessage>, sqlx::Error> {
    let summary: Option<StoredMessage> = sqlx::query_as(concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE conversation_id = $1 AND role = 'summary' ORDER BY seq DESC LIMIT 1"
    ))
    .bind(conversation)
    .fetch_optional(&mut *conn)
    .await?;
    let after = summary.as_ref().and_then(|s| s.covers_through).unwrap_or(0);
    let rest: Vec<StoredMessage> = sqlx::query_as(concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE conversation_id = $1 AND role <> 'summary' AND seq > $2 ORDER BY seq"
    ))
    .bind(conversation)
    .bind(after)
    .fetch_all(conn)
    .await?;
    Ok(summary.into_iter().chain(rest).collect())
}

/// Every message of a conversation, summaries included, in order.
pub async fn messages(conn: &mut PgConnection, conversation: Uuid) -> Result<Vec<StoredMessage>, sqlx::Error> {
    sqlx::query_as(concat!("SELECT ", message_columns!(), " FROM messages WHERE conversation_id = $1 ORDER BY seq"))
        .bind(conversation)
        .fetch_all(conn)
        .await
}

/// Conversations, most recent first.
pub async fn list(conn: &mut PgConnection, limit: i64) -> Result<Vec<Conversation>, sqlx::Error> {
    sqlx::query_as(concat!("SELECT ", conversation_columns!(), " FROM conversations ORDER BY updated_at DESC LIMIT $1"))
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// One conversation.
pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<Conversation>, sqlx::Error> {
    sqlx::query_as(concat!("SELECT ", conversation_columns!(), " FROM conversations WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The participants of a conversation.
pub async fn participants(conn: &mut PgConnection, id: Uuid) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kind, name FROM conversation_participants WHERE conversation_id = $1 ORDER BY first_seen, name",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}

/// The token estimate of a message (4 bytes a token, as elsewhere in AEGIS).
pub fn estimate_tokens(m: &StoredMessage) -> usize {
    m.content.as_ref().map_or(0, String::len) / 4 + m.tool_calls.as_ref().map_or(0, |c| c.to_string().len() / 4) + 4
}
