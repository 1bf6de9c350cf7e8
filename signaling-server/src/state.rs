//! The shared server state: a cheap-to-clone handle on everything a handler needs.

use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use hearth_protocol::UserId;
use hearth_protocol::api::Session;
use hearth_protocol::model::{IceServer, ServerSettings};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{AuthUser, Passwords, Tokens, hash_refresh_token, random_token};
use crate::config::Config;
use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::hub::Hub;
use crate::ids::IdGenerator;
use crate::media::ImagePool;
use crate::metrics::Metrics;
use crate::ratelimit::KeyedLimiter;
use crate::secrets::Secrets;
use crate::writer::MessageWriter;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub db: Db,
    pub ids: Arc<IdGenerator>,
    pub passwords: Passwords,
    pub tokens: Tokens,
    pub secrets: Secrets,
    /// STUN/TURN URLs handed to clients: `--turn-urls`, or else the embedded server's.
    pub ice_urls: Vec<String>,
    pub hub: Hub,
    pub writer: MessageWriter,
    pub metrics: Metrics,
    /// Every image decode (avatars, the server icon, thumbnails) runs here, bounded.
    pub images: ImagePool,
    pub login_by_account: KeyedLimiter<String>,
    pub login_by_ip: KeyedLimiter<IpAddr>,
    pub messages_by_user: KeyedLimiter<UserId>,
    /// The one-time token for the first (admin) account, while there are no accounts.
    pub setup_token: std::sync::Mutex<Option<String>>,
    /// Live WebSocket connections (identified or not).
    pub connections: AtomicUsize,
    /// Fires when the server begins to shut down.
    pub shutdown: CancellationToken,
    /// Connection tasks, so shutdown can wait for them to drain.
    pub tasks: TaskTracker,
    /// Held across each administrative change (database, then hub), so that two changes never
    /// interleave: the hub sees them in the order they committed, and checks such as "the
    /// group keeps an owner" see every earlier change. An async lock: it is held across awaits.
    pub admin_lock: tokio::sync::Mutex<()>,
    /// Wakes the retention task (the retention setting changed).
    pub retention_wake: tokio::sync::Notify,
    /// Attachment files and uploads in progress.
    pub attachments: crate::attachments::AttachmentStore,
    /// Write dispatched events into the live connections (`gateway::session`).
    pub flushers: crate::gateway::session::Flushers,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }

    /// The member an access token speaks for, if it is valid, its login was not revoked and
    /// the member was not removed.
    pub fn authenticate(&self, token: &str) -> AppResult<AuthUser> {
        let (id, claims) = self.tokens.verify(token).ok_or_else(AppError::unauthorized)?;
        if self.hub.is_revoked(&claims.fam) {
            return Err(AppError::unauthorized());
        }
        let user = self.hub.user(id).ok_or_else(AppError::unauthorized)?;
        Ok(AuthUser { id, family: claims.fam, role: user.role })
    }

    /// Starts a login (or continues `family`): a fresh access token and refresh token.
    pub async fn issue_session(&self, user: UserId, family: Option<String>) -> AppResult<Session> {
        let family = family.unwrap_or_else(|| random_token(16));
        let refresh = random_token(32);
        let expires = crate::db::now_ms() + self.config.refresh_token_ttl.as_millis() as i64;
        self.db.insert_refresh_token(&hash_refresh_token(&refresh), &family, user, expires).await?;
        let access = self.tokens.issue(user, &family)?;
        let profile = self.hub.user(user).ok_or_else(AppError::unauthorized)?;
        Ok(Session {
            access_token: access,
            expires_in: self.config.access_token_ttl.as_secs(),
            refresh_token: refresh,
            user: profile,
        })
    }

    /// The group's settings as members see them.
    pub fn server_settings(&self) -> ServerSettings {
        self.hub.settings()
    }

    pub fn ice_servers(&self, user: UserId) -> Vec<IceServer> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let secret = self.config.turn_secret.as_deref().unwrap_or(&self.secrets.turn_secret);
        crate::turn::ice_servers(secret, &self.ice_urls, user, self.config.turn_ttl, now)
    }
}
