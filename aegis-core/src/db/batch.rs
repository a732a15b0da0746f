//! A batching writer for append-only platform rows (decisions, ledger rows) that should not
//! cost a database round trip on the request path.
//!
//! Rows go into a bounded channel (a full channel makes the caller wait: back-pressure,
//! never loss) and a background task inserts them in batches every `interval` or when a
//! batch is full. `flush` waits until everything sent before it is written. What a crash
//! can lose: rows still in the channel, at most one `interval` (default 50 ms) of them.
//! A failed insert is retried three times, then logged and counted as lost.
//!
//! The task keeps one pooled connection while rows keep coming and gives it back after
//! [`IDLE_RELEASE`] without any. sqlx tests a connection with a round trip when it is taken
//! from the pool and again when it goes back, so taking one per batch cost three round trips
//! for each insert. A connection an insert failed on is closed, not returned, and the retry
//! takes a new one.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::future::BoxFuture;
use sqlx::{PgConnection, Postgres, pool::PoolConnection};
use tokio::sync::{mpsc, oneshot};

use super::{Database, DbError};

/// Writes a batch of rows on a connection of the writer's pool.
pub type InsertBatch<R> =
    Arc<dyn for<'c> Fn(&'c mut PgConnection, &'c [R]) -> BoxFuture<'c, Result<(), DbError>> + Send + Sync>;

/// How long the writer keeps its connection without rows to write.
pub const IDLE_RELEASE: Duration = Duration::from_secs(10);

enum Message<R> {
    Row(R),
    Flush(oneshot::Sender<()>),
}

/// The sending side; cheap to clone.
pub struct BatchWriter<R> {
    sender: mpsc::Sender<Message<R>>,
    lost: Arc<AtomicU64>,
    name: &'static str,
}

impl<R> Clone for BatchWriter<R> {
    fn clone(&self) -> Self {
        Self { sender: self.sender.clone(), lost: self.lost.clone(), name: self.name }
    }
}

impl<R> std::fmt::Debug for BatchWriter<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchWriter").field("name", &self.name).finish()
    }
}

const MAX_BATCH: usize = 500;

impl<R: Send + Sync + 'static> BatchWriter<R> {
    /// Starts the background task on the current runtime.
    pub fn spawn(db: Database, name: &'static str, interval: Duration, insert: InsertBatch<R>) -> Self {
        let (sender, mut receiver) = mpsc::channel::<Message<R>>(16_384);
        let lost = Arc::new(AtomicU64::new(0));
        let lost_in_task = lost.clone();
        tokio::spawn(async move {
            let mut rows = Vec::with_capacity(MAX_BATCH);
            let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
            let mut held = Held { db, conn: None };
            // Wake once per batch, not once per row: after the first message, sleep through
            // the interval (unless a flush is waiting) and then drain what arrived.
            while let Some(first) = held.next(&mut receiver).await {
                let mut closed = false;
                match first {
                    Message::Row(row) => {
                        rows.push(row);
                        tokio::time::sleep(interval).await;
                    }
                    Message::Flush(ack) => acks.push(ack),
                }
                loop {
                    match receiver.try_recv() {
                        Ok(Message::Row(row)) => rows.push(row),
                        Ok(Message::Flush(ack)) => acks.push(ack),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                    if rows.len() >= MAX_BATCH {
                        let batch = std::mem::take(&mut rows);
                        write_with_retry(&mut held, name, &insert, batch, &lost_in_task).await;
                    }
                }
                if !rows.is_empty() {
                    let batch = std::mem::take(&mut rows);
                    write_with_retry(&mut held, name, &insert, batch, &lost_in_task).await;
                }
                for ack in acks.drain(..) {
                    let _ = ack.send(());
                }
                if closed {
                    break;
                }
            }
        });
        Self { sender, lost, name }
    }

    /// Queues a row (waits only when the queue is full).
    pub async fn send(&self, row: R) {
        if self.sender.send(Message::Row(row)).await.is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
            tracing::error!(writer = self.name, "batch writer stopped; row lost");
        }
    }

    /// Waits until every row sent before this call is written.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.sender.send(Message::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Rows that could not be written.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

/// The writer's database and the connection it holds between batches.
struct Held {
    db: Database,
    conn: Option<PoolConnection<Postgres>>,
}

impl Held {
    /// The next message; a connection held through [`IDLE_RELEASE`] without one goes back
    /// to the pool.
    async fn next<R>(&mut self, receiver: &mut mpsc::Receiver<Message<R>>) -> Option<Message<R>> {
        if self.conn.is_some() {
            if let Ok(message) = tokio::time::timeout(IDLE_RELEASE, receiver.recv()).await {
                return message;
            }
            self.conn = None;
        }
        receiver.recv().await
    }

    /// Inserts `batch` on the held connection, taking one first if none is held. On an
    /// error the connection is closed rather than returned: it may be broken.
    async fn insert<R>(&mut self, insert: &InsertBatch<R>, batch: &[R]) -> Result<(), DbError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.db.pool().acquire().await?),
        };
        let result = insert(conn, batch).await;
        if result.is_err()
            && let Some(mut broken) = self.conn.take()
        {
            broken.close_on_drop();
        }
        result
    }
}

async fn write_with_retry<R: Send + Sync + 'static>(
    held: &mut Held,
    name: &str,
    insert: &InsertBatch<R>,
    batch: Vec<R>,
    lost: &AtomicU64,
) {
    for attempt in 1..=3u32 {
        match held.insert(insert, &batch).await {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(writer = name, attempt, error = %err, "batch insert failed");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
        }
    }
    lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
    tracing::error!(writer = name, rows = batch.len(), "rows could not be written and are lost");
}
