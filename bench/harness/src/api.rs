//! The few HTTP calls of Hearth's `/api/v1` the benches need, typed with the protocol crate.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hearth_protocol::ApiError;
use hearth_protocol::api::{
    CreateChannelRequest, CreateInviteRequest, Invite, LoginRequest, RegisterRequest, SearchResults, Session,
    TurnCredentials,
};
use hearth_protocol::model::{Channel, ChannelKind, Message};
use hearth_protocol::{ChannelId, MessageId, UserId};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A cheap-to-clone HTTP client bound to one server.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    /// `http://host:port`
    origin: String,
    /// `http://host:port/api/v1`
    base: String,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Result<Self> {
        let http = reqwest::Client::builder()
            // Loopback only: never let an environment proxy setting reroute bench traffic.
            .no_proxy()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()
            .context("building HTTP client")?;
        Ok(Api { http, origin: format!("http://{addr}"), base: format!("http://{addr}/api/v1") })
    }

    /// `GET /healthz`, at the root (not under `/api/v1`).
    pub async fn healthz(&self) -> Result<()> {
        let url = format!("{}/healthz", self.origin);
        let resp = self.http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
        if !resp.status().is_success() {
            bail!("GET {url}: HTTP {}", resp.status());
        }
        Ok(())
    }

    pub async fn register(&self, invite: &str, username: &str, password: &str) -> Result<Session> {
        let body = RegisterRequest {
            invite: invite.to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
            display_name: None,
        };
        self.post("/auth/register", None, &body).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<Session> {
        let body = LoginRequest { username: username.to_owned(), password: password.to_owned() };
        self.post("/auth/login", None, &body).await
    }

    pub async fn create_invite(&self, token: &str) -> Result<Invite> {
        let body = CreateInviteRequest { max_uses: None, expires_in_secs: None };
        self.post("/invites", Some(token), &body).await
    }

    pub async fn create_channel(&self, token: &str, name: &str) -> Result<Channel> {
        let body = CreateChannelRequest {
            name: name.to_owned(),
            kind: ChannelKind::Text,
            topic: None,
            private: false,
            members: Vec::new(),
        };
        self.post("/channels", Some(token), &body).await
    }

    /// Newest first, at most `limit` (1..=100), older than `before` when given.
    pub async fn history(
        &self,
        token: &str,
        channel: ChannelId,
        limit: u32,
        before: Option<MessageId>,
    ) -> Result<Vec<Message>> {
        let url = format!("{}/channels/{channel}/messages", self.base);
        let mut query = vec![("limit", limit.to_string())];
        if let Some(before) = before {
            query.push(("before", before.to_string()));
        }
        let resp = self
            .http
            .get(&url)
            .bearer_auth(token)
            .query(&query)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        decode(resp, &url).await
    }

    /// `POST /channels` for a private text channel with these members (the creator added).
    pub async fn create_private_channel(
        &self,
        token: &str,
        name: &str,
        members: &[UserId],
    ) -> Result<Channel> {
        let body = CreateChannelRequest {
            name: name.to_owned(),
            kind: ChannelKind::Text,
            topic: None,
            private: true,
            members: members.to_vec(),
        };
        self.post("/channels", Some(token), &body).await
    }

    /// `GET /search?q=…&limit=…`.
    pub async fn search(&self, token: &str, q: &str, limit: u32) -> Result<SearchResults> {
        let url = format!("{}/search", self.base);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(token)
            .query(&[("q", q), ("limit", &limit.to_string())])
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        decode(resp, &url).await
    }

    /// `GET /turn`: ICE servers with fresh TURN credentials.
    pub async fn turn_credentials(&self, token: &str) -> Result<TurnCredentials> {
        let url = format!("{}/turn", self.base);
        let resp =
            self.http.get(&url).bearer_auth(token).send().await.with_context(|| format!("GET {url}"))?;
        decode(resp, &url).await
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
        body: &B,
    ) -> Result<R> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.post(&url).json(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.with_context(|| format!("POST {url}"))?;
        decode(resp, &url).await
    }
}

/// A non-2xx answer, with the server's stable error code when the body carried one.
#[derive(Debug)]
pub struct HttpError {
    pub status: u16,
    pub error: Option<ApiError>,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            Some(e) => write!(f, "HTTP {} {:?}: {}", self.status, e.code, e.message),
            None => write!(f, "HTTP {} (no error body)", self.status),
        }
    }
}

impl std::error::Error for HttpError {}

async fn decode<R: DeserializeOwned>(resp: reqwest::Response, url: &str) -> Result<R> {
    let status = resp.status();
    let bytes = resp.bytes().await.with_context(|| format!("reading body of {url}"))?;
    if !status.is_success() {
        let error = serde_json::from_slice::<ApiError>(&bytes).ok();
        return Err(anyhow::Error::new(HttpError { status: status.as_u16(), error }))
            .with_context(|| format!("{url} refused"));
    }
    serde_json::from_slice(&bytes).with_context(|| {
        format!("{url}: unexpected body shape: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)]))
    })
}
