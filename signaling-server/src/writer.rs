//! The message writer: one task that commits messages in groups. Senders queue a message and
//! wait; the writer takes everything queued (up to a batch), stores it in one transaction —
//! one fsync for the lot — and answers each sender once the commit is durable. Under load the
//! batches grow, so durability does not cost throughput; when idle a batch is one message and
//! waits for nobody.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::cluster::PublishOrder;
use crate::cluster::note::NodeId;
use crate::db::Db;
use crate::db::messages::{NewMessage, Stored};
use crate::ids::IdGenerator;

/// Most messages per transaction.
pub const MAX_BATCH: usize = 512;

pub type Reply = Result<Stored, WriteError>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the database refused the write")]
    Database,
}

struct Job {
    message: NewMessage,
    reply: oneshot::Sender<Reply>,
}

#[derive(Clone)]
pub struct MessageWriter {
    jobs: mpsc::Sender<Job>,
}

impl MessageWriter {
    /// Starts the writer task. It stops once `shutdown` fires and every queued message has
    /// been committed and answered.
    /// With `order` (several processes), each batch is announced to the others in its
    /// transaction, after everything the hub queued for them before it.
    pub fn start(
        db: Db,
        ids: Arc<IdGenerator>,
        order: Option<PublishOrder>,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 8);
        let task = tokio::spawn(run(db, ids, order, rx, shutdown));
        (MessageWriter { jobs: tx }, task)
    }

    /// Queues a message and returns where its outcome will arrive. Queuing in call order keeps
    /// one connection's messages in the order it sent them.
    pub async fn submit(&self, message: NewMessage) -> Result<oneshot::Receiver<Reply>, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.jobs.send(Job { message, reply }).await.map_err(|_| WriteError::ShuttingDown)?;
        Ok(rx)
    }
}

async fn run(
    db: Db,
    ids: Arc<IdGenerator>,
    order: Option<PublishOrder>,
    mut rx: mpsc::Receiver<Job>,
    shutdown: CancellationToken,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        let first = tokio::select! {
            job = rx.recv() => job,
            _ = shutdown.cancelled() => {
                // Refuse new work, then drain what is already queued.
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { break };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Some(order) = &order {
            order.caught_up().await;
        }
        commit(&db, &ids, order.as_ref().map(|o| o.node), &mut batch).await;
    }
    tracing::debug!("message writer stopped");
}

async fn commit(db: &Db, ids: &IdGenerator, announce: Option<NodeId>, batch: &mut Vec<Job>) {
    let messages: Vec<NewMessage> = batch.iter().map(|j| j.message.clone()).collect();
    match db.store_messages_announced(&messages, || ids.next(), announce).await {
        Ok(stored) => {
            for (job, outcome) in batch.drain(..).zip(stored) {
                let _ = job.reply.send(Ok(outcome)); // the sender may have gone; the message stays
            }
        }
        Err(e) if batch.len() > 1 => {
            // One bad row must not fail its neighbours: retry them one by one.
            tracing::warn!(error = %e, size = batch.len(), "batch commit failed; retrying singly");
            for job in batch.drain(..) {
                let outcome = db
                    .store_messages_announced(std::slice::from_ref(&job.message), || ids.next(), announce)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "message commit failed");
                        WriteError::Database
                    })
                    .and_then(|mut v| v.pop().ok_or(WriteError::Database));
                let _ = job.reply.send(outcome);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "message commit failed");
            for job in batch.drain(..) {
                let _ = job.reply.send(Err(WriteError::Database));
            }
        }
    }
}
