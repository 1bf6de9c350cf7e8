//! The login's tokens: the short-lived access token in memory and the rotating, single-use
//! refresh token, whose every successor is handed to a persistence callback.

use std::sync::{Arc, Mutex};

use hearth_protocol::ErrorCode;

use crate::api::Api;
use crate::error::{Error, Result};

/// Called with each new refresh token, to save it before anything else can need it.
pub type PersistRefreshToken = Box<dyn Fn(&str) -> Result<()> + Send + Sync>;

/// A cheap-clone handle on one login's tokens.
#[derive(Clone)]
pub struct Credentials {
    inner: Arc<Inner>,
}

struct Inner {
    /// Short critical sections only; never held across an await.
    tokens: Mutex<Tokens>,
    /// Serializes refreshes: a refresh token is single-use and using one twice revokes the
    /// whole login, so two tasks must never race to spend it. This is the one guard held
    /// across an await, on purpose.
    refresh_gate: tokio::sync::Mutex<()>,
    persist: PersistRefreshToken,
}

struct Tokens {
    access: Option<String>,
    refresh: String,
    /// Bumped on every refresh, so a caller can tell whether someone refreshed already.
    generation: u64,
}

/// A snapshot of the access token and the generation it belongs to.
#[derive(Clone)]
pub struct Access {
    pub token: Option<String>,
    pub generation: u64,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").field("generation", &self.generation).finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn new(access: Option<String>, refresh: String, persist: PersistRefreshToken) -> Self {
        Credentials {
            inner: Arc::new(Inner {
                tokens: Mutex::new(Tokens { access, refresh, generation: 0 }),
                refresh_gate: tokio::sync::Mutex::new(()),
                persist,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tokens> {
        // A panic while holding this lock cannot leave the tokens half-written (each field
        // is replaced whole), so a poisoned lock is still usable.
        self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn access(&self) -> Access {
        let t = self.lock();
        Access { token: t.access.clone(), generation: t.generation }
    }

    /// Gets a new access token unless someone already did since `seen` was taken. Fails
    /// with [`Error::LoggedOut`] when the server refuses the refresh token.
    pub async fn refresh(&self, api: &Api, seen: &Access) -> Result<String> {
        let _gate = self.inner.refresh_gate.lock().await;
        let refresh = {
            let t = self.lock();
            if t.generation != seen.generation
                && let Some(access) = &t.access
            {
                return Ok(access.clone());
            }
            t.refresh.clone()
        };
        let session = match api.refresh(&refresh).await {
            Ok(s) => s,
            Err(Error::Api(e))
                if matches!(e.code, ErrorCode::InvalidRefreshToken | ErrorCode::Unauthorized) =>
            {
                let mut t = self.lock();
                t.access = None;
                return Err(Error::LoggedOut);
            }
            Err(e) => return Err(e),
        };
        {
            let mut t = self.lock();
            t.access = Some(session.access_token.clone());
            t.refresh = session.refresh_token.clone();
            t.generation += 1;
        }
        // The old refresh token is spent; if saving the new one fails we keep working with it
        // in memory, and the next successful rotation saves again.
        if let Err(e) = (self.inner.persist)(&session.refresh_token) {
            tracing::error!(error = %e, "could not save the new refresh token");
        }
        Ok(session.access_token)
    }

    /// Runs an authenticated request; on `unauthorized` refreshes once and tries again.
    pub async fn call<T, F, Fut>(&self, api: &Api, f: F) -> Result<T>
    where
        F: Fn(Api, String) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let seen = self.access();
        let token = match &seen.token {
            Some(t) => t.clone(),
            None => self.refresh(api, &seen).await?,
        };
        match f(api.clone(), token).await {
            Err(Error::Api(e)) if e.code == ErrorCode::Unauthorized => {
                let seen = Access { token: None, generation: seen.generation };
                let token = self.refresh(api, &seen).await?;
                f(api.clone(), token).await
            }
            other => other,
        }
    }
}
