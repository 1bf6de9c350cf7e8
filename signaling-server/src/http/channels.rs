//! Channels: everyone lists what they can see; `ManageChannels` creates, renames, sets topics,
//! reorders, makes private (with a member list) and deletes group channels, each change with
//! its audit entry; anyone opens DMs and group DMs with other members (unless blocked).
//!
//! A private channel is managed only by those who can see it (its members): to everyone
//! else it does not exist. Whoever makes a change to a private channel stays a member of it,
//! so a channel can never be left without someone able to manage it.

use axum::extract::State;
use axum::http::StatusCode;
use hearth_protocol::api::{
    CreateChannelRequest, CreateDmRequest, ReorderChannelsRequest, SetChannelMembersRequest,
    UpdateChannelRequest,
};
use hearth_protocol::model::{AuditAction, AuditChange, Channel, ChannelKind, Permission};
use hearth_protocol::{ChannelId, ErrorCode, MAX_GROUP_DM_MEMBERS, MAX_TOPIC_CHARS, UserId};

use super::extract::{Json, Path};
use crate::audit::change;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

fn check_name(name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(AppError::invalid("channel names are 1 to 64 characters"));
    }
    Ok(name.to_string())
}

fn check_topic(topic: &str) -> AppResult<String> {
    let topic = topic.trim();
    if topic.chars().count() > MAX_TOPIC_CHARS || topic.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::invalid(format!("topics are at most {MAX_TOPIC_CHARS} characters")));
    }
    Ok(topic.to_string())
}

/// A private channel's member list: current members of the group, each once, sorted, with
/// `actor` always in it.
fn check_members(state: &AppState, actor: UserId, members: &[UserId]) -> AppResult<Vec<UserId>> {
    let mut list = members.to_vec();
    list.push(actor);
    list.sort();
    list.dedup();
    if let Some(unknown) = list.iter().find(|u| state.hub.user(**u).is_none()) {
        return Err(AppError::new(ErrorCode::NotFound, format!("no such member {unknown}")));
    }
    Ok(list)
}

fn ids_text(ids: &[UserId]) -> String {
    ids.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(",")
}

pub async fn list(State(state): State<AppState>, user: AuthUser) -> Json<Vec<Channel>> {
    Json(state.hub.visible_channels(user.id))
}

pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ChannelId>,
) -> AppResult<Json<Channel>> {
    state.hub.visible_channel(user.id, id).map(Json).ok_or_else(|| AppError::not_found("channel"))
}

pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<CreateChannelRequest>,
) -> AppResult<(StatusCode, Json<Channel>)> {
    user.require(&state, Permission::ManageChannels)?;
    if req.kind.is_direct() {
        return Err(AppError::invalid("use /dms to open a direct message"));
    }
    if !req.private && !req.members.is_empty() {
        return Err(AppError::invalid("only a private channel has a member list"));
    }
    let members = if req.private { check_members(&state, user.id, &req.members)? } else { Vec::new() };
    let _admin = state.admin_lock.lock().await;
    let channel = Channel {
        id: ChannelId(state.ids.next()),
        kind: req.kind,
        name: check_name(&req.name)?,
        topic: check_topic(req.topic.as_deref().unwrap_or(""))?,
        position: state.hub.next_position(),
        private: req.private,
        members,
        last_message_id: None,
    };
    let mut entry = crate::audit::on_channel(&state, user.id, AuditAction::ChannelCreate, channel.id);
    entry.changes.push(change("name", None, Some(&channel.name)));
    entry.changes.push(change("kind", None, Some(channel.kind.as_str())));
    if channel.private {
        entry.changes.push(change("private", None, Some("true")));
        entry.changes.push(change("added", None, Some(&ids_text(&channel.members))));
    }
    let mut tx = state.db.pool.begin().await?;
    crate::db::channels::insert(&mut tx, &channel).await?;
    crate::db::audit::insert(&mut tx, &entry).await?;
    tx.commit().await?;
    state.hub.upsert_channel(channel.clone());
    Ok((StatusCode::CREATED, Json(channel)))
}

/// A group channel the caller can see and may manage.
fn group_channel(state: &AppState, user: &AuthUser, id: ChannelId) -> AppResult<Channel> {
    let channel = state.hub.visible_channel(user.id, id).ok_or_else(|| AppError::not_found("channel"))?;
    user.require(state, Permission::ManageChannels)?;
    if channel.kind.is_direct() {
        return Err(AppError::invalid("direct messages cannot be changed this way"));
    }
    Ok(channel)
}

/// Stores a changed channel with its audit entry, then tells those it concerns.
async fn commit_channel(
    state: &AppState,
    user: &AuthUser,
    action: AuditAction,
    channel: Channel,
    changes: Vec<AuditChange>,
    members_changed: bool,
) -> AppResult<Channel> {
    if changes.is_empty() {
        return Ok(channel);
    }
    let mut entry = crate::audit::on_channel(state, user.id, action, channel.id);
    entry.changes = changes;
    let mut tx = state.db.pool.begin().await?;
    crate::db::channels::update(&mut tx, &channel).await?;
    if members_changed {
        crate::db::channels::set_members(&mut tx, channel.id, &channel.members).await?;
    }
    crate::db::audit::insert(&mut tx, &entry).await?;
    tx.commit().await?;
    state.hub.upsert_channel(channel.clone());
    Ok(channel)
}

/// The member-list changes between two lists, for the audit log (`added` / `removed`).
fn member_changes(before: &[UserId], after: &[UserId]) -> Vec<AuditChange> {
    let added: Vec<UserId> = after.iter().filter(|u| !before.contains(u)).copied().collect();
    let removed: Vec<UserId> = before.iter().filter(|u| !after.contains(u)).copied().collect();
    let mut changes = Vec::new();
    if !added.is_empty() {
        changes.push(change("added", None, Some(&ids_text(&added))));
    }
    if !removed.is_empty() {
        changes.push(change("removed", Some(&ids_text(&removed)), None));
    }
    changes
}

pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ChannelId>,
    Json(req): Json<UpdateChannelRequest>,
) -> AppResult<Json<Channel>> {
    let _admin = state.admin_lock.lock().await;
    let before = group_channel(&state, &user, id)?;
    let mut channel = before.clone();
    let mut changes = Vec::new();
    if let Some(name) = req.name {
        channel.name = check_name(&name)?;
        if channel.name != before.name {
            changes.push(change("name", Some(&before.name), Some(&channel.name)));
        }
    }
    if let Some(topic) = req.topic {
        channel.topic = check_topic(&topic)?;
        if channel.topic != before.topic {
            changes.push(change("topic", Some(&before.topic), Some(&channel.topic)));
        }
    }
    if let Some(position) = req.position {
        if !(0..=10_000).contains(&position) {
            return Err(AppError::invalid("position must be between 0 and 10000"));
        }
        channel.position = position;
        if channel.position != before.position {
            changes.push(change("position", Some(&before.position.to_string()), Some(&position.to_string())));
        }
    }
    let mut members_changed = false;
    if let Some(private) = req.private
        && private != before.private
    {
        channel.private = private;
        // Made private: only the one who did it, until they choose others. Made open: the
        // list means nothing any more.
        channel.members = if private { vec![user.id] } else { Vec::new() };
        members_changed = true;
        changes.push(change("private", Some(&before.private.to_string()), Some(&private.to_string())));
        changes.extend(member_changes(&before.members, &channel.members));
    }
    Ok(Json(
        commit_channel(&state, &user, AuditAction::ChannelUpdate, channel, changes, members_changed).await?,
    ))
}

/// `PUT /channels/{id}/members`: a private channel's whole new member list.
pub async fn set_members(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ChannelId>,
    Json(req): Json<SetChannelMembersRequest>,
) -> AppResult<Json<Channel>> {
    let _admin = state.admin_lock.lock().await;
    let before = group_channel(&state, &user, id)?;
    if !before.private {
        return Err(AppError::invalid("only a private channel has a member list; make it private first"));
    }
    let mut channel = before.clone();
    channel.members = check_members(&state, user.id, &req.members)?;
    let changes = member_changes(&before.members, &channel.members);
    Ok(Json(commit_channel(&state, &user, AuditAction::ChannelMembersUpdate, channel, changes, true).await?))
}

/// `PUT /channels/order`: the caller's visible group channels, top to bottom. Channels the
/// caller cannot see keep their places among the others; positions are renumbered from 0.
pub async fn reorder(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<ReorderChannelsRequest>,
) -> AppResult<Json<Vec<Channel>>> {
    user.require(&state, Permission::ManageChannels)?;
    let _admin = state.admin_lock.lock().await;
    let all = state.hub.group_channels();
    let visible: Vec<ChannelId> = all.iter().filter(|c| c.is_visible_to(user.id)).map(|c| c.id).collect();
    let mut wanted = req.channel_ids.clone();
    wanted.sort();
    let mut have = visible.clone();
    have.sort();
    if wanted != have {
        return Err(AppError::invalid("channel_ids must list every channel you can see, each once"));
    }
    // Fill the visible channels' slots in the new order; hidden ones stay in theirs.
    let mut order = req.channel_ids.iter();
    let arranged: Vec<Channel> = all
        .iter()
        .map(|c| {
            if c.is_visible_to(user.id) {
                order
                    .next()
                    .and_then(|id| all.iter().find(|x| x.id == *id))
                    .cloned()
                    .unwrap_or_else(|| c.clone())
            } else {
                c.clone()
            }
        })
        .collect();
    let moved: Vec<Channel> = arranged
        .into_iter()
        .enumerate()
        .filter_map(|(i, mut c)| {
            let position = i as i32;
            (c.position != position).then(|| {
                c.position = position;
                c
            })
        })
        .collect();
    if !moved.is_empty() {
        let mut entry = crate::audit::entry(&state, user.id, AuditAction::ChannelReorder);
        entry.changes = vec![change(
            "order",
            None,
            Some(&req.channel_ids.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",")),
        )];
        let mut tx = state.db.pool.begin().await?;
        for c in &moved {
            crate::db::channels::set_position(&mut tx, c.id, c.position).await?;
        }
        crate::db::audit::insert(&mut tx, &entry).await?;
        tx.commit().await?;
        for c in moved {
            state.hub.upsert_channel(c);
        }
    }
    let mut mine: Vec<Channel> = state.hub.group_channels();
    mine.retain(|c| c.is_visible_to(user.id));
    Ok(Json(mine))
}

pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ChannelId>,
) -> AppResult<StatusCode> {
    let _admin = state.admin_lock.lock().await;
    let channel = group_channel(&state, &user, id)?;
    let mut entry = crate::audit::on_channel(&state, user.id, AuditAction::ChannelDelete, id);
    entry.changes = vec![change("name", Some(&channel.name), None)];
    let mut tx = state.db.pool.begin().await?;
    crate::db::channels::delete(&mut tx, id).await?;
    crate::db::audit::insert(&mut tx, &entry).await?;
    tx.commit().await?;
    state.hub.delete_channel(id);
    Ok(StatusCode::NO_CONTENT)
}

/// Opens (or finds) a DM with one member, or makes a group DM with several. Refused with
/// `blocked` when one of them has blocked the caller.
pub async fn open_dm(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<CreateDmRequest>,
) -> AppResult<(StatusCode, Json<Channel>)> {
    let mut others = req.recipients;
    others.sort();
    others.dedup();
    others.retain(|u| *u != user.id);
    if others.is_empty() || others.len() + 1 > MAX_GROUP_DM_MEMBERS {
        return Err(AppError::invalid(format!("a DM needs 1 to {} other members", MAX_GROUP_DM_MEMBERS - 1)));
    }
    if others.iter().any(|u| state.hub.user(*u).is_none()) {
        return Err(AppError::not_found("member"));
    }
    if others.iter().any(|u| state.hub.has_blocked(*u, user.id)) {
        return Err(AppError::new(ErrorCode::Blocked, "this member does not accept messages from you"));
    }
    if let [other] = others[..]
        && let Some(existing) = state.hub.find_dm(user.id, other)
    {
        return Ok((StatusCode::OK, Json(existing)));
    }
    let mut members = others.clone();
    members.push(user.id);
    members.sort();
    let channel = Channel {
        id: ChannelId(state.ids.next()),
        kind: if others.len() == 1 { ChannelKind::Dm } else { ChannelKind::GroupDm },
        name: String::new(),
        topic: String::new(),
        position: 0,
        private: false,
        members,
        last_message_id: None,
    };
    state.db.insert_channel(&channel).await?;
    state.hub.upsert_channel(channel.clone());
    Ok((StatusCode::CREATED, Json(channel)))
}
