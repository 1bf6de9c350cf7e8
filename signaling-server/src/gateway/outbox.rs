//! The one ordered way out of a gateway connection: every byte the server sends on it goes
//! through its [`Outbox`], whoever writes it.
//!
//! Events are written by the process's flusher, straight into the socket
//! ([`Outbox::write_dispatches`], under the session's lock, see [`super::session`]): a
//! fan-out to N connections costs N writes and one task wake-up, where waking each
//! connection's task to write its own copy costs a scheduler round trip, a poll of the
//! connection and a zero-filled read attempt per delivery. The connection's task writes
//! everything else (`Hello`, `Ready`, replies, the codec's pongs and Close frames) through the
//! WebSocket codec, whose socket is a [`ConnIo`] that writes into the same outbox, so the byte
//! stream stays whole frames in order.
//!
//! A write the socket does not take at once (its send buffer is full) is kept in the outbox's
//! pending bytes, and later writes queue behind it; the connection's task is woken to wait for
//! the socket and [`flush`](Outbox::poll_flush) them.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use hyper::body::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// What became of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The socket took it all.
    Sent,
    /// This many bytes wait in the outbox for the socket (the connection must flush).
    Queued(usize),
    /// The socket failed: the peer is gone.
    Failed,
}

/// The sending side of one connection.
#[derive(Debug)]
pub struct Outbox {
    // Held for one non-blocking write or a copy into `pending`, never across an await.
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    half: OwnedWriteHalf,
    /// `half`'s socket, written with `send(2)` directly (see [`Inner::send`]).
    #[cfg(target_os = "linux")]
    fd: std::os::fd::RawFd,
    /// Bytes the socket has not taken yet, from `sent` on.
    pending: Vec<u8>,
    sent: usize,
    failed: bool,
}

/// A thread's join buffer above this is given back after the write.
const KEEP_CAPACITY: usize = 64 * 1024;
/// What a thread keeps for joining frames (no allocation per write).
const JOINED_CAPACITY: usize = 4096;

thread_local! {
    /// Where the frames of one write are joined.
    static JOINED: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(JOINED_CAPACITY));
}

impl Inner {
    fn queued(&self) -> usize {
        self.pending.len() - self.sent
    }

    /// Writes `bytes` now if nothing waits before them, keeps what the socket does not take.
    fn write(&mut self, bytes: &[u8]) -> Written {
        if self.failed {
            return Written::Failed;
        }
        let mut sent = 0;
        if self.queued() == 0 {
            match self.send(bytes) {
                Ok(n) => sent = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.failed = true;
                    return Written::Failed;
                }
            }
        }
        self.pending.extend_from_slice(&bytes[sent..]);
        match self.queued() {
            0 => Written::Sent,
            n => Written::Queued(n),
        }
    }

    /// One non-blocking `send`. On Linux straight on the socket: tokio's `try_write` first
    /// reads the socket's readiness through two more pointers, two cache misses per delivery
    /// in a fan-out to thousands of connections. Its readiness may then say writable when the
    /// socket is full; that is safe, as its `poll_write` (the flush) tries the write first
    /// and waits only on `WouldBlock`.
    #[cfg(target_os = "linux")]
    fn send(&self, bytes: &[u8]) -> io::Result<usize> {
        // SAFETY: `fd` is the socket of `half`, which `self` owns: it stays open while `self`
        // lives. `send` reads `bytes.len()` bytes from `bytes` and keeps no pointer.
        let n = unsafe {
            libc::send(self.fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        };
        match usize::try_from(n) {
            Ok(n) => Ok(n),
            Err(_) => match io::Error::last_os_error() {
                // The flush retries.
                e if e.kind() == io::ErrorKind::Interrupted => Err(io::ErrorKind::WouldBlock.into()),
                e => Err(e),
            },
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn send(&self, bytes: &[u8]) -> io::Result<usize> {
        self.half.try_write(bytes)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.failed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        while self.queued() > 0 {
            match ready!(Pin::new(&mut self.half).poll_write(cx, &self.pending[self.sent..])) {
                Ok(0) => {
                    self.failed = true;
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Ok(n) => self.sent += n,
                Err(e) => {
                    self.failed = true;
                    return Poll::Ready(Err(e));
                }
            }
        }
        // Most connections never queue: memory per idle connection stays small.
        self.pending = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the `Dispatch` frames of these events (`{"op":"Dispatch","seq":N,"event":PAYLOAD}`,
    /// each a WebSocket text frame) with one `send`, joined in a buffer of the thread's.
    pub fn write_dispatches<'a>(&self, events: impl IntoIterator<Item = (u64, &'a str)>) -> Written {
        JOINED.with_borrow_mut(|joined| {
            joined.clear();
            for (seq, payload) in events {
                let mut head = [0u8; HEAD_MAX];
                joined.extend_from_slice(dispatch_head(&mut head, seq, payload.len()));
                joined.extend_from_slice(payload.as_bytes());
                joined.push(b'}');
            }
            let written = self.lock().write(joined);
            if joined.capacity() > KEEP_CAPACITY {
                *joined = Vec::with_capacity(JOINED_CAPACITY);
            }
            written
        })
    }

    #[cfg(test)]
    pub fn write_dispatch(&self, seq: u64, payload: &str) -> Written {
        self.write_dispatches([(seq, payload)])
    }

    /// Bytes waiting for the socket.
    pub fn queued(&self) -> usize {
        self.lock().queued()
    }

    /// Writes what waits, as the socket takes it.
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.lock().poll_flush(cx)
    }

    pub async fn flush(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }
}

const HEAD_TEXT: &[u8] = b"{\"op\":\"Dispatch\",\"seq\":";
const MID_TEXT: &[u8] = b",\"event\":";
/// The frame header (at most 10 bytes), the head text, 20 digits and the mid text.
const HEAD_MAX: usize = 10 + HEAD_TEXT.len() + 20 + MID_TEXT.len();

/// The WebSocket header of an unmasked final text frame of `len` bytes (RFC 6455 section 5.2)
/// followed by the JSON up to the event, in `buf`.
fn dispatch_head(buf: &mut [u8; HEAD_MAX], seq: u64, payload_len: usize) -> &[u8] {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = seq;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let digits = &digits[at..];
    let len = HEAD_TEXT.len() + digits.len() + MID_TEXT.len() + payload_len + 1;
    let mut w = 0;
    let mut put = |bytes: &[u8]| {
        buf[w..w + bytes.len()].copy_from_slice(bytes);
        w += bytes.len();
    };
    // FIN and the text opcode.
    put(&[0x81]);
    if len < 126 {
        put(&[len as u8]);
    } else if let Ok(short) = u16::try_from(len) {
        put(&[126]);
        put(&short.to_be_bytes());
    } else {
        put(&[127]);
        put(&(len as u64).to_be_bytes());
    }
    put(HEAD_TEXT);
    put(digits);
    put(MID_TEXT);
    &buf[..w]
}

/// The socket the WebSocket codec of a connection reads and writes: reads come from the TCP
/// stream (after what hyper had read past the upgrade request), writes go into the outbox.
pub struct ConnIo {
    read: OwnedReadHalf,
    /// Bytes hyper read past the upgrade request, read first.
    early: Bytes,
    out: Arc<Outbox>,
}

impl ConnIo {
    /// Splits an upgraded TCP stream; `early` is what was read past the upgrade request.
    pub fn new(stream: TcpStream, early: Bytes) -> ConnIo {
        #[cfg(target_os = "linux")]
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        let (read, half) = stream.into_split();
        // An empty view would still hold hyper's whole read buffer.
        let early = if early.is_empty() { Bytes::new() } else { Bytes::copy_from_slice(&early) };
        let out = Arc::new(Outbox {
            inner: Mutex::new(Inner {
                half,
                #[cfg(target_os = "linux")]
                fd,
                pending: Vec::new(),
                sent: 0,
                failed: false,
            }),
        });
        ConnIo { read, early, out }
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.out
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.early.is_empty() {
            let n = self.early.len().min(buf.remaining());
            let early = self.early.split_to(n);
            buf.put_slice(&early);
            if self.early.is_empty() {
                self.early = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    /// Takes the whole buffer: what the socket does not take now waits in the outbox, behind
    /// nothing but earlier bytes (a flush writes it).
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.out.lock().write(buf) {
            Written::Failed => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Written::Sent | Written::Queued(_) => Poll::Ready(Ok(buf.len())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.out.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut out = self.out.lock();
        ready!(out.poll_flush(cx))?;
        Pin::new(&mut out.half).poll_shutdown(cx)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A connected pair: the server's `ConnIo` and the client's end.
    pub(crate) async fn pair() -> (ConnIo, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (ConnIo::new(server, Bytes::new()), client)
    }

    /// Reads one unmasked text frame's payload.
    pub(crate) async fn read_text(client: &mut TcpStream) -> String {
        let mut head = [0u8; 2];
        client.read_exact(&mut head).await.unwrap();
        assert_eq!(head[0], 0x81, "a final text frame");
        let len = match head[1] {
            126 => {
                let mut b = [0u8; 2];
                client.read_exact(&mut b).await.unwrap();
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                client.read_exact(&mut b).await.unwrap();
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut text = vec![0u8; len];
        client.read_exact(&mut text).await.unwrap();
        String::from_utf8(text).unwrap()
    }

    /// The `seq` of a `Dispatch` frame (of any event).
    pub(crate) fn seq_of(text: &str) -> u64 {
        let frame: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(frame["op"], "Dispatch", "{text}");
        frame["seq"].as_u64().unwrap()
    }

    #[tokio::test]
    async fn dispatch_frames_are_the_server_msg_json_at_every_length_encoding() {
        let (io, mut client) = pair().await;
        let event = |n: usize| format!(r#"{{"t":"ChannelDelete","channel_id":"{}"}}"#, "5".repeat(n));
        // 7-bit, 16-bit and 64-bit payload lengths.
        for (seq, n) in [(0, 1), (7, 100), (10, 1000), (1234567, 70_000), (u64::MAX, 3)] {
            io.outbox().write_dispatch(seq, &event(n));
            io.outbox().flush().await.unwrap();
            let text = read_text(&mut client).await;
            assert_eq!(seq_of(&text), seq);
            assert!(text.contains(&event(n)));
            if n < 20 {
                let parsed: hearth_protocol::gateway::ServerMsg = serde_json::from_str(&text).unwrap();
                assert!(
                    matches!(parsed, hearth_protocol::gateway::ServerMsg::Dispatch { seq: s, .. } if s == seq)
                );
            }
        }
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_waits_in_order_and_a_flush_writes_it() {
        let (io, mut client) = pair().await;
        let big = format!(r#"{{"t":"ChannelDelete","channel_id":"{}"}}"#, "9".repeat(200_000));
        let mut queued = false;
        for seq in 1..=100 {
            queued |= matches!(io.outbox().write_dispatch(seq, &big), Written::Queued(_));
        }
        assert!(queued, "20 MB do not fit in a socket buffer nobody reads");
        assert!(io.outbox().queued() > 0);
        let reader = tokio::spawn(async move {
            let mut seqs = Vec::new();
            for _ in 0..100 {
                seqs.push(seq_of(&read_text(&mut client).await));
            }
            seqs
        });
        io.outbox().flush().await.unwrap();
        assert_eq!(io.outbox().queued(), 0);
        assert_eq!(reader.await.unwrap(), (1..=100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_peer_that_is_gone_fails_the_write() {
        let (io, client) = pair().await;
        drop(client);
        let mut failed = false;
        for seq in 1..=50 {
            failed |= io.outbox().write_dispatch(seq, "{}") == Written::Failed;
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(failed || io.outbox().flush().await.is_err());
    }
}
