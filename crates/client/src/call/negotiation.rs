//! The call's decisions as plain state machines, with no sockets and explicit time: who offers
//! to whom, what to do with an offer that collides with ours, and how a troubled connection
//! is recovered (ICE restart, then a fresh connection, then giving up).

use std::time::{Duration, Instant};

use hearth_protocol::UserId;

/// The lower user id of a pair is *impolite*: in an offer collision its offer wins, and it
/// alone replaces a connection that ICE restarts could not save. The higher id is *polite*:
/// it rolls back its own offer and answers. Both sides compute the same roles.
pub(crate) fn is_polite(me: UserId, other: UserId) -> bool {
    me > other
}

/// Whether we may throw a broken connection away and offer a fresh one. Only one side of a
/// pair does, so two fresh connections never race each other.
pub(crate) fn owns_fresh_connections(me: UserId, other: UserId) -> bool {
    !is_polite(me, other)
}

/// What to do with an offer that arrives from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OfferAction {
    /// Our own offer wins the collision; the peer will roll back and answer ours.
    Ignore,
    /// Renegotiation (an ICE restart) of the connection we have: apply it and answer.
    Apply,
    /// As `Apply`, but first roll back the offer we had sent (we are the polite side).
    RollbackThenApply,
    /// The offer is for a new connection (a new DTLS fingerprint, or we have none): drop ours
    /// and answer on a new one.
    Replace,
}

/// What our connection to the peer looks like when an offer arrives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OfferContext<'a> {
    pub polite: bool,
    /// We sent an offer that has not been answered (signaling state have-local-offer).
    pub local_offer_pending: bool,
    /// We have a connection object at all.
    pub has_connection: bool,
    /// The DTLS fingerprint of the remote description in effect, if any.
    pub remote_fingerprint: Option<&'a str>,
}

/// Perfect negotiation, extended with "a new fingerprint means a new connection": a peer that
/// rebuilt its connection (or rejoined) sends an offer whose certificate we have never seen,
/// and no renegotiation of our old connection could accept it.
pub(crate) fn on_offer(ctx: OfferContext<'_>, offer_fingerprint: Option<&str>) -> OfferAction {
    if ctx.local_offer_pending && !ctx.polite {
        return OfferAction::Ignore;
    }
    if !ctx.has_connection {
        return OfferAction::Replace;
    }
    match ctx.remote_fingerprint {
        None => OfferAction::Replace,
        Some(current) if Some(current) != offer_fingerprint => OfferAction::Replace,
        Some(_) if ctx.local_offer_pending => OfferAction::RollbackThenApply,
        Some(_) => OfferAction::Apply,
    }
}

/// The first `a=fingerprint:` value of an SDP (session or media level), which identifies the
/// certificate, and so the connection object, that produced it.
pub(crate) fn fingerprint(sdp: &str) -> Option<&str> {
    sdp.lines().find_map(|line| line.trim_end_matches('\r').strip_prefix("a=fingerprint:")).map(str::trim)
}

/// Timings of recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryConfig {
    /// A new connection that is not connected after this long counts as failed.
    pub connect_timeout: Duration,
    /// A connection reported `disconnected` this long (it may come back by itself) counts as
    /// failed.
    pub disconnected_grace: Duration,
    /// How long one recovery attempt may take before the next one.
    pub attempt_timeout: Duration,
    /// Attempts (restarts and fresh connections together) before giving up on the peer.
    pub max_attempts: u32,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            connect_timeout: Duration::from_secs(15),
            disconnected_grace: Duration::from_secs(4),
            attempt_timeout: Duration::from_secs(8),
            max_attempts: 6,
        }
    }
}

/// What the transport reported about the connection, reduced to what recovery needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Connecting,
    Connected,
    Disconnected,
    Failed,
}

/// A recovery step to take now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecoveryAction {
    /// Offer again on the same connection with fresh ICE credentials.
    IceRestart,
    /// Close the connection and offer a new one.
    FreshConnection,
    /// Stop trying; the peer stays failed until it rejoins.
    GiveUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the connection to come up (new, or after a recovery step).
    Waiting {
        deadline: Instant,
    },
    Connected,
    /// Disconnected since `since`; it may recover by itself within the grace period.
    Disconnected {
        since: Instant,
    },
    /// Failed and waiting for the next step.
    Failed,
    GaveUp,
}

/// Recovery of one peer's connection: feed it link changes and ask it, at any time, whether
/// to act.
#[derive(Debug, Clone)]
pub(crate) struct Recovery {
    config: RecoveryConfig,
    may_replace: bool,
    phase: Phase,
    attempts: u32,
    /// Whether the last step was an ICE restart (so the next can be a fresh connection).
    restarted: bool,
}

impl Recovery {
    /// `may_replace`: whether this side owns fresh connections for the pair.
    pub fn new(config: RecoveryConfig, may_replace: bool, now: Instant) -> Recovery {
        Recovery {
            config,
            may_replace,
            phase: Phase::Waiting { deadline: now + config.connect_timeout },
            attempts: 0,
            restarted: false,
        }
    }

    pub fn gave_up(&self) -> bool {
        self.phase == Phase::GaveUp
    }

    /// A new connection object replaced the old one (ours or the peer's doing).
    pub fn on_new_connection(&mut self, now: Instant) {
        if self.phase != Phase::GaveUp {
            self.phase = Phase::Waiting { deadline: now + self.config.connect_timeout };
        }
    }

    pub fn on_link(&mut self, link: Link, now: Instant) {
        match link {
            Link::Connected => {
                self.phase = Phase::Connected;
                self.attempts = 0;
                self.restarted = false;
            }
            Link::Disconnected => {
                if self.phase == Phase::Connected {
                    self.phase = Phase::Disconnected { since: now };
                }
            }
            Link::Failed => {
                if self.phase != Phase::GaveUp {
                    self.phase = Phase::Failed;
                }
            }
            Link::Connecting => {}
        }
    }

    /// The step to take now, if any. Taking it is assumed; the machine then waits for the
    /// outcome until the attempt times out.
    pub fn poll(&mut self, now: Instant) -> Option<RecoveryAction> {
        let due = match self.phase {
            Phase::Waiting { deadline } => now >= deadline,
            Phase::Disconnected { since } => now >= since + self.config.disconnected_grace,
            Phase::Failed => true,
            Phase::Connected | Phase::GaveUp => false,
        };
        if !due {
            return None;
        }
        if self.attempts >= self.config.max_attempts {
            self.phase = Phase::GaveUp;
            return Some(RecoveryAction::GiveUp);
        }
        self.attempts += 1;
        self.phase = Phase::Waiting { deadline: now + self.config.attempt_timeout };
        // An ICE restart first: it keeps DTLS and SRTP and only looks for a new path. If one
        // did not help, the side that owns fresh connections starts over; the other side keeps
        // restarting, which also reaches a peer that lost our first offer.
        if self.restarted && self.may_replace {
            self.restarted = false;
            Some(RecoveryAction::FreshConnection)
        } else {
            self.restarted = true;
            Some(RecoveryAction::IceRestart)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: UserId = UserId(10);
    const B: UserId = UserId(20);

    fn ctx(polite: bool, pending: bool, fp: Option<&str>) -> OfferContext<'_> {
        OfferContext { polite, local_offer_pending: pending, has_connection: true, remote_fingerprint: fp }
    }

    #[test]
    fn exactly_one_side_of_a_pair_is_polite() {
        assert!(is_polite(B, A));
        assert!(!is_polite(A, B));
        assert!(owns_fresh_connections(A, B));
        assert!(!owns_fresh_connections(B, A));
    }

    #[test]
    fn an_offer_collision_is_won_by_the_impolite_side() {
        // Both sides sent an ICE-restart offer on the same connection.
        assert_eq!(on_offer(ctx(false, true, Some("x")), Some("x")), OfferAction::Ignore);
        assert_eq!(on_offer(ctx(true, true, Some("x")), Some("x")), OfferAction::RollbackThenApply);
        // A glare on the very first offer: both built a connection and offered.
        assert_eq!(on_offer(ctx(false, true, None), Some("y")), OfferAction::Ignore);
        assert_eq!(on_offer(ctx(true, true, None), Some("y")), OfferAction::Replace);
    }

    #[test]
    fn a_new_fingerprint_replaces_the_connection_and_an_old_one_renegotiates() {
        assert_eq!(on_offer(ctx(true, false, Some("x")), Some("x")), OfferAction::Apply);
        assert_eq!(on_offer(ctx(false, false, Some("x")), Some("x")), OfferAction::Apply);
        assert_eq!(on_offer(ctx(true, false, Some("x")), Some("y")), OfferAction::Replace);
        assert_eq!(on_offer(ctx(false, false, Some("x")), Some("y")), OfferAction::Replace);
        let none = OfferContext {
            polite: false,
            local_offer_pending: false,
            has_connection: false,
            remote_fingerprint: None,
        };
        assert_eq!(on_offer(none, Some("y")), OfferAction::Replace);
    }

    #[test]
    fn the_fingerprint_is_read_from_the_sdp() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\na=fingerprint:sha-256 AB:CD\r\nm=audio 9\r\n";
        assert_eq!(fingerprint(sdp), Some("sha-256 AB:CD"));
        assert_eq!(fingerprint("v=0\r\n"), None);
    }

    fn config() -> RecoveryConfig {
        RecoveryConfig {
            connect_timeout: Duration::from_secs(10),
            disconnected_grace: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(5),
            max_attempts: 3,
        }
    }

    #[test]
    fn a_connection_that_never_comes_up_is_restarted_then_replaced_then_given_up() {
        let t0 = Instant::now();
        let mut r = Recovery::new(config(), true, t0);
        assert_eq!(r.poll(t0 + Duration::from_secs(9)), None);
        assert_eq!(r.poll(t0 + Duration::from_secs(10)), Some(RecoveryAction::IceRestart));
        assert_eq!(r.poll(t0 + Duration::from_secs(14)), None, "the restart gets its time");
        assert_eq!(r.poll(t0 + Duration::from_secs(15)), Some(RecoveryAction::FreshConnection));
        r.on_new_connection(t0 + Duration::from_secs(15));
        assert_eq!(r.poll(t0 + Duration::from_secs(25)), Some(RecoveryAction::IceRestart));
        assert_eq!(r.poll(t0 + Duration::from_secs(30)), Some(RecoveryAction::GiveUp));
        assert!(r.gave_up());
        assert_eq!(r.poll(t0 + Duration::from_secs(100)), None);
    }

    #[test]
    fn the_side_that_does_not_own_fresh_connections_only_restarts() {
        let t0 = Instant::now();
        let mut r = Recovery::new(config(), false, t0);
        r.on_link(Link::Connected, t0);
        r.on_link(Link::Failed, t0 + Duration::from_secs(1));
        assert_eq!(r.poll(t0 + Duration::from_secs(1)), Some(RecoveryAction::IceRestart));
        assert_eq!(r.poll(t0 + Duration::from_secs(6)), Some(RecoveryAction::IceRestart));
    }

    #[test]
    fn a_short_disconnection_heals_by_itself() {
        let t0 = Instant::now();
        let mut r = Recovery::new(config(), true, t0);
        r.on_link(Link::Connected, t0);
        r.on_link(Link::Disconnected, t0 + Duration::from_secs(1));
        assert_eq!(r.poll(t0 + Duration::from_secs(3)), None);
        r.on_link(Link::Connected, t0 + Duration::from_secs(3));
        assert_eq!(r.poll(t0 + Duration::from_secs(60)), None);
        r.on_link(Link::Disconnected, t0 + Duration::from_secs(61));
        assert_eq!(r.poll(t0 + Duration::from_secs(64)), Some(RecoveryAction::IceRestart));
        // Recovery resets the budget.
        r.on_link(Link::Connected, t0 + Duration::from_secs(65));
        r.on_link(Link::Failed, t0 + Duration::from_secs(66));
        assert_eq!(r.poll(t0 + Duration::from_secs(66)), Some(RecoveryAction::IceRestart));
    }
}
