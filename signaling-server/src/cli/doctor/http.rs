//! Just enough HTTP/1.1 for the doctor and the health check: one GET, or one WebSocket
//! upgrade, over TCP or TLS, with every way it can fail kept apart ([`Failure`]) so the doctor
//! can say which one happened. No client library: a library would turn "refused", "unknown
//! issuer" and "wrong name" into one opaque error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use sha1::Digest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long each step (resolve, connect, handshake, answer) may take.
pub const STEP: Duration = Duration::from_secs(5);
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0} is not a URL this check understands")]
    BadUrl(String),
    #[error("the name {host} does not resolve ({reason})")]
    Resolve { host: String, reason: String },
    #[error("nothing accepts connections at {0} (connection refused)")]
    Refused(SocketAddr),
    #[error("no answer from {0} within {STEP:?} (a firewall dropping the packets, or a wrong address)")]
    Timeout(String),
    #[error("the TLS certificate was refused: {0}")]
    Certificate(String),
    #[error("the TLS handshake failed: {0}")]
    Tls(String),
    #[error("{0}")]
    Io(String),
    #[error("the answer is not HTTP: {0}")]
    Protocol(String),
}

/// What came back.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// `GET base_url + path`, the body read whole (up to 1 MiB).
pub async fn get(base_url: &str, path: &str, extra: Option<&[(&str, &str)]>) -> Result<Response, Failure> {
    let target = Target::parse(base_url)?;
    let mut stream = target.connect().await?;
    let mut request = format!(
        "GET {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: hearth-server-doctor\r\nConnection: close\r\n",
        target.path_prefix, target.host_header
    );
    for (name, value) in extra.unwrap_or_default() {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    timed(stream.write_all(request.as_bytes()), &target.label).await?;
    let (mut response, rest) = read_head(&mut stream, &target.label).await?;
    response.body = read_body(&mut stream, &response, rest, &target.label).await?;
    Ok(response)
}

/// What a WebSocket upgrade of `base_url + path` gave.
#[derive(Debug)]
pub enum Upgrade {
    /// 101 with the right accept key, and the server's first frame (text) arrived.
    Open { first_frame: String },
    /// Something other than 101 came back: the proxy did not pass the upgrade on.
    Refused { status: u16, server: Option<String> },
    /// 101, but no frame followed (a proxy that answers the upgrade and then drops frames).
    Silent,
}

pub async fn websocket(base_url: &str, path: &str) -> Result<Upgrade, Failure> {
    let target = Target::parse(base_url)?;
    let mut stream = target.connect().await?;
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let request = format!(
        "GET {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: hearth-server-doctor\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path_prefix, target.host_header
    );
    timed(stream.write_all(request.as_bytes()), &target.label).await?;
    let (response, mut rest) = read_head(&mut stream, &target.label).await?;
    if response.status != 101 {
        return Ok(Upgrade::Refused {
            status: response.status,
            server: response.header("server").map(str::to_string),
        });
    }
    let expected = {
        let mut sha = sha1::Sha1::new();
        sha.update(key.as_bytes());
        sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
        base64::engine::general_purpose::STANDARD.encode(sha.finalize())
    };
    if response.header("sec-websocket-accept") != Some(expected.as_str()) {
        return Err(Failure::Protocol("the upgrade answer has a wrong Sec-WebSocket-Accept".into()));
    }
    // The server speaks first (Hello). A server frame is unmasked: 2 bytes, then the length.
    let mut fill = async |need: usize, rest: &mut Vec<u8>| -> Result<bool, Failure> {
        while rest.len() < need {
            let mut buf = [0u8; 4096];
            let n = timed(stream.read(&mut buf), &target.label).await?;
            if n == 0 {
                return Ok(false);
            }
            rest.extend_from_slice(&buf[..n]);
        }
        Ok(true)
    };
    match tokio::time::timeout(STEP, async {
        if !fill(2, &mut rest).await? {
            return Ok::<_, Failure>(None);
        }
        let (len, header) = match rest[1] & 0x7f {
            126 => {
                if !fill(4, &mut rest).await? {
                    return Ok(None);
                }
                (usize::from(u16::from_be_bytes([rest[2], rest[3]])), 4)
            }
            127 => return Err(Failure::Protocol("a first frame larger than 64 KiB".into())),
            n => (usize::from(n), 2),
        };
        if !fill(header + len, &mut rest).await? {
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&rest[header..header + len]).into_owned()))
    })
    .await
    {
        Ok(Ok(Some(first_frame))) => Ok(Upgrade::Open { first_frame }),
        Ok(Ok(None)) | Err(_) => Ok(Upgrade::Silent),
        Ok(Err(e)) => Err(e),
    }
}

struct Target {
    tls: bool,
    host: String,
    port: u16,
    host_header: String,
    path_prefix: String,
    label: String,
}

impl Target {
    fn parse(base_url: &str) -> Result<Target, Failure> {
        let url = url::Url::parse(base_url).map_err(|_| Failure::BadUrl(base_url.to_string()))?;
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(Failure::BadUrl(base_url.to_string())),
        };
        let host = url.host_str().ok_or_else(|| Failure::BadUrl(base_url.to_string()))?.to_string();
        let port = url.port_or_known_default().unwrap_or(if tls { 443 } else { 80 });
        let host_header = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        Ok(Target {
            tls,
            label: format!("{host}:{port}"),
            host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
            port,
            host_header,
            path_prefix: url.path().trim_end_matches('/').to_string(),
        })
    }

    async fn connect(&self) -> Result<Box<dyn Stream>, Failure> {
        let addrs: Vec<SocketAddr> = match tokio::time::timeout(
            STEP,
            tokio::net::lookup_host((self.host.as_str(), self.port)),
        )
        .await
        {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => return Err(Failure::Resolve { host: self.host.clone(), reason: e.to_string() }),
            Err(_) => return Err(Failure::Resolve { host: self.host.clone(), reason: "timed out".into() }),
        };
        let mut last = Failure::Resolve { host: self.host.clone(), reason: "no addresses".into() };
        for addr in addrs {
            match tokio::time::timeout(STEP, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => {
                    if !self.tls {
                        return Ok(Box::new(tcp));
                    }
                    return self.handshake(tcp).await;
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    last = Failure::Refused(addr)
                }
                Ok(Err(e)) => last = Failure::Io(format!("connecting to {addr}: {e}")),
                Err(_) => last = Failure::Timeout(addr.to_string()),
            }
        }
        Err(last)
    }

    async fn handshake(&self, tcp: TcpStream) -> Result<Box<dyn Stream>, Failure> {
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|_| Failure::BadUrl(self.host.clone()))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config()?));
        match tokio::time::timeout(STEP, connector.connect(name, tcp)).await {
            Ok(Ok(tls)) => Ok(Box::new(tls)),
            Ok(Err(e)) => Err(tls_failure(e)),
            Err(_) => Err(Failure::Timeout(format!("{} (TLS handshake)", self.label))),
        }
    }
}

/// The operating system's trusted roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` respected), as a
/// client of the app would trust them.
fn tls_config() -> Result<rustls::ClientConfig, Failure> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        // A malformed system certificate is skipped, as browsers do.
        let _skipped = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(Failure::Tls(
            "no trusted certificate authorities on this machine (install ca-certificates)".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn tls_failure(e: std::io::Error) -> Failure {
    use rustls::CertificateError as C;
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) else {
        return Failure::Tls(e.to_string());
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => Failure::Certificate(match cert {
            C::UnknownIssuer => "it is not signed by an authority clients trust (self-signed, or the \
                                 chain's intermediate certificate is not served)"
                .into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "it was issued for other names than this URL's host".into()
            }
            C::Expired | C::ExpiredContext { .. } => "it has expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "it is not valid yet (is this machine's clock right?)".into()
            }
            C::Revoked => "it was revoked".into(),
            other => format!("{other:?}"),
        }),
        other => Failure::Tls(other.to_string()),
    }
}

async fn timed<T>(
    op: impl std::future::Future<Output = std::io::Result<T>>,
    label: &str,
) -> Result<T, Failure> {
    match tokio::time::timeout(STEP, op).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(Failure::Io(format!("{label} closed the connection without an answer")))
        }
        Ok(Err(e)) => Err(Failure::Io(format!("{label}: {e}"))),
        Err(_) => Err(Failure::Timeout(label.to_string())),
    }
}

/// Reads up to the end of the head; returns the parsed head and the bytes read past it.
async fn read_head(stream: &mut Box<dyn Stream>, label: &str) -> Result<(Response, Vec<u8>), Failure> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(Failure::Protocol("a response head over 64 KiB".into()));
        }
        let mut chunk = [0u8; 4096];
        let n = timed(stream.read(&mut chunk), label).await?;
        if n == 0 {
            return Err(Failure::Io(format!("{label} closed the connection without an answer")));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Failure::Protocol(format!("{:?}", truncate(status_line))))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok((Response { status, headers, body: Vec::new() }, buf[end + 4..].to_vec()))
}

async fn read_body(
    stream: &mut Box<dyn Stream>,
    head: &Response,
    mut body: Vec<u8>,
    label: &str,
) -> Result<Vec<u8>, Failure> {
    let length: Option<usize> = head.header("content-length").and_then(|v| v.parse().ok());
    loop {
        if length.is_some_and(|n| body.len() >= n) || body.len() > MAX_BODY {
            break;
        }
        let mut chunk = [0u8; 8192];
        let n = timed(stream.read(&mut chunk), label).await.or_else(|e| match e {
            // Connection: close: EOF ends the body.
            Failure::Io(_) => Ok(0),
            other => Err(other),
        })?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    if head.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return Ok(dechunk(&body));
    }
    body.truncate(length.unwrap_or(body.len()));
    Ok(body)
}

/// Decodes a chunked body (read whole); stops at the first malformed size.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..i]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        if size == 0 || data.len() < i + 2 + size {
            break;
        }
        out.extend_from_slice(&data[i + 2..i + 2 + size]);
        data = data.get(i + 4 + size..).unwrap_or_default();
    }
    out
}

fn truncate(s: &str) -> &str {
    s.get(..80).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_put_back_together() {
        assert_eq!(dechunk(b"2\r\nok\r\n3;x=1\r\n!!!\r\n0\r\n\r\n"), b"ok!!!");
    }
}
