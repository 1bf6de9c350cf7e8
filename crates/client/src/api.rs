//! The typed HTTP client of the server's `/api/v1`: one method per route, the protocol crate's
//! bodies in and out, the server's `ApiError` (stable code + message) on refusal.

use std::time::Duration;

use hearth_protocol::api::{
    AuditLogQuery, CreateChannelRequest, CreateDmRequest, CreateInviteRequest, CreateUploadRequest,
    HistoryQuery, Invite, LoginRequest, LogoutRequest, ModerationRequest, RefreshRequest, RegisterRequest,
    ReorderChannelsRequest, SearchQuery, SearchResults, SendMessageRequest, ServerInfo, Session,
    SetChannelMembersRequest, TransferOwnershipRequest, TurnCredentials, UpdateChannelRequest,
    UpdateMemberRequest, UpdateProfileRequest, UpdateServerSettingsRequest, UploadStatus,
};
use hearth_protocol::model::{Attachment, AuditEntry, Ban, Channel, Message, ServerSettings, User};
use hearth_protocol::{ApiError, AttachmentId, ChannelId, ErrorCode, UploadId, UserId};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// How long one HTTP request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP client bound to one server. Cheap to clone (reqwest pools connections inside).
#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
    /// `https://host[:port][/prefix]`, no trailing slash.
    base: String,
}

impl Api {
    /// A client for the server at `base` (as given by [`crate::invite::Link::server`]).
    pub fn new(base: &str) -> Result<Api> {
        crate::tls::install_provider();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("hearth-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Network(format!("cannot set up HTTP: {e}")))?;
        Ok(Api { http, base: base.trim_end_matches('/').to_string() })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The gateway's WebSocket URL (`wss://` for an `https://` server).
    pub fn gateway_url(&self) -> String {
        let rest = self
            .base
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}"))
            .or_else(|| self.base.strip_prefix("http://").map(|r| format!("ws://{r}")))
            .unwrap_or_else(|| self.base.clone());
        format!("{rest}/api/v1/gateway")
    }

    fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let req = self.http.request(method, format!("{}/api/v1{path}", self.base));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    // ---- Public routes ----

    /// `GET /server`: name, protocol version, whether it still needs its first admin.
    pub async fn server_info(&self) -> Result<ServerInfo> {
        json(self.request(Method::GET, "/server", None)).await
    }

    /// `POST /auth/register` with an invite code (or the server's setup token).
    pub async fn register(&self, req: &RegisterRequest) -> Result<Session> {
        json(self.request(Method::POST, "/auth/register", None).json(req)).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<Session> {
        let body = LoginRequest { username: username.into(), password: password.into() };
        json(self.request(Method::POST, "/auth/login", None).json(&body)).await
    }

    /// Trades a (single-use) refresh token for a new session; the answer holds its successor.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session> {
        let body = RefreshRequest { refresh_token: refresh_token.into() };
        json(self.request(Method::POST, "/auth/refresh", None).json(&body)).await
    }

    // ---- Authenticated routes ----

    pub async fn logout(&self, token: &str, everywhere: bool) -> Result<()> {
        empty(self.request(Method::POST, "/auth/logout", Some(token)).json(&LogoutRequest { everywhere }))
            .await
    }

    pub async fn me(&self, token: &str) -> Result<User> {
        json(self.request(Method::GET, "/users/@me", Some(token))).await
    }

    pub async fn update_profile(&self, token: &str, req: &UpdateProfileRequest) -> Result<User> {
        json(self.request(Method::PATCH, "/users/@me", Some(token)).json(req)).await
    }

    /// `PUT /users/@me/avatar` with the image file's bytes (PNG, JPEG, GIF or WebP).
    pub async fn upload_avatar(&self, token: &str, image: Vec<u8>) -> Result<User> {
        json(self.request(Method::PUT, "/users/@me/avatar", Some(token)).body(image)).await
    }

    /// The PNG of the avatar with this content hash (members only).
    pub async fn avatar(&self, token: &str, hash: &str) -> Result<Vec<u8>> {
        let resp = send(self.request(Method::GET, &format!("/avatars/{hash}.png"), Some(token))).await?;
        Ok(resp.bytes().await.map_err(network)?.to_vec())
    }

    pub async fn members(&self, token: &str) -> Result<Vec<User>> {
        json(self.request(Method::GET, "/users", Some(token))).await
    }

    pub async fn channels(&self, token: &str) -> Result<Vec<Channel>> {
        json(self.request(Method::GET, "/channels", Some(token))).await
    }

    /// `ManageChannels`: a text or voice channel, open or private.
    pub async fn create_channel(&self, token: &str, req: &CreateChannelRequest) -> Result<Channel> {
        json(self.request(Method::POST, "/channels", Some(token)).json(req)).await
    }

    /// `ManageChannels`: rename, set the topic, move, make private or open.
    pub async fn update_channel(
        &self,
        token: &str,
        channel: ChannelId,
        req: &UpdateChannelRequest,
    ) -> Result<Channel> {
        json(self.request(Method::PATCH, &format!("/channels/{channel}"), Some(token)).json(req)).await
    }

    /// `ManageChannels`: the whole member list of a private channel.
    pub async fn set_channel_members(
        &self,
        token: &str,
        channel: ChannelId,
        members: Vec<UserId>,
    ) -> Result<Channel> {
        let body = SetChannelMembersRequest { members };
        json(self.request(Method::PUT, &format!("/channels/{channel}/members"), Some(token)).json(&body))
            .await
    }

    /// `ManageChannels`: every channel the caller can see, top to bottom.
    pub async fn reorder_channels(&self, token: &str, channel_ids: Vec<ChannelId>) -> Result<Vec<Channel>> {
        let body = ReorderChannelsRequest { channel_ids };
        json(self.request(Method::PUT, "/channels/order", Some(token)).json(&body)).await
    }

    /// `ManageChannels`: deletes the channel and its history.
    pub async fn delete_channel(&self, token: &str, channel: ChannelId) -> Result<()> {
        empty(self.request(Method::DELETE, &format!("/channels/{channel}"), Some(token))).await
    }

    /// `ManageMembers`: a member's new role.
    pub async fn update_member(&self, token: &str, user: UserId, req: &UpdateMemberRequest) -> Result<User> {
        json(self.request(Method::PATCH, &format!("/users/{user}"), Some(token)).json(req)).await
    }

    /// `ManageMembers`: removes a member (a new invite brings them back).
    pub async fn kick(&self, token: &str, user: UserId, req: &ModerationRequest) -> Result<()> {
        empty(self.request(Method::POST, &format!("/users/{user}/kick"), Some(token)).json(req)).await
    }

    /// `ManageMembers`: removes a member and refuses them until unbanned.
    pub async fn ban(&self, token: &str, user: UserId, req: &ModerationRequest) -> Result<()> {
        empty(self.request(Method::PUT, &format!("/bans/{user}"), Some(token)).json(req)).await
    }

    /// `ManageMembers`.
    pub async fn unban(&self, token: &str, user: UserId) -> Result<()> {
        empty(self.request(Method::DELETE, &format!("/bans/{user}"), Some(token))).await
    }

    /// `ManageMembers`.
    pub async fn bans(&self, token: &str) -> Result<Vec<Ban>> {
        json(self.request(Method::GET, "/bans", Some(token))).await
    }

    /// Any member: hide `user`'s messages here and refuse their DMs (or undo it).
    pub async fn set_block(&self, token: &str, user: UserId, blocked: bool) -> Result<()> {
        let method = if blocked { Method::PUT } else { Method::DELETE };
        empty(self.request(method, &format!("/users/@me/blocks/{user}"), Some(token))).await
    }

    /// Owners: `user` becomes an owner and the caller an admin; answers the new owner.
    pub async fn transfer_ownership(&self, token: &str, user_id: UserId) -> Result<User> {
        let body = TransferOwnershipRequest { user_id };
        json(self.request(Method::POST, "/server/transfer-ownership", Some(token)).json(&body)).await
    }

    pub async fn server_settings(&self, token: &str) -> Result<ServerSettings> {
        json(self.request(Method::GET, "/server/settings", Some(token))).await
    }

    /// `ManageServer`: absent fields stay as they are.
    pub async fn update_server_settings(
        &self,
        token: &str,
        req: &UpdateServerSettingsRequest,
    ) -> Result<ServerSettings> {
        json(self.request(Method::PATCH, "/server/settings", Some(token)).json(req)).await
    }

    /// `ManageServer`: the image file's bytes (decoded by the server with the avatars' bounds).
    pub async fn upload_server_icon(&self, token: &str, image: Vec<u8>) -> Result<ServerSettings> {
        json(self.request(Method::PUT, "/server/icon", Some(token)).body(image)).await
    }

    /// `ManageServer`.
    pub async fn delete_server_icon(&self, token: &str) -> Result<ServerSettings> {
        json(self.request(Method::DELETE, "/server/icon", Some(token))).await
    }

    /// The group's icon PNG with this content hash (public).
    pub async fn server_icon(&self, hash: &str) -> Result<Vec<u8>> {
        let resp = send(self.request(Method::GET, &format!("/server/icon/{hash}.png"), None)).await?;
        Ok(resp.bytes().await.map_err(network)?.to_vec())
    }

    /// `ManageServer`: a page of the audit log, newest first.
    pub async fn audit_log(&self, token: &str, query: &AuditLogQuery) -> Result<Vec<AuditEntry>> {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(b) = query.before {
            params.push(("before", b.to_string()));
        }
        if let Some(l) = query.limit {
            params.push(("limit", l.to_string()));
        }
        json(self.request(Method::GET, "/audit-log", Some(token)).query(&params)).await
    }

    /// Opens (or finds) the DM with one member, or a group DM with several.
    pub async fn open_dm(&self, token: &str, recipients: Vec<UserId>) -> Result<Channel> {
        let body = CreateDmRequest { recipients };
        json(self.request(Method::POST, "/dms", Some(token)).json(&body)).await
    }

    /// A page of history: newest first with `before` (or no cursor), oldest first with `after`
    /// or `around`.
    pub async fn history(
        &self,
        token: &str,
        channel: ChannelId,
        query: &HistoryQuery,
    ) -> Result<Vec<Message>> {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(b) = query.before {
            params.push(("before", b.to_string()));
        }
        if let Some(a) = query.after {
            params.push(("after", a.to_string()));
        }
        if let Some(a) = query.around {
            params.push(("around", a.to_string()));
        }
        if let Some(l) = query.limit {
            params.push(("limit", l.to_string()));
        }
        json(self.request(Method::GET, &format!("/channels/{channel}/messages"), Some(token)).query(&params))
            .await
    }

    /// Sends over HTTP (no gateway needed); the same nonce always yields the same message.
    pub async fn send_message(
        &self,
        token: &str,
        channel: ChannelId,
        req: &SendMessageRequest,
    ) -> Result<Message> {
        json(self.request(Method::POST, &format!("/channels/{channel}/messages"), Some(token)).json(req))
            .await
    }

    /// `ManageInvites`.
    pub async fn create_invite(&self, token: &str, req: &CreateInviteRequest) -> Result<Invite> {
        json(self.request(Method::POST, "/invites", Some(token)).json(req)).await
    }

    /// `ManageInvites`: the usable invites.
    pub async fn invites(&self, token: &str) -> Result<Vec<Invite>> {
        json(self.request(Method::GET, "/invites", Some(token))).await
    }

    /// `ManageInvites`.
    pub async fn revoke_invite(&self, token: &str, code: &str) -> Result<()> {
        empty(self.request(Method::DELETE, &format!("/invites/{code}"), Some(token))).await
    }

    /// `GET /search`: a page of full-text results over what the member can read.
    pub async fn search(&self, token: &str, query: &SearchQuery) -> Result<SearchResults> {
        let mut params: Vec<(&str, String)> = vec![("q", query.q.clone())];
        if let Some(o) = query.offset {
            params.push(("offset", o.to_string()));
        }
        if let Some(l) = query.limit {
            params.push(("limit", l.to_string()));
        }
        json(self.request(Method::GET, "/search", Some(token)).query(&params)).await
    }

    pub async fn turn(&self, token: &str) -> Result<TurnCredentials> {
        json(self.request(Method::GET, "/turn", Some(token))).await
    }

    // ---- Attachments (see `crate::attachments` for resumable transfers over these) ----

    /// `POST /uploads`: starts a resumable upload.
    pub async fn create_upload(&self, token: &str, req: &CreateUploadRequest) -> Result<UploadStatus> {
        json(self.request(Method::POST, "/uploads", Some(token)).json(req)).await
    }

    /// `GET /uploads/{id}`: where the upload stands (the offset to append at).
    pub async fn upload_status(&self, token: &str, id: UploadId) -> Result<UploadStatus> {
        json(self.request(Method::GET, &format!("/uploads/{id}"), Some(token))).await
    }

    /// `PATCH /uploads/{id}`: appends `bytes` at `offset`; returns the server's new offset.
    pub async fn append_upload(&self, token: &str, id: UploadId, offset: u64, bytes: Vec<u8>) -> Result<u64> {
        let req = self
            .request(Method::PATCH, &format!("/uploads/{id}"), Some(token))
            .header("Upload-Offset", offset.to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .timeout(Duration::from_secs(300))
            .body(bytes);
        let resp = send(req).await?;
        resp.headers()
            .get("upload-offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Protocol("no Upload-Offset in the answer".into()))
    }

    /// `POST /uploads/{id}/finish`: the attachment to send with a message.
    pub async fn finish_upload(&self, token: &str, id: UploadId) -> Result<Attachment> {
        json(
            self.request(Method::POST, &format!("/uploads/{id}/finish"), Some(token))
                .timeout(Duration::from_secs(300)),
        )
        .await
    }

    /// `DELETE /uploads/{id}`.
    pub async fn cancel_upload(&self, token: &str, id: UploadId) -> Result<()> {
        empty(self.request(Method::DELETE, &format!("/uploads/{id}"), Some(token))).await
    }

    /// `GET /attachments/{id}` from byte `from` on (a Range request when `from > 0`): the
    /// response, to read in chunks.
    pub async fn download_attachment(
        &self,
        token: &str,
        id: AttachmentId,
        from: u64,
    ) -> Result<reqwest::Response> {
        let mut req = self
            .http
            .get(format!("{}/api/v1/attachments/{id}", self.base))
            .bearer_auth(token)
            .timeout(Duration::from_secs(24 * 3600));
        if from > 0 {
            req = req.header("Range", format!("bytes={from}-"));
        }
        send(req).await
    }

    /// `GET /attachments/{id}/thumbnail`: a JPEG or PNG preview of an image.
    pub async fn attachment_thumbnail(&self, token: &str, id: AttachmentId) -> Result<Vec<u8>> {
        let resp =
            send(self.request(Method::GET, &format!("/attachments/{id}/thumbnail"), Some(token))).await?;
        Ok(resp.bytes().await.map_err(network)?.to_vec())
    }

    /// The link others paste to join with `code`.
    pub fn invite_link(&self, code: &str) -> String {
        let server: String = url::form_urlencoded::byte_serialize(self.base.as_bytes()).collect();
        let code: String = url::form_urlencoded::byte_serialize(code.as_bytes()).collect();
        format!("hearth://join?server={server}&code={code}")
    }

    /// The server's web page for `code`: how to install Hearth, and a button that opens it.
    pub fn invite_page(&self, code: &str) -> String {
        let code: String = url::form_urlencoded::byte_serialize(code.as_bytes()).collect();
        format!("{}/invite/{code}", self.base)
    }
}

async fn send(req: RequestBuilder) -> Result<reqwest::Response> {
    let resp = req.send().await.map_err(network)?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.bytes().await.map_err(network)?;
    Err(match serde_json::from_slice::<ApiError>(&body) {
        Ok(e) => Error::Api(e),
        Err(_) => Error::Api(ApiError::new(code_for_status(status), format!("the server answered {status}"))),
    })
}

async fn json<T: DeserializeOwned>(req: RequestBuilder) -> Result<T> {
    let body = send(req).await?.bytes().await.map_err(network)?;
    serde_json::from_slice(&body).map_err(|e| Error::Protocol(e.to_string()))
}

async fn empty(req: RequestBuilder) -> Result<()> {
    send(req).await.map(|_| ())
}

fn network(e: reqwest::Error) -> Error {
    // reqwest's Display can include the URL but never headers or bodies, so no token leaks.
    Error::Network(e.without_url().to_string())
}

/// A code for an error answer without an `ApiError` body (e.g. from a proxy in front).
fn code_for_status(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        413 => ErrorCode::PayloadTooLarge,
        507 => ErrorCode::InsufficientStorage,
        429 => ErrorCode::RateLimited,
        502..=504 => ErrorCode::Unavailable,
        400..=499 => ErrorCode::MalformedRequest,
        _ => ErrorCode::Internal,
    }
}
