//! Several `hearth-server` processes on one PostgreSQL: members connected to different
//! processes chat, see each other's presence, call (signalling crosses), are kicked everywhere;
//! a process killed with SIGKILL in the middle of traffic loses no acknowledged message, and
//! its clients (the real engine) go on through the other with no gap and no duplicate. And a
//! second server on one SQLite data directory is refused.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::files::{append, fetch, files_in, header, send, upload};
use common::{Backend, Client, Gateway, PASSWORD, TestServer, UNLIMITED, WAIT, say};
use hearth_client::backoff::BackoffConfig;
use hearth_client::{Engine, EngineOptions, SessionEvent, SessionHandle};
use hearth_protocol::api::UploadStatus;
use hearth_protocol::gateway::{ClientMsg, Event, close};
use hearth_protocol::model::{Attachment, Signal, Status};
use hearth_protocol::{ChannelId, MessageId, UserId};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

/// Another process counts as dead after this long without a heartbeat.
const NODE_TIMEOUT_MS: &str = "1500";

fn args() -> Vec<&'static str> {
    let mut a = UNLIMITED.to_vec();
    a.extend(["--node-timeout-ms", NODE_TIMEOUT_MS]);
    a
}

async fn second_process(first: &TestServer) -> TestServer {
    TestServer::start_with(first.backend.clone(), &args()).await
}

async fn presence(gw: &mut Gateway, user: UserId, status: Status) {
    gw.event(|e| match e {
        Event::PresenceUpdate { presence } if presence.user_id == user && presence.status == status => {
            Some(())
        }
        _ => None,
    })
    .await;
}

async fn message(gw: &mut Gateway, content: &str) -> MessageId {
    gw.event(|e| match e {
        Event::MessageCreate { message, .. } if message.content == content => Some(message.id),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_two_processes_chat_see_each_other_call_and_are_kicked_everywhere() {
    let Some(backend) = common::postgres().await else { return };
    let mut a = TestServer::start_with(backend, &args()).await;
    let admin = a.admin().await;
    let general = admin.text_channel("general").await.id;
    let lounge = admin.voice_channel("lounge").await.id;
    let bob = a.member(&admin, "bob").await;
    let carol = a.member(&admin, "carol").await;
    let b = second_process(&a).await;
    let (bob, carol) = (bob.at(&b), carol.at(&b));

    // Presence crosses both ways, in Ready and live.
    let mut admin_gw = a.gateway(&admin).await;
    let mut bob_gw = b.gateway(&bob).await;
    presence(&mut admin_gw, bob.id(), Status::Online).await;
    let seen = bob_gw.ready.as_ref().expect("ready").presences.clone();
    if !seen.iter().any(|p| p.user_id == admin.id() && p.status == Status::Online) {
        // Bob identified before the other process's announcement arrived: it follows live.
        presence(&mut bob_gw, admin.id(), Status::Online).await;
    }

    // Messages both ways; every id is unique and both processes store them.
    admin_gw.send(&say(general, "hello from a")).await;
    let first = message(&mut bob_gw, "hello from a").await;
    bob_gw.send(&say(general, "hello from b")).await;
    let second = message(&mut admin_gw, "hello from b").await;
    assert_ne!(first, second);
    // Edits, reactions and typing cross too.
    bob_gw.send(&ClientMsg::Typing { channel_id: general }).await;
    admin_gw
        .event(|e| matches!(e, Event::TypingStart { user_id, .. } if *user_id == bob.id()).then_some(()))
        .await;
    admin_gw
        .send(&ClientMsg::EditMessage { channel_id: general, message_id: first, content: "edited".into() })
        .await;
    bob_gw
        .event(|e| matches!(e, Event::MessageUpdate { message, .. } if message.id == first && message.content == "edited").then_some(()))
        .await;
    bob_gw.send(&ClientMsg::AddReaction { channel_id: general, message_id: first, emoji: "👍".into() }).await;
    admin_gw
        .event(|e| matches!(e, Event::ReactionAdd { message_id, .. } if *message_id == first).then_some(()))
        .await;

    // A channel made on one process exists on the other at once: a message in it arrives.
    let news = admin.text_channel("news").await.id;
    admin_gw.send(&say(news, "in a new channel")).await;
    bob_gw.event(|e| matches!(e, Event::ChannelCreate { channel } if channel.id == news).then_some(())).await;
    message(&mut bob_gw, "in a new channel").await;

    // A call across processes: voice states and signalling cross, both ways.
    admin_gw.send(&ClientMsg::VoiceJoin { channel_id: lounge, muted: false, deafened: false }).await;
    bob_gw
        .event(|e| matches!(e, Event::VoiceStateUpdate { state } if state.user_id == admin.id() && state.channel_id == Some(lounge)).then_some(()))
        .await;
    bob_gw.send(&ClientMsg::VoiceJoin { channel_id: lounge, muted: false, deafened: false }).await;
    admin_gw
        .event(|e| matches!(e, Event::VoiceStateUpdate { state } if state.user_id == bob.id() && state.channel_id == Some(lounge)).then_some(()))
        .await;
    let offer = Signal::Offer { sdp: "v=0 offer".into() };
    admin_gw.send(&ClientMsg::VoiceSignal { to: bob.id(), signal: offer.clone() }).await;
    let got = bob_gw
        .event(|e| match e {
            Event::VoiceSignal { from, signal } if *from == admin.id() => Some(signal.clone()),
            _ => None,
        })
        .await;
    assert_eq!(got, offer);
    let answer = Signal::Answer { sdp: "v=0 answer".into() };
    bob_gw.send(&ClientMsg::VoiceSignal { to: admin.id(), signal: answer.clone() }).await;
    let got = admin_gw
        .event(|e| match e {
            Event::VoiceSignal { from, signal } if *from == bob.id() => Some(signal.clone()),
            _ => None,
        })
        .await;
    assert_eq!(got, answer);

    // A kick on one process closes the member's session on the other.
    let mut carol_gw = b.gateway(&carol).await;
    presence(&mut admin_gw, carol.id(), Status::Online).await;
    let (status, _) = admin.post(&format!("/users/{}/kick", carol.id()), json!({})).await;
    assert!(status.is_success(), "kick: {status}");
    assert_eq!(carol_gw.closed().await, Some(close::KICKED));
    let (status, _) = carol.get("/users/@me").await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "a kicked member's token stops working everywhere");

    // The process dies without a word: its members go offline and leave the call elsewhere.
    a.kill9().await;
    presence(&mut bob_gw, admin.id(), Status::Offline).await;
    bob_gw
        .event(|e| matches!(e, Event::VoiceStateUpdate { state } if state.user_id == admin.id() && state.channel_id.is_none()).then_some(()))
        .await;
    // History on the survivor holds everything, once.
    let history = bob.whole_history(general).await;
    let ids: Vec<MessageId> = history.iter().map(|m| m.id).collect();
    assert_eq!(ids, [first, second]);
}

/// Processes that share a files directory (`--files-dir`) serve what another stored: an upload
/// begun on one and resumed on the other, its thumbnail, an avatar; a message deleted on one
/// frees the shared file. Each keeps its own data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_files_directory_serve_each_others_files() {
    let Some(backend) = common::postgres().await else { return };
    let files = tempdir::new("files");
    let files_dir = files.0.to_str().expect("a UTF-8 temp path").to_string();
    let mut shared = args();
    shared.extend(["--files-dir", files_dir.as_str()]);
    let a = TestServer::start_with(backend, &shared).await;
    let admin = a.admin().await;
    let general = admin.text_channel("general").await.id;
    let bob = a.member(&admin, "bob").await;
    let b = TestServer::start_with(a.backend.clone(), &shared).await;
    let (admin_b, bob) = (admin.at(&b), bob.at(&b));

    // Begun on a, resumed and finished on b.
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let status: UploadStatus = admin
        .ok(
            Method::POST,
            "/uploads",
            Some(json!({"name": "notes.bin", "size": bytes.len()})),
            StatusCode::CREATED,
        )
        .await;
    let id = status.id.to_string();
    assert_eq!(append(&admin, &id, 0, bytes[..100_000].to_vec()).await.0, StatusCode::NO_CONTENT);
    let (code, headers) = append(&admin_b, &id, 100_000, bytes[100_000..].to_vec()).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    assert_eq!(header(&headers, "upload-offset"), bytes.len().to_string());
    let attachment: Attachment =
        admin_b.ok(Method::POST, &format!("/uploads/{id}/finish"), None, StatusCode::CREATED).await;
    let photo = upload(&admin, "photo.png", &common_png(), 1).await;
    assert!(photo.thumbnail, "a PNG gets a thumbnail");
    let message = send(&admin, general, "files", &[&attachment, &photo]).await;

    // Bob, on b, gets both and the thumbnail made on a.
    let (status, _, got) = fetch(&bob, &format!("/attachments/{}", attachment.id), None).await;
    assert_eq!((status, got == bytes), (StatusCode::OK, true));
    let (status, _, _) = fetch(&bob, &format!("/attachments/{}/thumbnail", photo.id), None).await;
    assert_eq!(status, StatusCode::OK);

    // An avatar set on a is served by b.
    let (status, body) = admin.send_bytes(Method::PUT, "/users/@me/avatar", common_png()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let hash = body["avatar"].as_str().expect("avatar hash").to_string();
    let (status, kind, _) = bob.get_bytes(&format!("/avatars/{hash}.png")).await;
    assert_eq!((status, kind.as_deref()), (StatusCode::OK, Some("image/png")));

    // Deleted on b: the shared store lets the files go.
    let blobs = files.0.join("attachments");
    assert_eq!(files_in(&blobs).len(), 3, "two blobs and a thumbnail: {:?}", files_in(&blobs));
    let mut gw = b.gateway(&admin_b).await;
    gw.send(&ClientMsg::DeleteMessage { channel_id: general, message_id: message.id }).await;
    gw.event(|e| {
        matches!(e, Event::MessageDelete { message_id, .. } if *message_id == message.id).then_some(())
    })
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !files_in(&blobs).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "still stored: {:?}", files_in(&blobs));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A small PNG (a checkerboard).
fn common_png() -> Vec<u8> {
    let image = image::RgbImage::from_fn(64, 64, |x, y| {
        image::Rgb(if (x / 8 + y / 8) % 2 == 0 { [200, 40, 40] } else { [40, 40, 200] })
    });
    let mut out = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).expect("encoding a PNG");
    out
}

/// A TCP forwarder standing in for a load balancer: new connections go to the current
/// target; switching the target leaves existing connections alone.
struct Balancer {
    addr: String,
    target: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Balancer {
    async fn start(target: &str) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the balancer");
        let addr = listener.local_addr().expect("balancer address").to_string();
        let target = Arc::new(Mutex::new(target.to_string()));
        let current = target.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = current.lock().expect("target").clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Balancer { addr, target, task }
    }

    fn switch_to(&self, target: &str) {
        *self.target.lock().expect("target") = target.to_string();
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Member {
    engine: Engine,
    session: SessionHandle,
    events: tokio::sync::broadcast::Receiver<SessionEvent>,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    pub fn new(name: &str) -> Dir {
        let n: u64 = rand::random();
        let path = std::env::temp_dir().join(format!("hearth-scale-{name}-{n:016x}"));
        std::fs::create_dir_all(&path).expect("temp dir");
        Dir(path)
    }
}

fn fast() -> EngineOptions {
    EngineOptions {
        backoff: BackoffConfig {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(400),
            stable_after: Duration::from_secs(5),
        },
        ..Default::default()
    }
}

impl Member {
    /// Logs in to the server at `url` with the real engine and waits until connected.
    async fn login(url: &str, name: &str) -> Member {
        let dir = tempdir::new(name);
        let engine = Engine::open_with(&dir.0, fast()).expect("engine");
        let account = engine.login(url, name, PASSWORD).await.expect("login");
        let session = engine.activate(&account.id).await.expect("activate");
        let events = session.subscribe();
        tokio::time::timeout(WAIT, session.connected()).await.expect("connected in time").expect("connected");
        Member { engine, session, events, _dir: dir }
    }

    /// Nonces whose `MessageCreate` (the acknowledgement) has arrived so far.
    fn acknowledged(&mut self, acked: &mut HashSet<String>) {
        while let Ok(event) = self.events.try_recv() {
            if let SessionEvent::Event(Event::MessageCreate { nonce: Some(nonce), .. }) = event {
                acked.insert(nonce);
            }
        }
    }

    /// Waits until the outbox is empty (everything sent was acknowledged).
    async fn drained(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !self.engine.outbox().await.expect("outbox").is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "the outbox never drained");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The whole channel as this client's cache holds it (what arrived live, and what the
    /// engine caught up on after identifying afresh), oldest first.
    async fn timeline(&self, channel: ChannelId) -> Vec<(MessageId, String)> {
        let mut all = Vec::new();
        let mut before = None;
        loop {
            let page = self.engine.cached_history(channel, before, 100).await.expect("cached history");
            let Some(oldest) = page.iter().map(|m| m.id).min() else { break };
            all.extend(page.iter().map(|m| (m.id, m.content.clone())));
            if page.len() < 100 {
                break;
            }
            before = Some(oldest);
        }
        all.sort();
        all
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_traffic_loses_nothing_and_its_clients_go_on_through_the_other() {
    let Some(backend) = common::postgres().await else { return };
    let mut a = TestServer::start_with(backend, &args()).await;
    let admin: Client = a.admin().await;
    let general = admin.text_channel("general").await.id;
    let invite = admin.invite().await;
    a.client().register(&invite.code, "alice").await;
    let invite = admin.invite().await;
    a.client().register(&invite.code, "bob").await;
    let b = second_process(&a).await;

    // Alice reaches the servers through the balancer (now: A); bob is on B.
    let balancer = Balancer::start(&a.addr).await;
    let mut alice = Member::login(&format!("http://{}", balancer.addr), "alice").await;
    let bob = Member::login(&b.base, "bob").await;

    // Both talk; A dies under alice in the middle; the balancer then sends her to B.
    let mut sent: Vec<String> = Vec::new();
    let mut alice_acked = HashSet::new();
    for i in 0..60 {
        let nonce = alice.engine.send_message(general, &format!("alice {i}"), None).await.expect("send");
        sent.push(nonce);
        bob.engine.send_message(general, &format!("bob {i}"), None).await.expect("send");
        if i == 30 {
            // Let some of alice's messages be acknowledged, then kill A with others in flight.
            tokio::time::sleep(Duration::from_millis(100)).await;
            alice.acknowledged(&mut alice_acked);
            a.kill9().await;
            balancer.switch_to(&b.addr);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!alice_acked.is_empty(), "some of alice's messages were acknowledged before the kill");

    // Alice's engine reconnects through the balancer to B, is told its session is unknown,
    // identifies afresh, catches up and sends what was not acknowledged again.
    alice.drained().await;
    bob.drained().await;
    alice.acknowledged(&mut alice_acked);
    for nonce in &sent {
        assert!(alice.engine.outbox().await.expect("outbox").iter().all(|o| &o.nonce != nonce));
    }

    // The server's record: each of the 120 messages exactly once, every acknowledged one in it.
    let reader = admin.at(&b);
    let history = reader.whole_history(general).await;
    let contents: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    let unique: HashSet<&str> = contents.iter().copied().collect();
    assert_eq!(contents.len(), 120, "stored: {contents:?}");
    assert_eq!(unique.len(), 120, "a message was stored twice: {contents:?}");
    let server: Vec<(MessageId, String)> = {
        let mut v: Vec<_> = history.iter().map(|m| (m.id, m.content.clone())).collect();
        v.sort();
        v
    };

    // What each client shows is exactly that: no gap, no duplicate, same ids.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let alice_sees = alice.timeline(general).await;
        let bob_sees = bob.timeline(general).await;
        if alice_sees == server && bob_sees == server {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let missing = |seen: &[(MessageId, String)]| -> Vec<String> {
                let have: HashMap<MessageId, ()> = seen.iter().map(|(id, _)| (*id, ())).collect();
                server.iter().filter(|(id, _)| !have.contains_key(id)).map(|(_, c)| c.clone()).collect()
            };
            panic!(
                "clients differ from the server: alice misses {:?} ({} shown), bob misses {:?} ({} shown)",
                missing(&alice_sees),
                alice_sees.len(),
                missing(&bob_sees),
                bob_sees.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(alice.session.status(), hearth_client::ConnectionStatus::Connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_one_sqlite_data_directory_is_refused() {
    let first = TestServer::start(Backend::Sqlite).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth-server"))
        .arg("--data-dir")
        .arg(&first.data_dir)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("HEARTH_LOG", "warn")
        .output()
        .await
        .expect("running a second server");
    assert!(!output.status.success(), "the second server must not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("another hearth-server is running"), "the refusal says why: {stderr}");
    // The first one is unharmed.
    common::http_client(); // installs the TLS provider reqwest needs
    let (status, _) = first.get_text("/healthz").await;
    assert!(status.is_success());
}
