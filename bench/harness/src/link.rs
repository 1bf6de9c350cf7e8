//! One client connection of a bench, to Hearth, the Socket.IO peer or the fan-out floor, behind
//! one interface:
//! send a chat message, get the next chat-level event. Keep-alives of either protocol (Hearth's
//! client-driven `Heartbeat`, Engine.IO's server-driven ping) are answered inside, so a bench
//! loop only sees what it measures.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use hearth_protocol::ChannelId;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use crate::gateway::{self, GatewaySession, Ws};
use crate::socketio;

/// The Socket.IO event name the peer server relays.
const SIO_EVENT: &str = "msg";

/// What a bench sees arrive.
#[derive(Debug)]
pub enum Event {
    /// A chat message delivered to this connection; `nonce` is the sender's (Hearth only).
    Chat {
        content: String,
        nonce: Option<String>,
    },
    /// The server refused something this connection sent.
    Refused {
        code: String,
        nonce: Option<String>,
    },
    HeartbeatAck,
}

enum Wire {
    Hearth {
        channel: ChannelId,
        last_seq: u64,
        heartbeat: Option<Interval>,
    },
    SocketIo,
    /// The fan-out floor (`floor.rs`): sends and receives Hearth `Dispatch` frames verbatim.
    Floor {
        channel: ChannelId,
    },
}

enum Step {
    Frame(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Beat,
}

/// Resolves when this connection owes the server a heartbeat; never for Socket.IO.
async fn heartbeat_due(wire: &mut Wire) {
    match wire {
        Wire::Hearth { heartbeat: Some(interval), .. } => {
            interval.tick().await;
        }
        _ => std::future::pending::<()>().await,
    }
}

pub struct Link {
    ws: Ws,
    wire: Wire,
}

impl Link {
    /// A Hearth session posting to `channel`. With `auto_heartbeat` the link sends `Heartbeat`
    /// on the server's schedule (first one at a random point of the interval, so thousands of
    /// connections do not beat in step).
    pub fn hearth(session: GatewaySession, channel: ChannelId, auto_heartbeat: bool) -> Link {
        let heartbeat = auto_heartbeat.then(|| {
            // Beat at 80 % of the requested interval, to stay clear of the server's deadline.
            let every = session.heartbeat_every.mul_f64(0.8).max(Duration::from_millis(500));
            let first = every.mul_f64(rand::random::<f64>());
            let mut interval = tokio::time::interval_at(Instant::now() + first, every);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        Link { ws: session.ws, wire: Wire::Hearth { channel, last_seq: session.seq, heartbeat } }
    }

    pub fn socketio(ws: Ws) -> Link {
        Link { ws, wire: Wire::SocketIo }
    }

    pub fn floor(ws: Ws, channel: ChannelId) -> Link {
        Link { ws, wire: Wire::Floor { channel } }
    }

    /// Queues chat messages and writes them out together (the nonce is ignored by Socket.IO,
    /// which has none).
    pub async fn send_chats(&mut self, batch: impl IntoIterator<Item = (String, String)>) -> Result<()> {
        for (nonce, content) in batch {
            let frame = self.chat_frame(nonce, content)?;
            self.ws.feed(frame).await.context("queueing a chat message")?;
        }
        self.ws.flush().await.context("flushing chat messages")
    }

    fn chat_frame(&self, nonce: String, content: String) -> Result<Message> {
        match &self.wire {
            Wire::Hearth { channel, .. } => gateway::send_message(*channel, nonce, content),
            Wire::SocketIo => socketio::emit(SIO_EVENT, &content),
            Wire::Floor { channel } => crate::floor::dispatch_frame(*channel, nonce, content),
        }
    }

    /// Sends a Hearth `Heartbeat` now (for round-trip probes; Socket.IO has no client ping).
    pub async fn send_heartbeat(&mut self) -> Result<()> {
        match &self.wire {
            Wire::Hearth { last_seq, .. } => {
                let frame = gateway::heartbeat(*last_seq)?;
                self.ws.send(frame).await.context("sending Heartbeat")
            }
            Wire::SocketIo | Wire::Floor { .. } => bail!("only Hearth clients send heartbeats"),
        }
    }

    /// The next event, answering keep-alives on the way. Cancel-safe between frames: a frame
    /// is either fully handled or still unread.
    pub async fn next(&mut self) -> Result<Event> {
        loop {
            let step = {
                let Link { ws, wire } = &mut *self;
                tokio::select! {
                    frame = ws.next() => Step::Frame(frame),
                    () = heartbeat_due(wire) => Step::Beat,
                }
            };
            let frame = match step {
                Step::Frame(frame) => frame,
                Step::Beat => {
                    if let Wire::Hearth { last_seq, .. } = &self.wire {
                        let beat = gateway::heartbeat(*last_seq)?;
                        self.ws.send(beat).await.context("sending Heartbeat")?;
                    }
                    continue;
                }
            };
            let msg = frame.context("server closed the connection")?.context("reading a frame")?;
            let text = match msg {
                Message::Text(text) => text,
                Message::Close(close) => bail!("server closed the connection: {close:?}"),
                Message::Binary(_) => bail!("unexpected binary frame"),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            match &mut self.wire {
                Wire::Hearth { last_seq, .. } => match gateway::parse_inbound(text.as_str())? {
                    gateway::Inbound::MessageCreate { seq, content, nonce } => {
                        *last_seq = seq;
                        return Ok(Event::Chat {
                            content: content.into_owned(),
                            nonce: nonce.map(|n| n.into_owned()),
                        });
                    }
                    gateway::Inbound::HeartbeatAck => return Ok(Event::HeartbeatAck),
                    gateway::Inbound::Error { code, nonce } => {
                        return Ok(Event::Refused {
                            code: code.into_owned(),
                            nonce: nonce.map(|n| n.into_owned()),
                        });
                    }
                    gateway::Inbound::Other { seq } => {
                        if let Some(seq) = seq {
                            *last_seq = seq;
                        }
                    }
                },
                Wire::Floor { .. } => {
                    if let gateway::Inbound::MessageCreate { content, nonce, .. } =
                        gateway::parse_inbound(text.as_str())?
                    {
                        return Ok(Event::Chat {
                            content: content.into_owned(),
                            nonce: nonce.map(|n| n.into_owned()),
                        });
                    }
                }
                Wire::SocketIo => match socketio::parse_inbound(text.as_str())? {
                    socketio::Inbound::Ping => {
                        self.ws.send(socketio::pong()).await.context("answering ping")?;
                    }
                    socketio::Inbound::Event { name, arg } if name == SIO_EVENT => {
                        return Ok(Event::Chat { content: arg.into_owned(), nonce: None });
                    }
                    socketio::Inbound::Event { .. } | socketio::Inbound::Other => {}
                },
            }
        }
    }

    /// Closes politely; errors are irrelevant at this point of a bench.
    pub async fn close(mut self) {
        let _closed = tokio::time::timeout(Duration::from_millis(200), self.ws.close(None)).await;
    }
}
