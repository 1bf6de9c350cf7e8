//! Group administration for the running account: invites, channels, members and roles,
//! moderation (kick, ban, block), ownership, server settings and icon, the audit log. Each
//! method is one authenticated HTTP request ([`Engine::call`], which refreshes an expired
//! token once); what it changes comes back to every member, this one included, as gateway
//! events that the session applies to the cache (so callers need not update anything).
//! Permissions are the server's to check: a refusal is an [`Error::Api`] with
//! `missing_permission` or `forbidden`.

use hearth_protocol::api::{
    AuditLogQuery, CreateChannelRequest, Invite, ModerationRequest, UpdateChannelRequest,
    UpdateMemberRequest, UpdateServerSettingsRequest,
};
use hearth_protocol::model::{AuditEntry, Ban, Channel, Role, ServerSettings, User};
use hearth_protocol::{AuditEntryId, ChannelId, UserId};

use crate::engine::Engine;
use crate::error::{Error, Result};

/// An invite with the two ways to hand it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedInvite {
    pub invite: Invite,
    /// `hearth://join?server=…&code=…`: opens the app (or is pasted into it).
    pub link: String,
    /// `https://SERVER/invite/CODE`: the server's page for people without the app yet.
    pub page: String,
}

impl Engine {
    fn share(&self, invite: Invite) -> Result<SharedInvite> {
        let api = self.api()?;
        Ok(SharedInvite { link: api.invite_link(&invite.code), page: api.invite_page(&invite.code), invite })
    }

    /// `ManageInvites`: a new invite (`None`: unlimited uses / never expires).
    pub async fn invite_create(
        &self,
        max_uses: Option<u32>,
        expires_in_secs: Option<u64>,
    ) -> Result<SharedInvite> {
        let (invite, _) = self.create_invite(max_uses, expires_in_secs).await?;
        self.share(invite)
    }

    /// `ManageInvites`: the invites that can still be used.
    pub async fn invites(&self) -> Result<Vec<SharedInvite>> {
        let invites = self.call(|api, token| async move { api.invites(&token).await }).await?;
        invites.into_iter().map(|i| self.share(i)).collect()
    }

    /// `ManageInvites`.
    pub async fn invite_revoke(&self, code: &str) -> Result<()> {
        let code = code.to_string();
        self.call(move |api, token| {
            let code = code.clone();
            async move { api.revoke_invite(&token, &code).await }
        })
        .await
    }

    /// `ManageChannels`: a text or voice channel, open or private.
    pub async fn channel_create(&self, req: CreateChannelRequest) -> Result<Channel> {
        self.call(move |api, token| {
            let req = req.clone();
            async move { api.create_channel(&token, &req).await }
        })
        .await
    }

    /// `ManageChannels`: name, topic (empty clears it), position, private or open.
    pub async fn channel_update(&self, channel: ChannelId, req: UpdateChannelRequest) -> Result<Channel> {
        self.call(move |api, token| {
            let req = req.clone();
            async move { api.update_channel(&token, channel, &req).await }
        })
        .await
    }

    /// `ManageChannels`: who may see a private channel (the caller always stays in).
    pub async fn channel_set_members(&self, channel: ChannelId, members: Vec<UserId>) -> Result<Channel> {
        self.call(move |api, token| {
            let members = members.clone();
            async move { api.set_channel_members(&token, channel, members).await }
        })
        .await
    }

    /// `ManageChannels`: every text and voice channel this member sees, top to bottom.
    pub async fn channel_reorder(&self, order: Vec<ChannelId>) -> Result<Vec<Channel>> {
        self.call(move |api, token| {
            let order = order.clone();
            async move { api.reorder_channels(&token, order).await }
        })
        .await
    }

    /// `ManageChannels`: deletes the channel with its history.
    pub async fn channel_delete(&self, channel: ChannelId) -> Result<()> {
        self.call(move |api, token| async move { api.delete_channel(&token, channel).await }).await
    }

    /// `ManageMembers`: a member's new role (up to the caller's own).
    pub async fn member_set_role(&self, user: UserId, role: Role) -> Result<User> {
        let req = UpdateMemberRequest { role: Some(role) };
        self.call(move |api, token| {
            let req = req.clone();
            async move { api.update_member(&token, user, &req).await }
        })
        .await
    }

    /// `ManageMembers`: removes a member; a new invite brings them back.
    pub async fn member_kick(&self, user: UserId, reason: Option<String>) -> Result<()> {
        let req = ModerationRequest { reason };
        self.call(move |api, token| {
            let req = req.clone();
            async move { api.kick(&token, user, &req).await }
        })
        .await
    }

    /// `ManageMembers`: removes a member and refuses them until [`Engine::member_unban`].
    pub async fn member_ban(&self, user: UserId, reason: Option<String>) -> Result<()> {
        let req = ModerationRequest { reason };
        self.call(move |api, token| {
            let req = req.clone();
            async move { api.ban(&token, user, &req).await }
        })
        .await
    }

    /// `ManageMembers`.
    pub async fn member_unban(&self, user: UserId) -> Result<()> {
        self.call(move |api, token| async move { api.unban(&token, user).await }).await
    }

    /// `ManageMembers`: who is banned.
    pub async fn bans(&self) -> Result<Vec<Ban>> {
        self.call(|api, token| async move { api.bans(&token).await }).await
    }

    /// Any member: hide `user`'s messages here and refuse their DMs, or undo it. The change
    /// comes back as `BlockUpdate` to every session of this account.
    pub async fn member_block(&self, user: UserId, blocked: bool) -> Result<()> {
        self.call(move |api, token| async move { api.set_block(&token, user, blocked).await }).await
    }

    /// Owners: `user` becomes an owner and this account an admin.
    pub async fn transfer_ownership(&self, user: UserId) -> Result<User> {
        self.call(move |api, token| async move { api.transfer_ownership(&token, user).await }).await
    }

    pub async fn server_settings(&self) -> Result<ServerSettings> {
        self.call(|api, token| async move { api.server_settings(&token).await }).await
    }

    /// `ManageServer`: only the fields that are `Some` change.
    pub async fn server_settings_update(&self, req: UpdateServerSettingsRequest) -> Result<ServerSettings> {
        self.call(move |api, token| {
            let req = req.clone();
            async move { api.update_server_settings(&token, &req).await }
        })
        .await
    }

    /// `ManageServer`: a new icon from an image file's bytes (`None` removes it).
    pub async fn server_icon_set(&self, image: Option<Vec<u8>>) -> Result<ServerSettings> {
        self.call(move |api, token| {
            let image = image.clone();
            async move {
                match image {
                    Some(image) => api.upload_server_icon(&token, image).await,
                    None => api.delete_server_icon(&token).await,
                }
            }
        })
        .await
    }

    /// The group's icon PNG with this content hash.
    pub async fn server_icon(&self, hash: &str) -> Result<Vec<u8>> {
        self.api()?.server_icon(hash).await
    }

    /// `ManageServer`: up to `limit` (1..=100) entries older than `before`, newest first.
    pub async fn audit_log(&self, before: Option<AuditEntryId>, limit: u32) -> Result<Vec<AuditEntry>> {
        if !(1..=100).contains(&limit) {
            return Err(Error::Api(hearth_protocol::ApiError::new(
                hearth_protocol::ErrorCode::InvalidField,
                "limit: 1 to 100",
            )));
        }
        let query = AuditLogQuery { before, limit: Some(limit) };
        self.call(move |api, token| {
            let query = query.clone();
            async move { api.audit_log(&token, &query).await }
        })
        .await
    }
}
