//! The hub: the group's live state in memory (members, channels and who may see them,
//! gateway sessions, presence, voice states) and fan-out of events to the sessions allowed to
//! see them. The database is the record; the hub is loaded from it at start and kept in step
//! by the handlers after each durable change.
//!
//! Invariant: an event reaches a session only if that session's user may see the channel
//! (private channels: members only) — every dispatch goes through [`Hub::dispatch_channel`],
//! [`Hub::dispatch_user`] or [`Hub::dispatch_all`].
//!
//! With several server processes on one PostgreSQL (see `cluster`), the hub is given a bus:
//! every change of the group's shared state and every fan-out made here is also sent to the
//! other processes as a [`Note`] (*shared*), and what this process alone knows — which of its
//! members are connected and how, who sits in a call from one of its sessions — is announced
//! when it changes (*announced*). Notes from other processes come back through [`Hub::apply`],
//! which makes the same change here without sending it on. Presence and voice states combine
//! this process's sessions with what the others announced.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use hearth_protocol::gateway::Event;
use hearth_protocol::model::{
    Channel, ChannelKind, Permission, Presence, Role, ServerSettings, Signal, Status, TransferSignal, User,
    VoiceState,
};
use hearth_protocol::{ChannelId, MessageId, UserId};

use crate::cluster::BusSender;
use crate::cluster::note::{Audience, NodeId, Note};
use crate::gateway::session::{GatewaySession, Payload};

#[derive(Default)]
pub struct Hub {
    // A std RwLock: every critical section is a few map operations and non-blocking sends,
    // never an await, so readers (fan-out) run in parallel and writers wait microseconds.
    state: RwLock<GroupState>,
}

struct GroupState {
    users: HashMap<UserId, User>,
    channels: HashMap<ChannelId, Channel>,
    sessions: HashMap<String, Arc<GatewaySession>>,
    by_user: HashMap<UserId, Vec<Arc<GatewaySession>>>,
    /// Shown presence per user (what others see), for change detection.
    shown: HashMap<UserId, Status>,
    voice: HashMap<UserId, (VoiceState, Seat)>,
    revoked_families: HashSet<String>,
    /// The group's settings; permissions are decided by them.
    settings: ServerSettings,
    /// (blocker, blocked).
    blocks: HashSet<(UserId, UserId)>,
    /// The bus to the other server processes (PostgreSQL with `cluster`), if any.
    bus: Option<BusSender>,
    /// Set while a note from another process is applied: shared changes are not sent back.
    applying_remote: bool,
    /// What this process announced as each user's presence (the best of its live sessions,
    /// invisible included; absent = none).
    announced: HashMap<UserId, Status>,
    /// What the other processes announced, per user and process.
    remote_presence: HashMap<UserId, HashMap<NodeId, Status>>,
}

/// Where a member in a call is connected: one of our sessions, or another process.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seat {
    Local(String),
    Remote(NodeId),
}

impl Seat {
    fn is_session(&self, id: &str) -> bool {
        matches!(self, Seat::Local(s) if s == id)
    }
}

impl Default for GroupState {
    fn default() -> Self {
        GroupState {
            users: HashMap::new(),
            channels: HashMap::new(),
            sessions: HashMap::new(),
            by_user: HashMap::new(),
            shown: HashMap::new(),
            voice: HashMap::new(),
            revoked_families: HashSet::new(),
            settings: crate::settings::defaults("Hearth"),
            blocks: HashSet::new(),
            bus: None,
            applying_remote: false,
            announced: HashMap::new(),
            remote_presence: HashMap::new(),
        }
    }
}

/// Serializes an event once for all recipients.
pub fn payload(event: &Event) -> Arc<Payload> {
    // Serializing our own enum of strings and numbers cannot fail.
    Payload::new(serde_json::to_string(event).unwrap_or_else(|_| "{}".to_string()))
}

impl GroupState {
    /// Sends a change of the shared state to the other processes, unless it came from one.
    fn share(&self, note: impl FnOnce() -> Note) {
        if let Some(bus) = &self.bus
            && !self.applying_remote
        {
            bus.send(note());
        }
    }

    /// Sends a change of what only this process knows (its sessions, its calls).
    fn announce(&self, note: impl FnOnce() -> Note) {
        if let Some(bus) = &self.bus {
            bus.send(note());
        }
    }

    fn can_see(&self, user: UserId, channel: &Channel) -> bool {
        self.users.contains_key(&user) && channel.is_visible_to(user)
    }

    fn send_to_user(&self, user: UserId, payload: &Arc<Payload>) {
        if let Some(sessions) = self.by_user.get(&user) {
            for s in sessions {
                s.dispatch(payload);
            }
        }
    }

    fn send_to_all(&self, payload: &Arc<Payload>) {
        // Each session's memory is cold in a fan-out to thousands, and a dispatch is quick:
        // load it several sessions ahead.
        let mut ahead = self.sessions.values().skip(8);
        for s in self.sessions.values() {
            if let Some(next) = ahead.next() {
                next.prefetch();
            }
            s.dispatch(payload);
        }
    }

    fn send_to_channel(&self, channel: &Channel, payload: &Arc<Payload>) {
        if channel.is_private() {
            for m in &channel.members {
                self.send_to_user(*m, payload);
            }
        } else {
            self.send_to_all(payload);
        }
    }

    /// Stores a new or changed channel and tells each session what changed for it (see
    /// [`Hub::upsert_channel`]). The newest message id is never moved back by a change made
    /// from an older copy.
    fn replace_channel(&mut self, mut channel: Channel) {
        self.share(|| Note::Channel { channel: channel.clone() });
        let before = self.channels.get(&channel.id).cloned();
        if let Some(old) = &before
            && old.last_message_id > channel.last_message_id
        {
            channel.last_message_id = old.last_message_id;
        }
        let update = payload(&Event::ChannelUpdate { channel: channel.clone() });
        let create = payload(&Event::ChannelCreate { channel: channel.clone() });
        let delete = payload(&Event::ChannelDelete { channel_id: channel.id });
        let mut lost = Vec::new();
        for user in self.by_user.keys().copied() {
            let now = self.can_see(user, &channel);
            let then = before.as_ref().is_some_and(|b| self.can_see(user, b));
            match (then, now) {
                (true, true) => self.send_to_user(user, &update),
                (false, true) => self.send_to_user(user, &create),
                (true, false) => {
                    self.send_to_user(user, &delete);
                    lost.push(user);
                }
                (false, false) => {}
            }
        }
        // Members without a live session still leave the call if they lost the channel.
        let in_call: Vec<UserId> = self
            .voice
            .iter()
            .filter(|(u, (v, _))| v.channel_id == Some(channel.id) && !self.can_see(**u, &channel))
            .map(|(u, _)| *u)
            .collect();
        let id = channel.id;
        self.channels.insert(id, channel);
        for user in lost.into_iter().chain(in_call) {
            self.leave_voice_in(user, id);
        }
    }

    /// The presence others see: the most "present" choice among live connections, where an
    /// explicit choice (invisible, do-not-disturb) beats online, and idle counts only when
    /// every device is idle.
    fn computed_presence(&self, user: UserId) -> Status {
        let remote = self.remote_presence.get(&user).into_iter().flat_map(|m| m.values().copied());
        match best_status(self.local_presence(user).into_iter().chain(remote)) {
            None | Some(Status::Invisible) | Some(Status::Offline) => Status::Offline,
            Some(s) => s,
        }
    }

    /// The best status among this process's live connections of `user`, if any.
    fn local_presence(&self, user: UserId) -> Option<Status> {
        best_status(
            self.by_user.get(&user).into_iter().flatten().filter(|s| s.is_attached()).map(|s| s.status()),
        )
    }

    fn refresh_presence(&mut self, user: UserId) {
        if self.bus.is_some() {
            let local = self.local_presence(user);
            if self.announced.get(&user).copied() != local {
                match local {
                    Some(st) => self.announced.insert(user, st),
                    None => self.announced.remove(&user),
                };
                self.announce(|| Note::Presence { user, status: local.unwrap_or(Status::Offline) });
            }
        }
        let now = self.computed_presence(user);
        let before = self.shown.insert(user, now).unwrap_or(Status::Offline);
        if before != now {
            let p = payload(&Event::PresenceUpdate { presence: Presence { user_id: user, status: now } });
            self.send_to_all(&p);
        }
    }

    /// Leaves the call only if `session` is the one in it (the user may be in a call from
    /// another device).
    fn leave_voice_of(&mut self, session: &GatewaySession) {
        if self.voice.get(&session.user_id).is_some_and(|(_, seat)| seat.is_session(&session.id)) {
            self.leave_voice(session.user_id);
        }
    }

    /// Takes `user` out of the call in `channel`, if they are in it.
    fn leave_voice_in(&mut self, user: UserId, channel: ChannelId) {
        if self.voice.get(&user).is_some_and(|(v, _)| v.channel_id == Some(channel)) {
            self.leave_voice(user);
        }
    }

    fn leave_voice(&mut self, user: UserId) {
        if let Some((mut state, seat)) = self.voice.remove(&user) {
            state.channel_id = None;
            state.speaking = false;
            if matches!(seat, Seat::Local(_)) {
                self.announce(|| Note::Voice { state: state.clone() });
            }
            let p = payload(&Event::VoiceStateUpdate { state });
            self.send_to_all(&p);
        }
    }

    fn deliver(&self, to: &Audience, payload: &Arc<Payload>) {
        match to {
            Audience::All => self.send_to_all(payload),
            Audience::User(user) => self.send_to_user(*user, payload),
            Audience::Channel(channel) => {
                if let Some(c) = self.channels.get(channel) {
                    self.send_to_channel(c, payload);
                }
            }
        }
    }

    fn set_settings(&mut self, settings: ServerSettings) {
        self.share(|| Note::Settings { settings: settings.clone() });
        self.settings = settings.clone();
        self.send_to_all(&payload(&Event::ServerUpdate { server: settings }));
    }

    fn set_block(&mut self, blocker: UserId, blocked: UserId, on: bool) {
        self.share(|| Note::Block { blocker, blocked, on });
        let changed =
            if on { self.blocks.insert((blocker, blocked)) } else { self.blocks.remove(&(blocker, blocked)) };
        if changed {
            self.send_to_user(blocker, &payload(&Event::BlockUpdate { user_id: blocked, blocked: on }));
        }
    }

    fn upsert_user(&mut self, user: User) {
        self.share(|| Note::User { user: user.clone() });
        let event = if self.users.contains_key(&user.id) {
            Event::MemberUpdate { user: user.clone() }
        } else {
            Event::MemberAdd { user: user.clone() }
        };
        self.users.insert(user.id, user);
        self.send_to_all(&payload(&event));
    }

    fn remove_user(&mut self, id: UserId, close_code: u16) {
        self.share(|| Note::RemoveUser { user: id, close_code });
        self.users.remove(&id);
        if let Some(sessions) = self.by_user.remove(&id) {
            for session in sessions {
                session.end_with(close_code);
                self.sessions.remove(&session.id);
            }
        }
        let left: Vec<ChannelId> = self
            .channels
            .values()
            .filter(|c| c.private && !c.kind.is_direct() && c.members.contains(&id))
            .map(|c| c.id)
            .collect();
        // Every process makes the same channel changes from this one note.
        let applying = std::mem::replace(&mut self.applying_remote, true);
        for channel in left {
            if let Some(mut updated) = self.channels.get(&channel).cloned() {
                updated.members.retain(|m| *m != id);
                self.replace_channel(updated);
            }
        }
        self.applying_remote = applying;
        self.shown.remove(&id);
        self.remote_presence.remove(&id);
        if self.announced.remove(&id).is_some() {
            self.announce(|| Note::Presence { user: id, status: Status::Offline });
        }
        self.leave_voice(id);
        self.send_to_all(&payload(&Event::MemberRemove { user_id: id }));
        self.send_to_all(&payload(&Event::PresenceUpdate {
            presence: Presence { user_id: id, status: Status::Offline },
        }));
    }

    fn revoke_family(&mut self, family: &str) {
        self.share(|| Note::Revoke { family: family.to_string() });
        self.revoked_families.insert(family.to_string());
        let ended: Vec<Arc<GatewaySession>> =
            self.sessions.values().filter(|x| x.family == family).cloned().collect();
        for session in ended {
            session.end();
            Hub::forget_session(self, &session);
        }
    }

    fn delete_channel(&mut self, id: ChannelId) {
        self.share(|| Note::DeleteChannel { channel: id });
        if let Some(channel) = self.channels.remove(&id) {
            self.send_to_channel(&channel, &payload(&Event::ChannelDelete { channel_id: id }));
            let in_call: Vec<UserId> =
                self.voice.iter().filter(|(_, (v, _))| v.channel_id == Some(id)).map(|(u, _)| *u).collect();
            for user in in_call {
                self.leave_voice(user);
            }
        }
    }

    fn purged(&mut self, before: MessageId) {
        self.share(|| Note::Purged { before });
        for c in self.channels.values_mut() {
            if c.last_message_id.is_some_and(|last| last < before) {
                c.last_message_id = None;
            }
        }
    }

    fn set_last_message(&mut self, channel: ChannelId, id: MessageId) {
        if let Some(c) = self.channels.get_mut(&channel)
            && c.last_message_id.is_none_or(|last| last < id)
        {
            c.last_message_id = Some(id);
        }
    }

    /// Another process is gone: its members' presence and its calls go with it.
    fn node_gone(&mut self, node: NodeId) {
        let users: Vec<UserId> = self
            .remote_presence
            .iter_mut()
            .filter_map(|(u, by_node)| by_node.remove(&node).map(|_| *u))
            .collect();
        self.remote_presence.retain(|_, by_node| !by_node.is_empty());
        for user in users {
            self.refresh_presence(user);
        }
        let seated: Vec<UserId> =
            self.voice.iter().filter(|(_, (_, seat))| *seat == Seat::Remote(node)).map(|(u, _)| *u).collect();
        for user in seated {
            self.leave_voice(user);
        }
    }

    /// A note from process `from`: the same change here, sent on to nobody.
    fn apply(&mut self, from: NodeId, note: Note) {
        self.applying_remote = true;
        match note {
            Note::Hello => {
                // A process joined: it learns what only we know.
                for (user, status) in &self.announced {
                    self.announce(|| Note::Presence { user: *user, status: *status });
                }
                for (state, _) in self.voice.values().filter(|(_, seat)| matches!(seat, Seat::Local(_))) {
                    self.announce(|| Note::Voice { state: state.clone() });
                }
            }
            Note::Dispatch { to, event } => {
                if let (Audience::Channel(channel), Event::MessageCreate { message, .. }) = (&to, &event) {
                    self.set_last_message(*channel, message.id);
                }
                self.deliver(&to, &payload(&event));
            }
            Note::Messages { .. } => {} // read from the table by `cluster`, then `Hub::message_stored`
            Note::Presence { user, status } => {
                let by_node = self.remote_presence.entry(user).or_default();
                if status == Status::Offline {
                    by_node.remove(&from);
                } else {
                    by_node.insert(from, status);
                }
                if by_node.is_empty() {
                    self.remote_presence.remove(&user);
                }
                self.refresh_presence(user);
            }
            Note::Voice { state } => {
                let user = state.user_id;
                if state.channel_id.is_some() {
                    self.voice.insert(user, (state.clone(), Seat::Remote(from)));
                    self.send_to_all(&payload(&Event::VoiceStateUpdate { state }));
                } else if self.voice.get(&user).is_some_and(|(_, seat)| *seat == Seat::Remote(from)) {
                    self.voice.remove(&user);
                    self.send_to_all(&payload(&Event::VoiceStateUpdate { state }));
                }
            }
            Note::Signal { from: sender, to, signal } => {
                let same_call = match (self.voice.get(&sender), self.voice.get(&to)) {
                    (Some((mine, Seat::Remote(n))), Some((theirs, Seat::Local(sid)))) if *n == from => {
                        (mine.channel_id.is_some() && mine.channel_id == theirs.channel_id).then_some(sid)
                    }
                    _ => None,
                };
                if let Some(target) = same_call.and_then(|sid| self.sessions.get(sid)) {
                    target.dispatch(&payload(&Event::VoiceSignal { from: sender, signal }));
                }
            }
            Note::Transfer { to, device, event } => {
                let event = payload(&event);
                for target in self.by_user.get(&to).into_iter().flatten() {
                    if device.as_deref().is_none_or(|tag| device_tag(&target.id) == tag)
                        && target.is_attached()
                    {
                        target.dispatch(&event);
                    }
                }
            }
            Note::Settings { settings } => self.set_settings(settings),
            Note::Block { blocker, blocked, on } => self.set_block(blocker, blocked, on),
            Note::User { user } => self.upsert_user(user),
            Note::RemoveUser { user, close_code } => self.remove_user(user, close_code),
            Note::Revoke { family } => self.revoke_family(&family),
            Note::Channel { channel } => self.replace_channel(channel),
            Note::DeleteChannel { channel } => self.delete_channel(channel),
            Note::Purged { before } => self.purged(before),
        }
        self.applying_remote = false;
    }
}

/// The most "present" of some statuses: an explicit choice (invisible, do-not-disturb) beats
/// online, and idle counts only when nothing better is there.
fn best_status(statuses: impl Iterator<Item = Status>) -> Option<Status> {
    let rank = |x: Status| match x {
        Status::Invisible => 4,
        Status::Dnd => 3,
        Status::Online => 2,
        Status::Idle => 1,
        Status::Offline => 0,
    };
    statuses.filter(|s| *s != Status::Offline).max_by_key(|s| rank(*s))
}

/// What the hub is loaded with at start.
pub struct Durable {
    pub users: Vec<User>,
    pub channels: Vec<Channel>,
    pub revoked_families: Vec<String>,
    pub settings: ServerSettings,
    pub blocks: Vec<(UserId, UserId)>,
}

/// What a new session's `Ready` is built from, taken in one lock with its registration.
pub struct Snapshot {
    pub user: User,
    pub channels: Vec<Channel>,
    pub members: Vec<User>,
    pub presences: Vec<Presence>,
    pub voice_states: Vec<VoiceState>,
    pub server: ServerSettings,
    /// Members this user has blocked.
    pub blocked: Vec<UserId>,
}

impl Hub {
    fn read(&self) -> RwLockReadGuard<'_, GroupState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, GroupState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads the durable state at start.
    pub fn load(&self, durable: Durable) {
        let mut s = self.write();
        s.users = durable.users.into_iter().map(|u| (u.id, u)).collect();
        s.channels = durable.channels.into_iter().map(|c| (c.id, c)).collect();
        s.revoked_families = durable.revoked_families.into_iter().collect();
        s.settings = durable.settings;
        s.blocks = durable.blocks.into_iter().collect();
    }

    // ---- settings and permissions ----

    pub fn settings(&self) -> ServerSettings {
        self.read().settings.clone()
    }

    /// The settings changed: everyone hears of it.
    pub fn set_settings(&self, settings: ServerSettings) {
        self.write().set_settings(settings);
    }

    /// Whether a member of `role` holds `permission` under the group's current settings.
    pub fn allows(&self, role: Role, permission: Permission) -> bool {
        self.read().settings.allows(role, permission)
    }

    /// How many current members are owners.
    pub fn owner_count(&self) -> usize {
        self.read().users.values().filter(|u| u.role == Role::Owner).count()
    }

    // ---- blocks ----

    /// Whether `blocker` has blocked `blocked`.
    pub fn has_blocked(&self, blocker: UserId, blocked: UserId) -> bool {
        self.read().blocks.contains(&(blocker, blocked))
    }

    /// Records a block (or its end) and tells the blocker's sessions.
    pub fn set_block(&self, blocker: UserId, blocked: UserId, on: bool) {
        self.write().set_block(blocker, blocked, on);
    }

    // ---- members ----

    pub fn user(&self, id: UserId) -> Option<User> {
        self.read().users.get(&id).cloned()
    }

    pub fn members(&self) -> Vec<User> {
        let mut users: Vec<User> = self.read().users.values().cloned().collect();
        users.sort_by_key(|u| u.id);
        users
    }

    /// A new member joined, or a member's profile changed: everyone hears of it.
    pub fn upsert_user(&self, user: User) {
        self.write().upsert_user(user);
    }

    /// A member was removed (kicked or banned): their sessions end, closing with
    /// `close_code`; they leave every private group channel's member list; everyone hears of it.
    pub fn remove_user(&self, id: UserId, close_code: u16) {
        self.write().remove_user(id, close_code);
    }

    // ---- logins ----

    pub fn is_revoked(&self, family: &str) -> bool {
        self.read().revoked_families.contains(family)
    }

    /// A login was revoked: its access tokens stop working and its sessions end.
    pub fn revoke_family(&self, family: &str) {
        self.write().revoke_family(family);
    }

    // ---- channels ----

    pub fn channel(&self, id: ChannelId) -> Option<Channel> {
        self.read().channels.get(&id).cloned()
    }

    /// The channel, if `user` may see it; otherwise `None` (callers answer "not found", so
    /// private channels do not reveal that they exist).
    pub fn visible_channel(&self, user: UserId, id: ChannelId) -> Option<Channel> {
        let s = self.read();
        s.channels.get(&id).filter(|c| s.can_see(user, c)).cloned()
    }

    pub fn visible_channels(&self, user: UserId) -> Vec<Channel> {
        let s = self.read();
        let mut list: Vec<Channel> = s.channels.values().filter(|c| s.can_see(user, c)).cloned().collect();
        list.sort_by_key(|c| (c.kind.is_direct(), c.position, c.id));
        list
    }

    /// The DM between two users, if there is one.
    pub fn find_dm(&self, a: UserId, b: UserId) -> Option<Channel> {
        let s = self.read();
        s.channels
            .values()
            .find(|c| c.kind == ChannelKind::Dm && c.members.contains(&a) && c.members.contains(&b))
            .cloned()
    }

    /// The next position for a new group channel.
    pub fn next_position(&self) -> i32 {
        let s = self.read();
        s.channels.values().filter(|c| !c.kind.is_direct()).map(|c| c.position + 1).max().unwrap_or(0)
    }

    /// A channel was created or changed. Who could see it and still can hears
    /// `ChannelUpdate`; who can see it now and could not before hears `ChannelCreate`; who
    /// could see it and no longer can hears `ChannelDelete` and leaves its call.
    pub fn upsert_channel(&self, channel: Channel) {
        self.write().replace_channel(channel);
    }

    /// Every group channel (text and voice, private ones included), by position.
    pub fn group_channels(&self) -> Vec<Channel> {
        let s = self.read();
        let mut list: Vec<Channel> = s.channels.values().filter(|c| !c.kind.is_direct()).cloned().collect();
        list.sort_by_key(|c| (c.position, c.id));
        list
    }

    pub fn delete_channel(&self, id: ChannelId) {
        self.write().delete_channel(id);
    }

    /// Retention deleted every message below `before`: channels whose newest message was
    /// among them have none left.
    pub fn purged(&self, before: MessageId) {
        self.write().purged(before);
    }

    /// A message was stored: it is the channel's newest (never moved back). Not shared: every
    /// process learns it from the message itself.
    pub fn set_last_message(&self, channel: ChannelId, id: MessageId) {
        self.write().set_last_message(channel, id);
    }

    // ---- fan-out ----

    /// To every session that may see `channel`.
    pub fn dispatch_channel(&self, channel: ChannelId, event: &Event) {
        self.dispatch(Audience::Channel(channel), event, true);
    }

    /// To every session of this process that may see `channel`: for a new message, which
    /// the other processes read from the database themselves (`cluster`).
    pub fn dispatch_channel_here(&self, channel: ChannelId, event: &Event) {
        self.dispatch(Audience::Channel(channel), event, false);
    }

    /// To every session of one user.
    pub fn dispatch_user(&self, user: UserId, event: &Event) {
        self.dispatch(Audience::User(user), event, true);
    }

    pub fn dispatch_all(&self, event: &Event) {
        self.dispatch(Audience::All, event, true);
    }

    fn dispatch(&self, to: Audience, event: &Event, shared: bool) {
        let s = self.read();
        s.deliver(&to, &payload(event));
        if shared {
            s.share(|| Note::Dispatch { to, event: event.clone() });
        }
    }

    // ---- other processes ----

    /// Connects the hub to the other processes: from now on it shares and announces.
    pub fn attach_bus(&self, bus: BusSender) {
        self.write().bus = Some(bus);
    }

    /// Asks the other processes to announce what only they know (we start, or start over).
    pub fn announce_hello(&self) {
        self.read().announce(|| Note::Hello);
    }

    /// Stops sharing (at shutdown, once the sessions are gone): the bus drains and closes.
    pub fn detach_bus(&self) {
        self.write().bus = None;
    }

    /// The other processes we hold announced state of (presence or calls).
    pub fn remote_nodes(&self) -> HashSet<NodeId> {
        let s = self.read();
        let seats = s.voice.values().filter_map(|(_, seat)| match seat {
            Seat::Remote(n) => Some(*n),
            Seat::Local(_) => None,
        });
        s.remote_presence.values().flat_map(|m| m.keys().copied()).chain(seats).collect()
    }

    /// Applies a note from process `from`.
    pub fn apply(&self, from: NodeId, note: Note) {
        self.write().apply(from, note);
    }

    /// A message stored by another process: the newest of its channel, and to everyone here
    /// who may see it.
    pub fn message_stored(&self, event: &Event) {
        if let Event::MessageCreate { message, .. } = event {
            let mut s = self.write();
            s.set_last_message(message.channel_id, message.id);
            s.deliver(&Audience::Channel(message.channel_id), &payload(event));
        }
    }

    /// Another process stopped (or missed its heartbeats): its members' presence and calls end.
    pub fn node_gone(&self, node: NodeId) {
        self.write().node_gone(node);
    }

    /// What other processes told us can no longer be trusted (notes were lost): the shared
    /// state is replaced by `durable`, what the others announced is forgotten, and this
    /// process's sessions end (closed with `close_code`, not resumable here: their clients
    /// identify afresh and catch up from history). Everything announced before is withdrawn.
    pub fn rejoin(&self, durable: Durable, close_code: u16) {
        let mut s = self.write();
        let sessions: Vec<Arc<GatewaySession>> = s.sessions.values().cloned().collect();
        for session in sessions {
            session.end_with(close_code);
            Self::forget_session(&mut s, &session);
        }
        let nodes: HashSet<NodeId> = s.remote_presence.values().flat_map(|m| m.keys().copied()).collect();
        for node in nodes {
            s.node_gone(node);
        }
        let remote_seats: Vec<UserId> = s
            .voice
            .iter()
            .filter(|(_, (_, seat))| matches!(seat, Seat::Remote(_)))
            .map(|(u, _)| *u)
            .collect();
        for user in remote_seats {
            s.leave_voice(user);
        }
        s.users = durable.users.into_iter().map(|u| (u.id, u)).collect();
        s.channels = durable.channels.into_iter().map(|c| (c.id, c)).collect();
        s.revoked_families = durable.revoked_families.into_iter().collect();
        s.settings = durable.settings;
        s.blocks = durable.blocks.into_iter().collect();
    }

    // ---- sessions and presence ----

    /// Registers a new, attached session and takes the snapshot for its `Ready` in the same
    /// critical section, so that every later event reaches it and none is in the snapshot and
    /// missed.
    pub fn register(&self, session: Arc<GatewaySession>) -> Option<Snapshot> {
        let mut s = self.write();
        let user = s.users.get(&session.user_id).cloned()?;
        s.sessions.insert(session.id.clone(), session.clone());
        s.by_user.entry(session.user_id).or_default().push(session.clone());
        s.refresh_presence(session.user_id);
        let mut channels: Vec<Channel> =
            s.channels.values().filter(|c| s.can_see(user.id, c)).cloned().collect();
        channels.sort_by_key(|c| (c.kind.is_direct(), c.position, c.id));
        let mut members: Vec<User> = s.users.values().cloned().collect();
        members.sort_by_key(|u| u.id);
        let presences = members
            .iter()
            .map(|u| Presence {
                user_id: u.id,
                status: s.shown.get(&u.id).copied().unwrap_or(Status::Offline),
            })
            .collect();
        let voice_states = s.voice.values().map(|(v, _)| v.clone()).collect();
        let mut blocked: Vec<UserId> =
            s.blocks.iter().filter(|(by, _)| *by == user.id).map(|(_, b)| *b).collect();
        blocked.sort();
        Some(Snapshot {
            user,
            channels,
            members,
            presences,
            voice_states,
            server: s.settings.clone(),
            blocked,
        })
    }

    pub fn session(&self, id: &str) -> Option<Arc<GatewaySession>> {
        self.read().sessions.get(id).cloned()
    }

    /// A session's connection came (back) or went: presence follows; a session that lost its
    /// connection leaves its voice channel.
    pub fn connection_changed(&self, session: &GatewaySession) {
        let mut s = self.write();
        if !session.is_attached() {
            s.leave_voice_of(session);
        }
        s.refresh_presence(session.user_id);
    }

    pub fn set_status(&self, session: &GatewaySession, status: Status) {
        session.set_status(status);
        self.write().refresh_presence(session.user_id);
    }

    fn forget_session(s: &mut GroupState, session: &GatewaySession) {
        s.sessions.remove(&session.id);
        if let Some(list) = s.by_user.get_mut(&session.user_id) {
            list.retain(|x| x.id != session.id);
            if list.is_empty() {
                s.by_user.remove(&session.user_id);
            }
        }
        s.leave_voice_of(session);
        s.refresh_presence(session.user_id);
    }

    /// Drops sessions whose connection has been gone longer than `window`, and ended ones.
    /// Returns how many were dropped.
    pub fn reap(&self, window: Duration, now: Instant) -> usize {
        let mut s = self.write();
        let expired: Vec<Arc<GatewaySession>> = s
            .sessions
            .values()
            .filter(|x| x.is_ended() || x.detached_at().is_some_and(|t| now.duration_since(t) >= window))
            .cloned()
            .collect();
        for session in &expired {
            session.end();
            Self::forget_session(&mut s, session);
        }
        expired.len()
    }

    /// Tells every connection whose client sent nothing for `timeout` to close.
    pub fn check_heartbeats(&self, now: Instant, timeout: Duration) {
        for session in self.read().sessions.values() {
            session.check_heartbeat(now, timeout);
        }
    }

    /// Wakes every connection, e.g. to see that the server is shutting down.
    pub fn kick_all(&self) {
        for session in self.read().sessions.values() {
            session.kick();
        }
    }

    /// Every live session, e.g. to close them at shutdown.
    pub fn sessions(&self) -> Vec<Arc<GatewaySession>> {
        self.read().sessions.values().cloned().collect()
    }

    /// (sessions with a live connection, distinct users with one).
    pub fn connected_counts(&self) -> (usize, usize) {
        let s = self.read();
        let sessions = s.sessions.values().filter(|x| x.is_attached()).count();
        let users = s.by_user.values().filter(|l| l.iter().any(|x| x.is_attached())).count();
        (sessions, users)
    }

    // ---- voice ----

    /// Joins (or moves to) a voice channel. `None` when the channel is not a voice channel
    /// the user can see.
    pub fn voice_join(
        &self,
        session: &GatewaySession,
        channel: ChannelId,
        muted: bool,
        deafened: bool,
    ) -> Option<()> {
        let mut s = self.write();
        let c = s.channels.get(&channel)?;
        if c.kind != ChannelKind::Voice || !s.can_see(session.user_id, c) {
            return None;
        }
        let state = VoiceState {
            user_id: session.user_id,
            channel_id: Some(channel),
            muted,
            deafened,
            speaking: false,
        };
        s.voice.insert(session.user_id, (state.clone(), Seat::Local(session.id.clone())));
        s.announce(|| Note::Voice { state: state.clone() });
        s.send_to_all(&payload(&Event::VoiceStateUpdate { state }));
        Some(())
    }

    pub fn voice_leave(&self, session: &GatewaySession) {
        self.write().leave_voice_of(session);
    }

    /// Updates mute/deafen/speaking; `None` when this session is not in a call.
    pub fn voice_update(
        &self,
        session: &GatewaySession,
        muted: bool,
        deafened: bool,
        speaking: bool,
    ) -> Option<()> {
        let mut s = self.write();
        let (state, seat) = s.voice.get_mut(&session.user_id)?;
        if !seat.is_session(&session.id) {
            return None;
        }
        state.muted = muted;
        state.deafened = deafened;
        state.speaking = speaking && !muted;
        let state = state.clone();
        s.announce(|| Note::Voice { state: state.clone() });
        s.send_to_all(&payload(&Event::VoiceStateUpdate { state }));
        Some(())
    }

    /// Relays signalling to `to`'s session in the call, only if both are in the same voice
    /// channel. `None` otherwise.
    pub fn voice_signal(&self, from: &GatewaySession, to: UserId, signal: Signal) -> Option<()> {
        let s = self.read();
        let (mine, my_seat) = s.voice.get(&from.user_id)?;
        let (theirs, their_seat) = s.voice.get(&to)?;
        if !my_seat.is_session(&from.id)
            || mine.channel_id.is_none()
            || mine.channel_id != theirs.channel_id
            || to == from.user_id
        {
            return None;
        }
        match their_seat {
            Seat::Local(their_session) => {
                let target = s.sessions.get(their_session)?;
                target.dispatch(&payload(&Event::VoiceSignal { from: from.user_id, signal }));
            }
            // The process they are connected to checks the call again and delivers.
            Seat::Remote(_) => s.announce(|| Note::Signal { from: from.user_id, to, signal }),
        }
        Some(())
    }

    // ---- direct transfers ----

    /// Relays direct-transfer signalling from `from` to `to`: to the device `device` names, or
    /// to every live session of `to` (when `to` is the sender itself: its other sessions).
    /// Refused when `to` is not a member, when either has blocked the other, and when no live
    /// session of `to` would get it (offline, or the device is gone).
    pub fn transfer_signal(
        &self,
        from: &GatewaySession,
        to: UserId,
        device: Option<&str>,
        transfer_id: String,
        signal: TransferSignal,
    ) -> Result<(), TransferRefusal> {
        let s = self.read();
        if !s.users.contains_key(&to) {
            return Err(TransferRefusal::NotMember);
        }
        if s.blocks.contains(&(to, from.user_id)) || s.blocks.contains(&(from.user_id, to)) {
            return Err(TransferRefusal::Blocked);
        }
        let event =
            Event::TransferSignal { from: from.user_id, device: device_tag(&from.id), transfer_id, signal };
        // Connected through another process: that one delivers (it alone knows the devices
        // there, so a device tag it does not have is dropped there).
        let mut delivered = s.remote_presence.contains_key(&to);
        if delivered {
            s.announce(|| Note::Transfer { to, device: device.map(str::to_string), event: event.clone() });
        }
        let event = payload(&event);
        for target in s.by_user.get(&to).into_iter().flatten() {
            let wanted = match device {
                Some(tag) => device_tag(&target.id) == tag,
                None => true,
            };
            if wanted && target.id != from.id && target.is_attached() {
                target.dispatch(&event);
                delivered = true;
            }
        }
        if delivered { Ok(()) } else { Err(TransferRefusal::Offline) }
    }
}

/// Why a direct-transfer signal was not relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferRefusal {
    NotMember,
    Blocked,
    Offline,
}

/// The tag other members see for one gateway session: stable for the session's life (resumes
/// included), and telling nothing about its id, which, with a token, resumes it.
pub fn device_tag(session_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("hearth-device:{session_id}").as_bytes());
    hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::session::ConnId;

    fn member(id: i64) -> User {
        User {
            id: UserId(id),
            username: format!("u{id}"),
            display_name: format!("u{id}"),
            avatar: None,
            role: hearth_protocol::model::Role::Member,
        }
    }

    /// A session of `user` with a connection attached (events wait in its replay buffer).
    fn online(hub: &Hub, id: &str, user: i64) -> (Arc<GatewaySession>, ConnId) {
        let session = Arc::new(GatewaySession::new(id.into(), UserId(user), "f".into(), Status::Online, 16));
        let conn = ConnId::next();
        session.attach(conn);
        hub.register(session.clone()).expect("a member");
        (session, conn)
    }

    #[test]
    fn transfers_are_refused_both_ways_once_either_member_blocked_the_other() {
        let hub = Hub::default();
        {
            let mut s = hub.write();
            s.users.insert(UserId(1), member(1));
            s.users.insert(UserId(2), member(2));
        }
        let (a, _) = online(&hub, "sa", 1);
        let (b, b_conn) = online(&hub, "sb", 2);
        let offer = || TransferSignal::Propose { name: "x".into(), size: 1, files: 1 };
        assert_eq!(hub.transfer_signal(&a, UserId(2), None, "t".into(), offer()), Ok(()));
        // What b's session was dispatched (its replay buffer, as a resume would replay it).
        let delivered = b.resume(0, b_conn).expect("resumable");
        let signals = delivered.iter().filter(|(_, event)| event.contains("\"TransferSignal\"")).count();
        assert_eq!(signals, 1, "delivered while nobody blocks");
        hub.set_block(UserId(2), UserId(1), true);
        assert_eq!(
            hub.transfer_signal(&a, UserId(2), None, "t".into(), offer()),
            Err(TransferRefusal::Blocked)
        );
        assert_eq!(
            hub.transfer_signal(&b, UserId(1), None, "t".into(), offer()),
            Err(TransferRefusal::Blocked)
        );
        hub.set_block(UserId(2), UserId(1), false);
        hub.set_block(UserId(1), UserId(2), true);
        assert_eq!(
            hub.transfer_signal(&b, UserId(1), None, "t".into(), offer()),
            Err(TransferRefusal::Blocked)
        );
        hub.set_block(UserId(1), UserId(2), false);
        assert_eq!(hub.transfer_signal(&b, UserId(1), None, "t".into(), offer()), Ok(()));
    }

    #[test]
    fn a_device_tag_hides_the_session_id_and_stays_put() {
        let tag = device_tag("secret-session");
        assert_eq!(tag, device_tag("secret-session"));
        assert_ne!(tag, device_tag("other-session"));
        assert!(!tag.contains("secret"));
        assert_eq!(tag.len(), 16);
    }
}
