//! The operator's commands (`hearth-server admin …`): invites, members, passwords, roles.
//!
//! Every command is one [`Request`] run by [`execute`], in one of two places:
//! - **A server is running** on the data directory (it holds the data directory lock): the
//!   command line sends the request over `DATA_DIR/admin.sock`, a Unix socket only the
//!   server's own user (and root) may open, and the server runs it with its live state, so the
//!   change applies at once where it matters (a removed member's sessions end, a reset password
//!   ends every login, a new role is what the next request is checked against, and everyone
//!   hears of it). The socket is the local admin credential: reaching it takes the rights of
//!   the account the server runs as.
//! - **No server is running**: the command line takes the lock itself (so none starts
//!   meanwhile) and runs the request on the database directly; the next start loads it.
//!
//! One code path either way: the live server and the offline tool run the same [`execute`].

use hearth_protocol::UserId;
use hearth_protocol::api::Invite;
use hearth_protocol::model::{Role, User};
use serde::{Deserialize, Serialize};

use crate::auth::password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};
use crate::auth::{Passwords, random_token};
use crate::db::{Db, now_ms};
use crate::state::AppState;

/// The socket's file name in the data directory.
pub const SOCKET: &str = "admin.sock";
/// Largest request line.
const MAX_REQUEST: usize = 64 * 1024;
/// Longest an invite may live (as for invites made in the app).
const MAX_INVITE_SECS: u64 = 365 * 86_400;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    CreateInvite {
        max_uses: Option<u32>,
        expires_in_secs: Option<u64>,
    },
    ListInvites,
    RevokeInvite {
        code: String,
    },
    ListUsers,
    /// Sets a new password and ends every login of the member.
    ResetPassword {
        username: String,
        password: String,
    },
    /// Removes a member: their sessions end, they can no longer log in; their messages stay.
    RemoveUser {
        username: String,
    },
    SetRole {
        username: String,
        role: Role,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reply {
    /// `link`: `hearth://join?server=…&code=…`, which opens the app on registration.
    Invite {
        invite: Invite,
        link: String,
    },
    Invites {
        invites: Vec<Invite>,
    },
    Users {
        users: Vec<User>,
    },
    Done {
        message: String,
    },
    Failed {
        message: String,
    },
}

/// Why a command was refused; the message is for the operator.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no member is called {0:?} (see `hearth-server admin users`)")]
    NoSuchMember(String),
    #[error("no usable invite has the code {0:?} (see `hearth-server admin invite list`)")]
    NoSuchInvite(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the group has no members yet: the first person registers with the setup token")]
    NoOwner,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AdminError {
    fn from(e: sqlx::Error) -> Self {
        AdminError::Internal(e.into())
    }
}

impl From<crate::error::AppError> for AdminError {
    fn from(e: crate::error::AppError) -> Self {
        match e {
            // The hashing pool's "busy, try again" and the like, as the operator reads them.
            crate::error::AppError::Client(api) => AdminError::Invalid(api.message),
            crate::error::AppError::Internal(cause) => AdminError::Internal(cause),
        }
    }
}

/// What a command runs with: the database, the password hasher, and the live server's state
/// when it runs inside the server.
pub struct Context<'a> {
    pub db: &'a Db,
    pub passwords: &'a Passwords,
    pub live: Option<&'a AppState>,
    /// The server's URL as members use it, for invite links.
    pub public_url: &'a str,
}

impl<'a> Context<'a> {
    pub fn live(state: &'a AppState, public_url: &'a str) -> Self {
        Context { db: &state.db, passwords: &state.passwords, live: Some(state), public_url }
    }
}

/// `hearth://join?server=…&code=…`, the link the app opens on its registration screen.
pub fn invite_link(public_url: &str, code: &str) -> String {
    format!("hearth://join?server={}&code={}", query_escape(public_url), query_escape(code))
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs one command.
pub async fn execute(cx: &Context<'_>, request: Request) -> Result<Reply, AdminError> {
    match request {
        Request::CreateInvite { max_uses, expires_in_secs } => {
            if max_uses == Some(0) {
                return Err(AdminError::Invalid("--max-uses must be at least 1".into()));
            }
            if expires_in_secs.is_some_and(|s| s == 0 || s > MAX_INVITE_SECS) {
                return Err(AdminError::Invalid("an invite lives between 1 second and one year".into()));
            }
            let owner = oldest_owner(cx.db).await?.ok_or(AdminError::NoOwner)?;
            let now = now_ms();
            let invite = Invite {
                code: random_token(12),
                max_uses,
                uses: 0,
                expires_at: expires_in_secs.map(|s| now + (s as i64) * 1000),
                created_by: owner,
                created_at: now,
            };
            crate::db::invites::insert(&mut *cx.db.pool.acquire().await?, &invite).await?;
            tracing::info!(by = "operator", "invite created");
            let link = invite_link(cx.public_url, &invite.code);
            Ok(Reply::Invite { invite, link })
        }
        Request::ListInvites => Ok(Reply::Invites { invites: cx.db.usable_invites().await? }),
        Request::RevokeInvite { code } => {
            if !crate::db::invites::revoke(&mut *cx.db.pool.acquire().await?, &code).await? {
                return Err(AdminError::NoSuchInvite(code));
            }
            tracing::info!(by = "operator", "invite revoked");
            Ok(Reply::Done { message: format!("invite {code} revoked") })
        }
        Request::ListUsers => Ok(Reply::Users { users: cx.db.active_users().await? }),
        Request::ResetPassword { username, password } => {
            let chars = password.chars().count();
            if chars < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
                return Err(AdminError::Invalid(format!(
                    "a password has at least {MIN_PASSWORD_CHARS} characters and at most \
                     {MAX_PASSWORD_BYTES} bytes"
                )));
            }
            let user = member(cx.db, &username).await?;
            let hash = cx.passwords.hash(&password).await?;
            cx.db.set_password_hash(user.id, &hash).await?;
            let ended = end_logins(cx, user.id).await?;
            tracing::info!(user = %user.id, by = "operator", "password reset");
            Ok(Reply::Done {
                message: format!("password of {} reset; {ended} login(s) ended", user.username),
            })
        }
        Request::RemoveUser { username } => {
            let user = member(cx.db, &username).await?;
            // The owner count and the removal in one transaction, so that two changes at once
            // cannot leave the group without an owner.
            let mut tx = cx.db.pool.begin().await?;
            if user.role == Role::Owner && crate::db::users::owner_count(&mut tx).await? <= 1 {
                return Err(AdminError::Invalid(format!(
                    "{} is the group's only owner; make someone else owner first \
                     (hearth-server admin set-role NAME owner)",
                    user.username
                )));
            }
            if !crate::db::users::remove(&mut tx, user.id).await? {
                return Err(AdminError::NoSuchMember(username));
            }
            tx.commit().await?;
            if let Some(state) = cx.live {
                state.hub.remove_user(user.id, hearth_protocol::gateway::close::KICKED);
            }
            end_logins(cx, user.id).await?;
            tracing::info!(user = %user.id, by = "operator", "member removed");
            Ok(Reply::Done { message: format!("{} removed from the group", user.username) })
        }
        Request::SetRole { username, role } => {
            let mut user = member(cx.db, &username).await?;
            let mut tx = cx.db.pool.begin().await?;
            if user.role == Role::Owner
                && role != Role::Owner
                && crate::db::users::owner_count(&mut tx).await? <= 1
            {
                return Err(AdminError::Invalid(format!(
                    "{} is the group's only owner; make someone else owner first",
                    user.username
                )));
            }
            crate::db::users::set_role(&mut tx, user.id, role).await?;
            tx.commit().await?;
            user.role = role;
            if let Some(state) = cx.live {
                // Requests are checked against the hub's copy, and everyone hears MemberUpdate.
                state.hub.upsert_user(user.clone());
            }
            tracing::info!(user = %user.id, role = role.as_str(), by = "operator", "role changed");
            Ok(Reply::Done { message: format!("{} is now {}", user.username, role.as_str()) })
        }
    }
}

/// A member who was not removed, by username (case-insensitive).
async fn member(db: &Db, username: &str) -> Result<User, AdminError> {
    match db.user_by_username(username).await? {
        Some(record) if !record.removed => Ok(record.user),
        _ => Err(AdminError::NoSuchMember(username.to_string())),
    }
}

async fn oldest_owner(db: &Db) -> sqlx::Result<Option<UserId>> {
    Ok(db.active_users().await?.into_iter().find(|u| u.role == Role::Owner).map(|u| u.id))
}

/// Revokes every login of a member; a live server also ends their sessions at once.
async fn end_logins(cx: &Context<'_>, user: UserId) -> Result<usize, AdminError> {
    let families = cx.db.revoke_user_families(user, None).await?;
    if let Some(state) = cx.live {
        for family in &families {
            state.hub.revoke_family(family);
        }
    }
    Ok(families.len())
}

/// The server's side of `DATA_DIR/admin.sock`.
#[cfg(unix)]
pub mod socket {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use anyhow::Context as _;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{UnixListener, UnixStream};
    use tokio::task::JoinHandle;

    use super::{Context, MAX_REQUEST, Reply, Request, SOCKET, execute};
    use crate::state::AppState;

    /// Listens on `DATA_DIR/admin.sock` until shutdown. The caller holds the data directory
    /// lock, so a file already there is a leftover of a server that died.
    pub fn listen(state: AppState, public_url: String) -> anyhow::Result<JoinHandle<()>> {
        let path = state.config.data_dir.join(SOCKET);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::Error::new(e).context(format!("removing {}", path.display()))),
        }
        let listener =
            UnixListener::bind(&path).with_context(|| format!("listening on {}", path.display()))?;
        // Owner only: whoever can open it has the operator's powers.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(tokio::spawn(accept_loop(state, listener, path, public_url.into())))
    }

    async fn accept_loop(state: AppState, listener: UnixListener, path: PathBuf, public_url: Arc<str>) {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => accepted,
                () = state.shutdown.cancelled() => break,
            };
            match stream {
                Ok((stream, _)) => {
                    let state = state.clone();
                    let public_url = public_url.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_one(&state, stream, &public_url).await {
                            tracing::warn!(error = %format!("{e:#}"), "admin connection");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket accept");
                    // An accept error (out of descriptors) would repeat at once; breathe.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
        let _gone = std::fs::remove_file(&path);
    }

    async fn serve_one(state: &AppState, stream: UnixStream, public_url: &str) -> anyhow::Result<()> {
        // The file mode already keeps others out; the peer's uid check holds even if the mode
        // was loosened by hand.
        let peer = stream.peer_cred()?.uid();
        // SAFETY: geteuid has no preconditions.
        let ours = unsafe { libc::geteuid() };
        if peer != ours && peer != 0 {
            tracing::warn!(peer, "admin socket: refused a connection from another user");
            return Ok(());
        }
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        BufReader::new(read.take(MAX_REQUEST as u64)).read_line(&mut line).await?;
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(request) => match execute(&Context::live(state, public_url), request).await {
                Ok(reply) => reply,
                Err(super::AdminError::Internal(e)) => {
                    tracing::error!(error = %format!("{e:#}"), "admin command failed");
                    Reply::Failed { message: format!("the server failed: {e:#}") }
                }
                Err(e) => Reply::Failed { message: e.to_string() },
            },
            Err(e) => Reply::Failed { message: format!("not a request this server knows: {e}") },
        };
        let mut out = serde_json::to_string(&reply)?;
        out.push('\n');
        write.write_all(out.as_bytes()).await?;
        write.shutdown().await?;
        Ok(())
    }

    /// The command line's side: sends one request to the server running on `data_dir`.
    pub async fn call(data_dir: &Path, request: &Request) -> anyhow::Result<Reply> {
        let path = data_dir.join(SOCKET);
        let stream = UnixStream::connect(&path).await.with_context(|| {
            format!(
                "a server is running on {} but its admin socket {} cannot be opened (run this as \
                 the server's user, or as root)",
                data_dir.display(),
                path.display()
            )
        })?;
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_string(request)?;
        line.push('\n');
        write.write_all(line.as_bytes()).await?;
        let mut answer = String::new();
        BufReader::new(read.take(16 * 1024 * 1024)).read_line(&mut answer).await?;
        serde_json::from_str(&answer).context("the server's answer")
    }
}
