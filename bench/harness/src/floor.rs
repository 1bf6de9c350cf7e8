//! The fan-out floor: a minimal tokio + tungstenite broadcaster, run as its own process (this
//! binary's hidden `floor-server` command) so its CPU is read like the other servers'. Every
//! text frame any connection sends is written, byte for byte, to every connection (the sender
//! too, as Hearth and Socket.IO do): the frames are pre-serialised by the sender, which builds
//! exactly the `Dispatch`/`MessageCreate` frame Hearth would write. No auth, no persistence, no
//! sequence numbers, no replay buffer, no batching of writes: one task per connection, a
//! `tokio::sync::broadcast` of `Utf8Bytes` (shared, never copied per receiver) and one
//! `send` (a write syscall) per frame, with the same WebSocket buffer sizes as Hearth's
//! gateway. It is what the hardware, the kernel and the WebSocket codec cost, and little else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use hearth_protocol::gateway::{Event, ServerMsg};
use hearth_protocol::model::Message as ChatMessage;
use hearth_protocol::{ChannelId, MessageId, UserId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::process::{ScratchDir, ServerProcess};
use crate::server::Paths;

/// Frames a slow receiver may fall behind by before it skips some (counted, never silent:
/// the harness sees fewer deliveries).
const BACKLOG: usize = 4096;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Where to write the bound address.
    #[arg(long)]
    pub addr_file: PathBuf,
}

/// The floor server process, stopped when dropped.
pub struct FloorServer {
    process: ServerProcess,
    addr: SocketAddr,
    _dir: ScratchDir,
}

impl FloorServer {
    pub async fn start(paths: &Paths, label: &str) -> Result<Self> {
        let dir = ScratchDir::new(label)?;
        let addr_file = dir.path().join("floor.addr");
        std::fs::create_dir_all(&paths.out_dir)
            .with_context(|| format!("creating {}", paths.out_dir.display()))?;
        let log_path = paths.out_dir.join(format!("{label}.floor.log"));
        let me = std::env::current_exe().context("finding the harness binary")?;
        let args = vec!["floor-server".to_owned(), "--addr-file".to_owned(), addr_file.display().to_string()];
        let mut process = ServerProcess::spawn("floor broadcaster", &me, &args, &[], &log_path)?;
        let text = process.wait_for_file(&addr_file, Duration::from_secs(30)).await?;
        let addr = text.parse().with_context(|| format!("floor addr file holds {text:?}"))?;
        Ok(FloorServer { process, addr, _dir: dir })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub fn check_alive(&mut self) -> Result<()> {
        self.process.check_alive()
    }

    pub async fn stop(self) -> Result<()> {
        self.process.stop().await
    }
}

/// The `Dispatch` frame Hearth writes for a message with this content and nonce: the floor
/// relays it as it is, so both write frames of the same size.
pub fn dispatch_frame(channel: ChannelId, nonce: String, content: String) -> Result<Message> {
    let message = ChatMessage {
        // Typical magnitudes, so the ids are as long as Hearth's.
        id: MessageId(548_125_392_158_932_992),
        channel_id: channel,
        author_id: UserId(548_125_392_158_932_000),
        content,
        created_at: 1_764_935_000_000,
        edited_at: None,
        reply_to: None,
        mentions: Vec::new(),
        reactions: Vec::new(),
        attachments: Vec::new(),
    };
    let frame = ServerMsg::Dispatch { seq: 1, event: Event::MessageCreate { message, nonce: Some(nonce) } };
    Ok(Message::text(serde_json::to_string(&frame).context("encoding a Dispatch")?))
}

/// The `floor-server` command: serves until killed.
pub async fn serve(args: &ServeArgs) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("binding")?;
    let addr = listener.local_addr()?;
    write_addr(&args.addr_file, addr)?;
    let (tx, _) = broadcast::channel(BACKLOG);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(connection(stream, tx.clone()));
    }
}

fn write_addr(path: &Path, addr: SocketAddr) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, addr.to_string()).context("writing the addr file")?;
    std::fs::rename(&tmp, path).context("publishing the addr file")
}

async fn connection(stream: TcpStream, tx: broadcast::Sender<tokio_tungstenite::tungstenite::Utf8Bytes>) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(4 * 1024 * 1024);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let mut rx = tx.subscribe();
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Ok(text) => {
                    if ws.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => eprintln!("a receiver skipped {n} frames"),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let _no_receivers_is_fine = tx.send(text);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_frame_is_a_hearth_dispatch() {
        let Message::Text(text) = dispatch_frame(ChannelId(5), "n".into(), "fanout 1 2".into()).unwrap()
        else {
            panic!("not text")
        };
        match crate::gateway::parse_inbound(text.as_str()).unwrap() {
            crate::gateway::Inbound::MessageCreate { content, nonce, .. } => {
                assert_eq!(content, "fanout 1 2");
                assert_eq!(nonce.as_deref(), Some("n"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
