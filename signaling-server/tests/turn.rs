//! The embedded STUN/TURN server, driven by a real TURN client (webrtc-rs's `turn` crate) with
//! the credentials the server's API hands out: relaying both ways, refusing wrong, expired and
//! malformed credentials, STUN binding, configuration, and graceful shutdown.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::{Backend, TestServer, WAIT};
use hearth_protocol::api::TurnCredentials;
use hearth_protocol::model::IceServer;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use tokio::net::UdpSocket;
use webrtc_turn::client::{Client as TurnClient, ClientConfig};
use webrtc_util::Conn;

const SECRET: &str = "s3cret";

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// base64(HMAC-SHA1(secret, username)), computed here independently of the server.
fn coturn_credential(secret: &str, username: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A server with a known TURN secret, its admin, and the ICE servers the admin was given.
async fn start(extra: &[&str]) -> (TestServer, common::Client, TurnCredentials) {
    let mut args = vec!["--turn-secret", SECRET];
    args.extend_from_slice(extra);
    let server = TestServer::start_with(Backend::Sqlite, &args).await;
    let admin = server.admin().await;
    let creds: TurnCredentials = admin.ok(Method::GET, "/turn", None, StatusCode::OK).await;
    (server, admin, creds)
}

fn turn_entry(creds: &TurnCredentials) -> &IceServer {
    creds
        .ice_servers
        .iter()
        .find(|s| s.urls.iter().any(|u| u.starts_with("turn:")))
        .expect("a TURN entry in the ICE servers")
}

/// `host:port` of a `turn:` or `stun:` URL.
fn url_addr(url: &str) -> String {
    let rest = url.split_once(':').expect("scheme").1;
    rest.split('?').next().expect("address").to_string()
}

/// The address in DATA_DIR/turn.addr.
fn turn_addr_file(server: &TestServer) -> SocketAddr {
    std::fs::read_to_string(server.data_dir.join("turn.addr"))
        .expect("turn.addr written")
        .trim()
        .parse()
        .expect("turn.addr holds a socket address")
}

/// A TURN client on its own loopback socket, listening.
async fn turn_client(server: &str, username: &str, password: &str) -> (TurnClient, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
    let local = socket.local_addr().expect("local address");
    let client = TurnClient::new(ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        username: username.to_string(),
        password: password.to_string(),
        // Learned from the server's first answer.
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn: Arc::new(socket),
        vnet: None,
    })
    .await
    .expect("TURN client");
    client.listen().await.expect("TURN client listening");
    (client, local)
}

/// Allocation must fail with an error answer from the server (not a time-out).
async fn assert_refused(server: &str, username: &str, password: &str) {
    let (client, _) = turn_client(server, username, password).await;
    let result = tokio::time::timeout(WAIT, client.allocate()).await.expect("the server answers");
    let err = result.err().unwrap_or_else(|| panic!("allocation with {username:?} was accepted"));
    assert!(err.to_string().contains("error"), "refused with an error response, got: {err}");
    client.close().await.expect("closing the client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_relays_udp_both_ways_with_the_credentials_the_server_hands_out() {
    let (server, admin, creds) = start(&[]).await;
    let turn = turn_entry(&creds);
    assert_eq!(
        turn.urls,
        [format!("turn:{}?transport=udp", turn_addr_file(&server))],
        "the embedded server's URL, at the port in turn.addr"
    );
    assert!(creds.ice_servers.iter().any(|s| s.urls == [format!("stun:{}", turn_addr_file(&server))]));
    let username = turn.username.clone().expect("TURN username");
    assert!(username.ends_with(&format!(":{}", admin.session().user.id.0)), "{username}");

    // The gateway's Ready hands out the same servers.
    let gateway = server.gateway(&admin).await;
    let ready = gateway.ready.as_ref().expect("ready");
    let urls = |servers: &[IceServer]| servers.iter().map(|s| s.urls.clone()).collect::<Vec<_>>();
    assert_eq!(urls(&ready.ice_servers), urls(&creds.ice_servers));

    let server_addr = url_addr(&turn.urls[0]);
    let (client, _) =
        turn_client(&server_addr, &username, turn.credential.as_deref().expect("credential")).await;
    let relay =
        tokio::time::timeout(WAIT, client.allocate()).await.expect("allocate in time").expect("allocated");
    let relayed = relay.local_addr().expect("relayed address");
    assert_eq!(relayed.ip().to_string(), "127.0.0.1", "the relay address for a loopback server");
    assert!(relayed.port() >= 49152, "relay ports from the default range, got {relayed}");

    let peer = UdpSocket::bind("127.0.0.1:0").await.expect("peer socket");
    let peer_addr = peer.local_addr().expect("peer address");
    let mut buf = [0u8; 1500];
    // Enough round trips that the client moves from Send indications to a bound channel.
    for i in 0..20 {
        let out = format!("to the peer {i}");
        relay.send_to(out.as_bytes(), peer_addr).await.expect("send through the relay");
        let (n, from) =
            tokio::time::timeout(WAIT, peer.recv_from(&mut buf)).await.expect("peer receives").expect("recv");
        assert_eq!(&buf[..n], out.as_bytes());
        assert_eq!(from, relayed, "the peer sees the relay's address, not the client's");

        let back = format!("back to the client {i}");
        peer.send_to(back.as_bytes(), relayed).await.expect("peer sends");
        let (n, from) = tokio::time::timeout(WAIT, relay.recv_from(&mut buf))
            .await
            .expect("client receives")
            .expect("recv");
        assert_eq!(&buf[..n], back.as_bytes());
        assert_eq!(from, peer_addr);
    }
    client.close().await.expect("closing the client");
}

/// With loopback peers refused (as for any server reachable from elsewhere), a member cannot
/// use the relay to reach a service on the server's own loopback interface, in either
/// direction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_do_not_reach_loopback_peers_when_refused() {
    let (_server, _admin, creds) = start(&["--turn-allow-loopback-peers", "false"]).await;
    let turn = turn_entry(&creds);
    let (client, _) = turn_client(
        &url_addr(&turn.urls[0]),
        turn.username.as_deref().expect("username"),
        turn.credential.as_deref().expect("credential"),
    )
    .await;
    let relay =
        tokio::time::timeout(WAIT, client.allocate()).await.expect("allocate in time").expect("allocated");
    let relayed = relay.local_addr().expect("relayed address");

    let service = UdpSocket::bind("127.0.0.1:0").await.expect("a loopback-only service");
    let service_addr = service.local_addr().expect("service address");
    let mut buf = [0u8; 1500];
    for _ in 0..3 {
        // The client's send may succeed locally: the relay drops it.
        let _ = relay.send_to(b"let me in", service_addr).await;
    }
    let heard = tokio::time::timeout(Duration::from_millis(500), service.recv_from(&mut buf)).await;
    assert!(heard.is_err(), "the loopback service must not receive relayed data: {heard:?}");

    service.send_to(b"hello from inside", relayed).await.expect("service sends");
    let heard = tokio::time::timeout(Duration::from_millis(500), relay.recv_from(&mut buf)).await;
    assert!(heard.is_err(), "data from a loopback peer must not reach the client: {heard:?}");
    client.close().await.expect("closing the client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_credential_is_refused() {
    let (server, _admin, creds) = start(&[]).await;
    let turn = turn_entry(&creds);
    let server_addr = turn_addr_file(&server).to_string();
    let username = turn.username.as_deref().expect("username");
    assert_refused(&server_addr, username, "not the credential").await;
    // The credential of another username does not fit this one either.
    let other = format!("{}:1", now_secs() + 600);
    assert_refused(&server_addr, username, &coturn_credential(SECRET, &other)).await;
    // A credential made with another secret.
    assert_refused(&server_addr, username, &coturn_credential("not the secret", username)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_or_malformed_username_is_refused_even_with_its_hmac() {
    let (server, admin, _) = start(&[]).await;
    let server_addr = turn_addr_file(&server).to_string();
    let user = admin.session().user.id.0;

    // Control: a credential made here with the shared secret works, so what follows is refused
    // for its username alone.
    let fresh = format!("{}:{user}", now_secs() + 600);
    let (client, _) = turn_client(&server_addr, &fresh, &coturn_credential(SECRET, &fresh)).await;
    tokio::time::timeout(WAIT, client.allocate()).await.expect("in time").expect("a fresh credential works");
    client.close().await.expect("closing the client");

    let expired = format!("{}:{user}", now_secs() - 60);
    assert_refused(&server_addr, &expired, &coturn_credential(SECRET, &expired)).await;
    for malformed in
        [format!("{}", now_secs() + 600), format!("{}:", now_secs() + 600), format!("soon:{user}")]
    {
        assert_refused(&server_addr, &malformed, &coturn_credential(SECRET, &malformed)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stun_binding_tells_a_client_its_address_without_credentials() {
    let (server, _admin, creds) = start(&[]).await;
    let stun =
        creds.ice_servers.iter().find(|s| s.urls.iter().any(|u| u.starts_with("stun:"))).expect("STUN entry");
    assert!(stun.username.is_none() && stun.credential.is_none());
    let server_addr = url_addr(&stun.urls[0]);
    assert_eq!(server_addr, turn_addr_file(&server).to_string());
    let (client, local) = turn_client(&server_addr, "", "").await;
    let mapped = tokio::time::timeout(WAIT, client.send_binding_request())
        .await
        .expect("binding answered in time")
        .expect("binding response");
    assert_eq!(mapped, local);
    client.close().await.expect("closing the client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_use_the_configured_port_range() {
    let (server, _admin, creds) =
        start(&["--turn-relay-port-min", "47100", "--turn-relay-port-max", "47131"]).await;
    let turn = turn_entry(&creds);
    let (client, _) = turn_client(
        &turn_addr_file(&server).to_string(),
        turn.username.as_deref().expect("username"),
        turn.credential.as_deref().expect("credential"),
    )
    .await;
    let relay = tokio::time::timeout(WAIT, client.allocate()).await.expect("in time").expect("allocated");
    let port = relay.local_addr().expect("relayed address").port();
    assert!((47100..=47131).contains(&port), "relay port {port} outside 47100-47131");
    client.close().await.expect("closing the client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_turn_urls_replace_the_embedded_server() {
    let external = "turn:turn.example.org:3478?transport=udp";
    let (server, _admin, creds) = start(&["--turn-urls", external]).await;
    assert!(!server.data_dir.join("turn.addr").exists(), "no embedded server with an external one named");
    let turn = turn_entry(&creds);
    assert_eq!(turn.urls, [external]);
    assert_eq!(creds.ice_servers.len(), 1);
    let username = turn.username.as_deref().expect("username");
    assert_eq!(turn.credential.as_deref(), Some(coturn_credential(SECRET, username).as_str()));

    let (server, _admin, creds) = start(&["--turn-embedded", "false"]).await;
    assert!(!server.data_dir.join("turn.addr").exists());
    assert!(creds.ice_servers.is_empty(), "no ICE servers at all: {:?}", creds.ice_servers);

    // Both: the embedded server runs, and clients are told the configured URLs.
    let (server, _admin, creds) = start(&["--turn-urls", external, "--turn-embedded", "true"]).await;
    turn_addr_file(&server);
    assert_eq!(turn_entry(&creds).urls, [external]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_closes_the_turn_server_with_a_live_allocation() {
    let (mut server, _admin, creds) = start(&[]).await;
    let turn = turn_entry(&creds);
    let addr = turn_addr_file(&server);
    let (client, _) = turn_client(
        &addr.to_string(),
        turn.username.as_deref().expect("username"),
        turn.credential.as_deref().expect("credential"),
    )
    .await;
    let relay = tokio::time::timeout(WAIT, client.allocate()).await.expect("in time").expect("allocated");
    let relayed = relay.local_addr().expect("relayed address");
    assert!(server.terminate().await, "the server exits cleanly with an allocation open");
    // Both the listener's port and the relay's are free again.
    UdpSocket::bind(addr).await.expect("TURN port released");
    UdpSocket::bind(relayed).await.expect("relay port released");
    client.close().await.expect("closing the client");
}
