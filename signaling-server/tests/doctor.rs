//! `hearth-server doctor` against a real running server: everything passes when the public
//! URL and TURN are right; a wrong public URL, a closed TURN port, a wrong relay address and a
//! proxy that refuses WebSocket upgrades are each reported in plain words with the fix.

mod common;

use std::process::Output;

use common::{Backend, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::process::Command;

async fn doctor(server: &TestServer, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_hearth-server"))
        .arg("--data-dir")
        .arg(&server.data_dir)
        .args(args)
        .arg("doctor")
        .output()
        .await
        .expect("running doctor");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    output
}

fn report(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The report's line for `what` (the check's name and the finding, then the fix below it).
fn line<'a>(report: &'a str, tag: &str, what: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.starts_with(tag) && l.contains(what))
        .unwrap_or_else(|| panic!("no {tag} line about {what:?} in:\n{report}"))
}

/// The fix printed under a finding (its indented continuation lines), as one string.
fn fix_after(report: &str, first: &str) -> String {
    let mut lines = report.lines().skip_while(|l| *l != first).skip(1);
    let mut fix = Vec::new();
    while let Some(l) = lines.next().filter(|l| l.starts_with("       ")) {
        fix.push(l.trim());
    }
    fix.join(" ")
}

#[tokio::test]
async fn a_healthy_server_passes_every_network_check() {
    let server = TestServer::start(Backend::Sqlite).await;
    let public = format!("--public-url={}", server.base);
    let out = doctor(&server, &[&public]).await;
    let text = report(&out);
    line(&text, "[ ok ]", "hearth-server answers on this machine");
    line(&text, "[ ok ]", &format!("public URL {}: reachable, and it is this server", server.base));
    line(&text, "[ ok ]", "WebSocket (gateway): the upgrade passes and the server's Hello arrives");
    line(&text, "[ ok ]", "answers STUN");
    line(&text, "[ ok ]", "TURN relay: relays are announced at 127.0.0.1, the public address");
    // The machine's own checks: this machine's clock may or may not be synchronized, and the
    // disk's free space is what it is, but both are reported, the disk for the data directory.
    let clock =
        text.lines().find(|l| l.contains("] clock: ")).unwrap_or_else(|| panic!("no clock line:\n{text}"));
    assert!(clock.starts_with("[ ok ]") || clock.starts_with("[warn]"), "{clock}");
    let disk = format!("] disk ({}): ", server.data_dir.display());
    let disk = text.lines().find(|l| l.contains(&disk)).unwrap_or_else(|| panic!("no {disk} line:\n{text}"));
    assert!(disk.contains(" MiB free of "), "{disk}");
    assert!(!text.contains("[FAIL]"), "{text}");
    assert!(out.status.success());
}

#[tokio::test]
async fn a_wrong_public_url_and_a_closed_turn_port_are_explained() {
    let server = TestServer::start(Backend::Sqlite).await;
    // A TCP port and a UDP port with nothing behind them.
    let closed_tcp = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let closed_udp = UdpSocket::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let out = doctor(
        &server,
        &[
            &format!("--public-url=http://127.0.0.1:{closed_tcp}"),
            &format!("--turn-urls=turn:127.0.0.1:{closed_udp}?transport=udp"),
            "--turn-secret=s3cret",
        ],
    )
    .await;
    assert!(!out.status.success(), "failures make doctor exit non-zero");
    let text = report(&out);
    let url = line(&text, "[FAIL]", &format!("public URL http://127.0.0.1:{closed_tcp}"));
    assert!(
        url.contains("nothing accepts connections at 127.0.0.1:") && url.contains("connection refused"),
        "{url}"
    );
    assert!(fix_after(&text, url).contains("Nothing listens there"), "{text}");
    let turn = line(&text, "[FAIL]", &format!("TURN udp 127.0.0.1:{closed_udp}"));
    assert!(turn.contains("no STUN answer") && turn.contains("the port is closed"), "{turn}");
    assert!(
        fix_after(&text, turn).contains(&format!("Open UDP port {closed_udp} in the firewall")),
        "{text}"
    );
    // The server itself is fine, and doctor says so.
    line(&text, "[ ok ]", "hearth-server answers on this machine");
}

#[tokio::test]
async fn a_relay_address_that_is_not_the_public_one_is_explained() {
    // 192.0.2.7 (TEST-NET-1) is only announced, never sent to: doctor compares addresses.
    let server = TestServer::start_with(Backend::Sqlite, &["--turn-relay-address", "192.0.2.7"]).await;
    let public = format!("--public-url={}", server.base);
    let out = doctor(&server, &[&public]).await;
    let text = report(&out);
    let relay = line(&text, "[FAIL]", "TURN relay");
    assert!(
        relay.contains("relays are announced at 192.0.2.7, but clients reach this server at 127.0.0.1"),
        "{relay}"
    );
    assert!(fix_after(&text, relay).contains("--turn-relay-address 127.0.0.1"), "{text}");
}

/// A reverse proxy that answers every request itself and never upgrades: what a proxy without
/// the WebSocket headers looks like from outside (nginx answers such requests with the
/// backend's plain response or an error).
#[tokio::test]
async fn a_proxy_that_drops_websocket_upgrades_is_explained() {
    let server = TestServer::start(Backend::Sqlite).await;
    let backend_addr = server.addr.clone();
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut client, _)) = proxy.accept().await {
            let backend_addr = backend_addr.clone();
            tokio::spawn(async move {
                let mut head = vec![0u8; 8192];
                let n = client.read(&mut head).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&head[..n]).into_owned();
                // HTTP/1.0 to the backend without the hop-by-hop Upgrade headers: the mistake.
                let first = request.lines().next().unwrap_or_default().replace("HTTP/1.1", "HTTP/1.0");
                let mut upstream = tokio::net::TcpStream::connect(&backend_addr).await.unwrap();
                let forwarded = format!("{first}\r\nHost: {backend_addr}\r\n\r\n");
                upstream.write_all(forwarded.as_bytes()).await.unwrap();
                let mut answer = Vec::new();
                let _ = upstream.read_to_end(&mut answer).await;
                let _ = client.write_all(&answer).await;
            });
        }
    });
    let out = doctor(&server, &[&format!("--public-url={proxy_url}")]).await;
    let text = report(&out);
    line(&text, "[ ok ]", &format!("public URL {proxy_url}: reachable, and it is this server"));
    let ws = line(&text, "[FAIL]", "WebSocket (gateway)");
    assert!(ws.contains("the upgrade was refused"), "{ws}");
    assert!(fix_after(&text, ws).contains("proxy_set_header Upgrade $http_upgrade"), "{text}");
}

/// A TLS-terminating proxy in front of the server with a certificate for `localhost` issued
/// by a test authority; returns its port and the authority's PEM.
async fn tls_proxy(backend_addr: String) -> (u16, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf =
        CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&leaf_key, &ca).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let backend_addr = backend_addr.clone();
            tokio::spawn(async move {
                // A refused handshake (the doctor distrusting us) just ends this connection.
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut upstream) = tokio::net::TcpStream::connect(&backend_addr).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    (port, ca.pem())
}

#[tokio::test]
async fn tls_is_checked_against_trusted_authorities_and_the_name() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (port, ca_pem) = tls_proxy(server.addr.clone()).await;
    let ca_file = server.data_dir.join("test-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let run = |url: String, trust: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth-server"));
        cmd.arg("--data-dir").arg(&server.data_dir).arg(format!("--public-url={url}")).arg("doctor");
        if trust {
            // rustls-native-certs reads the trusted roots from here instead of the system's.
            cmd.env("SSL_CERT_FILE", &ca_file);
        }
        async move { report(&cmd.output().await.expect("running doctor")) }
    };

    // Trusted and matching: TLS passes, and so does the WebSocket upgrade through it.
    let text = run(format!("https://localhost:{port}"), true).await;
    line(&text, "[ ok ]", "TLS certificate: trusted and valid for localhost");
    line(&text, "[ ok ]", "WebSocket (gateway): the upgrade passes");

    // The same certificate reached by another name.
    let text = run(format!("https://127.0.0.1:{port}"), true).await;
    let wrong = line(&text, "[FAIL]", &format!("public URL https://127.0.0.1:{port}"));
    assert!(wrong.contains("issued for other names than this URL's host"), "{wrong}");

    // An authority nobody trusts (as with a self-signed certificate).
    let text = run(format!("https://localhost:{port}"), false).await;
    let untrusted = line(&text, "[FAIL]", &format!("public URL https://localhost:{port}"));
    assert!(untrusted.contains("not signed by an authority clients trust"), "{untrusted}");
    assert!(fix_after(&text, untrusted).contains("Caddy"), "{text}");
}
