//! The high-level entry: an [`Engine`] over one data directory ties saved accounts, the HTTP
//! API, the gateway session and the local cache together for the app.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hearth_protocol::api::{
    CreateChannelRequest, CreateInviteRequest, HistoryQuery, Invite, RegisterRequest, ServerInfo,
    TurnCredentials, UpdateProfileRequest,
};
use hearth_protocol::model::{Channel, ChannelKind, Message, ReadState, Status, User};
use hearth_protocol::model::Attachment;
use hearth_protocol::{AttachmentId, ChannelId, MessageId, UserId};
use tokio_util::sync::CancellationToken;
use tokio::sync::broadcast;

use crate::accounts::{Account, Accounts};
use crate::api::Api;
use crate::attachments::{self, Progress};
use crate::backoff::BackoffConfig;
use crate::call::CallConfig;
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::invite::{self, Link};
use crate::session::{ConnectionStatus, Session, SessionConfig, SessionEvent, SessionHandle};
use crate::store::{OutboxEntry, Store};
use crate::transfer::{TransferOptions, Transfers};
use crate::voice::{Voice, VoiceError, VoiceSettings};
use hearth_voice::{AudioInput, AudioOutput};

/// Tuning of an engine.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    pub backoff: BackoffConfig,
    /// Status to come online with (`None`: online).
    pub status: Option<Status>,
    /// How direct transfers connect.
    pub transfer: TransferOptions,
}

/// A saved account as the app shows it (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub id: String,
    pub server: String,
    pub user_id: UserId,
    pub username: String,
    pub active: bool,
}

/// The client engine over one data directory.
pub struct Engine {
    data_dir: PathBuf,
    options: EngineOptions,
    /// Short critical sections only (reads, and the small atomic file write on change).
    accounts: Arc<Mutex<Accounts>>,
    /// Access tokens from a register or login, handed to the next session of that account
    /// so that it need not spend a refresh token at once.
    fresh_access: Mutex<HashMap<String, String>>,
    /// The running account; cloned out before any await.
    active: Mutex<Option<Arc<Active>>>,
}

struct Active {
    account: Account,
    api: Api,
    credentials: Credentials,
    store: Store,
    session: Session,
    transfers: Arc<Transfers>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here leaves the data whole, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// Opens the engine over `data_dir` (created if missing), reading the saved accounts.
    pub fn open(data_dir: impl Into<PathBuf>) -> Result<Engine> {
        Self::open_with(data_dir, EngineOptions::default())
    }

    pub fn open_with(data_dir: impl Into<PathBuf>, options: EngineOptions) -> Result<Engine> {
        let data_dir = data_dir.into();
        std::fs::create_dir_all(&data_dir)?;
        let accounts = Accounts::load(&data_dir)?;
        Ok(Engine {
            data_dir,
            options,
            accounts: Arc::new(Mutex::new(accounts)),
            fresh_access: Mutex::new(HashMap::new()),
            active: Mutex::new(None),
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where the saved accounts live.
    pub fn accounts_path(&self) -> PathBuf {
        lock(&self.accounts).path().to_path_buf()
    }

    pub fn accounts(&self) -> Vec<AccountInfo> {
        let accounts = lock(&self.accounts);
        let active = accounts.active().map(|a| a.id.clone());
        accounts
            .list()
            .iter()
            .map(|a| AccountInfo {
                id: a.id.clone(),
                server: a.server.clone(),
                user_id: a.user_id,
                username: a.username.clone(),
                active: active.as_deref() == Some(a.id.as_str()),
            })
            .collect()
    }

    /// The account marked active in the saved file (activated or not yet).
    pub fn active_account(&self) -> Option<AccountInfo> {
        self.accounts().into_iter().find(|a| a.active)
    }

    /// What a server says about itself before login (name, whether it needs setup).
    pub async fn server_info(&self, link: &str) -> Result<ServerInfo> {
        let link = invite::parse(link)?;
        Api::new(link.server())?.server_info().await
    }

    /// Registers with a pasted invite link or deep link and saves the account; it becomes the
    /// active account (call [`Engine::activate`] to go online). The first admin registers with
    /// [`Engine::register`] and the server's setup token.
    pub async fn add_account_from_invite(
        &self,
        link: &str,
        username: &str,
        password: &str,
    ) -> Result<AccountInfo> {
        let link = invite::parse(link)?;
        let Link::Join { server, code } = link else {
            return Err(invite::LinkError::MissingCode.into());
        };
        self.register(&server, &code, username, password).await
    }

    /// Registers on `server` with `code` (an invite code or the setup token).
    pub async fn register(
        &self,
        server: &str,
        code: &str,
        username: &str,
        password: &str,
    ) -> Result<AccountInfo> {
        let api = Api::new(server)?;
        let req = RegisterRequest {
            invite: code.to_string(),
            username: username.to_string(),
            password: password.to_string(),
            display_name: None,
        };
        let session = api.register(&req).await?;
        self.save_login(api.base(), session)
    }

    /// Logs in on the server a link or address names, and saves the account as active.
    pub async fn login(&self, server_or_link: &str, username: &str, password: &str) -> Result<AccountInfo> {
        let link = invite::parse(server_or_link)?;
        let api = Api::new(link.server())?;
        let session = api.login(username, password).await?;
        self.save_login(api.base(), session)
    }

    fn save_login(&self, server: &str, session: hearth_protocol::api::Session) -> Result<AccountInfo> {
        let account = Account::new(server, session.user.id, &session.user.username, &session.refresh_token);
        let id = account.id.clone();
        {
            let mut accounts = lock(&self.accounts);
            accounts.upsert(account)?;
            accounts.set_active(&id)?;
        }
        lock(&self.fresh_access).insert(id.clone(), session.access_token);
        self.accounts().into_iter().find(|a| a.id == id).ok_or(Error::NoSuchAccount(id))
    }

    /// Makes `account_id` the running account: stops the previous session, opens the
    /// account's cache and starts its session (which connects, and delivers the outbox).
    pub async fn activate(&self, account_id: &str) -> Result<SessionHandle> {
        self.activate_subscribed(account_id).await.map(|(handle, _)| handle)
    }

    /// [`Engine::activate`], also returning a subscription to the new session's events that
    /// started before it connected (so its first `Ready` cannot be missed).
    pub async fn activate_subscribed(
        &self,
        account_id: &str,
    ) -> Result<(SessionHandle, broadcast::Receiver<SessionEvent>)> {
        let account = lock(&self.accounts)
            .get(account_id)
            .cloned()
            .ok_or_else(|| Error::NoSuchAccount(account_id.into()))?;
        // Only one session may spend this login's refresh tokens at a time.
        self.deactivate().await;
        let api = Api::new(&account.server)?;
        let access = lock(&self.fresh_access).remove(account_id);
        let persist_to = self.accounts.clone();
        let id = account.id.clone();
        let credentials = Credentials::new(
            access,
            account.refresh_token().to_string(),
            Box::new(move |token| lock(&persist_to).set_refresh_token(&id, token)),
        );
        let store = Store::open(&self.cache_path(&account)).await?;
        let mut config = SessionConfig::new(api.clone(), credentials.clone(), store.clone());
        config.backoff = self.options.backoff;
        config.status = self.options.status;
        let session = Session::start(config);
        let handle = session.handle();
        let events = session.take_events().expect("a new session's first subscription");
        lock(&self.accounts).set_active(account_id)?;
        let transfers_dir = self.account_dir(&account).join("transfers");
        let transfers =
            Arc::new(Transfers::start(handle.clone(), transfers_dir, self.options.transfer.clone()));
        let active = Arc::new(Active { account, api, credentials, store, session, transfers });
        *lock(&self.active) = Some(active);
        Ok((handle, events))
    }

    /// Activates the account marked active in the saved file, if any.
    pub async fn resume_active(&self) -> Result<Option<SessionHandle>> {
        match self.active_account() {
            Some(a) => self.activate(&a.id).await.map(Some),
            None => Ok(None),
        }
    }

    /// Stops the running session (closing its connection cleanly) and closes its cache.
    pub async fn deactivate(&self) {
        let previous = lock(&self.active).take();
        if let Some(active) = previous {
            active.session.shutdown().await;
            active.store.close().await;
        }
    }

    fn account_dir(&self, account: &Account) -> PathBuf {
        self.data_dir.join("accounts").join(account.dir_name())
    }

    fn cache_path(&self, account: &Account) -> PathBuf {
        self.account_dir(account).join("cache.db")
    }

    /// The running account's direct transfers.
    pub fn transfers(&self) -> Result<Arc<Transfers>> {
        Ok(self.active()?.transfers.clone())
    }

    /// The running account's HTTP client.
    pub(crate) fn api(&self) -> Result<Api> {
        Ok(self.active()?.api.clone())
    }

    fn active(&self) -> Result<Arc<Active>> {
        lock(&self.active).clone().ok_or(Error::NoActiveAccount)
    }

    /// The running session.
    pub fn session(&self) -> Result<SessionHandle> {
        Ok(self.active()?.session.handle())
    }

    /// The running account's cache.
    pub fn store(&self) -> Result<Store> {
        Ok(self.active()?.store.clone())
    }

    /// Runs an authenticated HTTP request for the running account, refreshing the access
    /// token once if the server says it expired.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: Fn(Api, String) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let active = self.active()?;
        active.credentials.call(&active.api, f).await
    }

    /// A page of history, newest first: `limit` messages older than `before` (or the newest).
    /// Served from the cache when the cache is known to hold that range completely; else from
    /// the server (and cached); from whatever the cache has when offline or the server is
    /// unreachable.
    pub async fn history(
        &self,
        channel: ChannelId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<Message>> {
        let active = self.active()?;
        let limit = limit.clamp(1, 100);
        let cached = active.store.history(channel, before, limit).await?;
        if let Some(oldest) = active.store.synced_from(channel).await? {
            let complete =
                oldest.0 == 0 || cached.len() == limit as usize && cached.iter().all(|m| m.id >= oldest);
            if complete {
                return Ok(cached);
            }
        }
        if active.session.handle().status() != ConnectionStatus::Connected {
            // Offline: what we have now beats waiting for a connection attempt to fail.
            return Ok(cached);
        }
        let query = HistoryQuery { before, after: None, around: None, limit: Some(limit) };
        let fetched = active
            .credentials
            .call(&active.api, |api, token| {
                let query = query.clone();
                async move { api.history(&token, channel, &query).await }
            })
            .await;
        match fetched {
            Ok(page) => {
                active.store.upsert_messages(&page).await?;
                self.note_page(&active.store, channel, before, limit, &page).await?;
                Ok(page)
            }
            Err(e) if e.is_transient() => Ok(cached),
            Err(e) => Err(e),
        }
    }

    /// Records how far back the cache is complete after fetching a page from the server.
    async fn note_page(
        &self,
        store: &Store,
        channel: ChannelId,
        before: Option<MessageId>,
        limit: u32,
        page: &[Message],
    ) -> Result<()> {
        let reached_start = page.len() < limit as usize;
        let page_oldest = match page.iter().map(|m| m.id).min() {
            Some(oldest) if !reached_start => oldest,
            _ => MessageId(0),
        };
        // The page covers [page_oldest, before) (or up to the newest message). It extends the
        // complete range [known, newest] when it starts at the newest message or inside that
        // range; a page below the range would leave a gap of unknown size.
        match store.synced_from(channel).await? {
            Some(known) if before.is_none_or(|b| b >= known) => {
                store.set_synced_from(channel, known.min(page_oldest)).await?;
            }
            None if before.is_none() => store.set_synced_from(channel, page_oldest).await?,
            _ => {}
        }
        Ok(())
    }

    /// Only what the cache holds (for showing something at once, or offline).
    pub async fn cached_history(
        &self,
        channel: ChannelId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<Message>> {
        self.active()?.store.history(channel, before, limit).await
    }

    /// Sends through the outbox; returns the nonce (see [`SessionHandle::send_message`]).
    pub async fn send_message(
        &self,
        channel: ChannelId,
        content: &str,
        reply_to: Option<MessageId>,
    ) -> Result<String> {
        self.session()?.send_message(channel, content, reply_to).await
    }

    pub async fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        self.active()?.store.outbox().await
    }

    pub async fn channels(&self) -> Result<Vec<Channel>> {
        self.active()?.store.channels().await
    }

    pub async fn members(&self) -> Result<Vec<User>> {
        self.active()?.store.members().await
    }

    pub async fn read_states(&self) -> Result<Vec<ReadState>> {
        self.active()?.store.read_states().await
    }

    pub fn connection_status(&self) -> ConnectionStatus {
        self.session().map(|s| s.status()).unwrap_or(ConnectionStatus::Offline)
    }

    /// `ManageInvites`: a new invite, and the link to share for it.
    pub async fn create_invite(
        &self,
        max_uses: Option<u32>,
        expires_in_secs: Option<u64>,
    ) -> Result<(Invite, String)> {
        let active = self.active()?;
        let req = CreateInviteRequest { max_uses, expires_in_secs };
        let invite = active
            .credentials
            .call(&active.api, |api, token| {
                let req = req.clone();
                async move { api.create_invite(&token, &req).await }
            })
            .await?;
        let link = active.api.invite_link(&invite.code);
        Ok((invite, link))
    }

    /// `ManageChannels`: a new open text or voice channel (see [`Engine::channel_create`]).
    pub async fn create_channel(&self, name: &str, kind: ChannelKind) -> Result<Channel> {
        self.channel_create(CreateChannelRequest {
            name: name.to_string(),
            kind,
            topic: None,
            private: false,
            members: Vec::new(),
        })
        .await
    }

    pub async fn open_dm(&self, recipients: Vec<UserId>) -> Result<Channel> {
        self.call(move |api, token| {
            let recipients = recipients.clone();
            async move { api.open_dm(&token, recipients).await }
        })
        .await
    }

    pub async fn update_profile(&self, display_name: Option<String>) -> Result<User> {
        let req = UpdateProfileRequest { display_name };
        self.call(move |api, token| {
            let req = req.clone();
            async move { api.update_profile(&token, &req).await }
        })
        .await
    }

    pub async fn upload_avatar(&self, image: Vec<u8>) -> Result<User> {
        self.call(move |api, token| {
            let image = image.clone();
            async move { api.upload_avatar(&token, image).await }
        })
        .await
    }

    /// The avatar PNG with this content hash. Hashes are content addresses, so the bytes
    /// never change and callers may cache them for good.
    pub async fn avatar(&self, hash: &str) -> Result<Vec<u8>> {
        let hash = hash.to_string();
        self.call(move |api, token| {
            let hash = hash.clone();
            async move { api.avatar(&token, &hash).await }
        })
        .await
    }

    /// Uploads the file at `path` as an attachment named `name` (see [`crate::attachments`]):
    /// resumes from the server's offset after a dropped connection or an expired token;
    /// `cancel` deletes the upload on the server. The result goes into a message with
    /// [`SessionHandle::send_message_with_attachments`].
    pub async fn upload_attachment(
        &self,
        path: &Path,
        name: &str,
        cancel: &CancellationToken,
        progress: Arc<dyn Fn(Progress) + Send + Sync>,
    ) -> Result<Attachment> {
        let path = path.to_path_buf();
        let id = {
            let (path, name) = (path.clone(), name.to_string());
            self.call(move |api, token| {
                let (path, name) = (path.clone(), name.clone());
                async move { attachments::start_upload(&api, &token, &path, &name).await }
            })
            .await?
        };
        self.call(move |api, token| {
            let (path, cancel, progress) = (path.clone(), cancel.clone(), progress.clone());
            async move { attachments::upload(&api, &token, id, &path, &cancel, |p| progress(p)).await }
        })
        .await
    }

    /// Downloads attachment `id` (`size` bytes) to `dest`, resuming `<dest>.part`.
    pub async fn download_attachment(
        &self,
        id: AttachmentId,
        size: u64,
        dest: &Path,
        cancel: &CancellationToken,
        progress: Arc<dyn Fn(Progress) + Send + Sync>,
    ) -> Result<()> {
        let dest = dest.to_path_buf();
        self.call(move |api, token| {
            let (dest, cancel, progress) = (dest.clone(), cancel.clone(), progress.clone());
            async move { attachments::download(&api, &token, id, size, &dest, &cancel, |p| progress(p)).await }
        })
        .await
    }

    /// The preview of an image attachment (JPEG or PNG bytes).
    pub async fn attachment_thumbnail(&self, id: AttachmentId) -> Result<Vec<u8>> {
        self.call(move |api, token| async move { api.attachment_thumbnail(&token, id).await }).await
    }

    /// The whole attachment in memory, at most `limit` bytes (for showing an image at full
    /// size; files go to disk with [`Engine::download_attachment`]).
    pub async fn attachment_bytes(&self, id: AttachmentId, limit: u64) -> Result<Vec<u8>> {
        self.call(move |api, token| async move {
            let mut resp = api.download_attachment(&token, id, 0).await?;
            let mut out = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| Error::Network(e.without_url().to_string()))? {
                if (out.len() + chunk.len()) as u64 > limit {
                    return Err(Error::Api(hearth_protocol::ApiError::new(
                        hearth_protocol::ErrorCode::PayloadTooLarge,
                        "the attachment is too large to show",
                    )));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(out)
        })
        .await
    }

    pub async fn turn(&self) -> Result<TurnCredentials> {
        self.call(|api, token| async move { api.turn(&token).await }).await
    }

    /// Joins the voice channel `channel` with the running session and starts the audio
    /// between `input` and `output`. When `call.ice_servers` is empty, fresh STUN/TURN
    /// servers are fetched first (TURN credentials expire, so `Ready`'s may be stale).
    pub async fn join_voice(
        &self,
        channel: ChannelId,
        mut call: CallConfig,
        settings: VoiceSettings,
        input: Box<dyn AudioInput>,
        output: Box<dyn AudioOutput>,
    ) -> std::result::Result<Voice, VoiceError> {
        let session = self.session()?;
        if call.ice_servers.is_empty() {
            call.ice_servers = self.turn().await?.ice_servers;
        }
        Voice::join(session, channel, call, settings, input, output).await
    }

    /// Logs the running account out on the server, stops it and forgets it.
    pub async fn logout(&self, everywhere: bool) -> Result<()> {
        let active = self.active()?;
        let outcome = active
            .credentials
            .call(&active.api, |api, token| async move { api.logout(&token, everywhere).await })
            .await;
        let id = active.account.id.clone();
        drop(active);
        self.deactivate().await;
        lock(&self.accounts).remove(&id)?;
        match outcome {
            Ok(()) | Err(Error::LoggedOut) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Forgets a saved account (stopping it first if it runs). Its cache stays on disk.
    pub async fn remove_account(&self, account_id: &str) -> Result<()> {
        let running = lock(&self.active).as_ref().is_some_and(|a| a.account.id == account_id);
        if running {
            self.deactivate().await;
        }
        lock(&self.accounts).remove(account_id)?;
        Ok(())
    }

    /// Stops everything cleanly.
    pub async fn shutdown(&self) {
        self.deactivate().await;
    }
}
