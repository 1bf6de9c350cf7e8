//! `hearth-server`: the self-hosted home of one group.
//!
//! Map of the crate:
//! - [`config`]: command line, environment and file → [`config::Config`].
//! - [`db`]: the only module that knows SQL (SQLite or PostgreSQL through sqlx `Any`).
//! - [`writer`]: the group-commit message writer; a message is acknowledged only once durable.
//! - [`hub`]: the group's live state in memory and event fan-out to the sessions allowed to
//!   see each event.
//! - [`gateway`]: the WebSocket gateway — handshake, sessions with replay for resume, ops.
//! - [`http`]: the JSON API under `/api/v1`, `/healthz` and `/metrics`.
//! - [`auth`]: argon2id passwords, JWT access tokens, refresh tokens, the `AuthUser` extractor.
//! - [`turn`]: coturn-REST TURN credentials and the embedded STUN/TURN server
//!   ([`turn::server`]).
//! - [`settings`] (the group's settings and their checks) and [`audit`] (what an
//!   administrative action records).
//! - [`retention`]: deletes messages older than the group keeps them.
//! - [`search`]: how text becomes search tokens and how the search box is read (the index is
//!   in [`db::search`]).
//! - [`ratelimit`], [`metrics`], [`avatar`], [`secrets`], [`setup`], [`ids`]: small
//!   single-purpose pieces.
//! - The operator's side: [`cli`] (the command line's commands), [`admin`] (invites, members,
//!   roles, run live through `DATA_DIR/admin.sock` or offline), [`backup`] (online backups and
//!   restore), [`datadir`] (one process per data directory), [`logging`].
//!
//! [`serve`] runs the whole server until its shutdown token fires, then drains connections
//! and commits every queued message before returning.

pub mod admin;
pub mod attachments;
pub mod audit;
pub mod auth;
pub mod avatar;
pub mod backup;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod datadir;
pub mod db;
pub mod error;
pub mod gateway;
pub mod http;
pub mod hub;
pub mod ids;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod ratelimit;
pub mod retention;
pub mod search;
pub mod secrets;
pub mod settings;
pub mod setup;
pub mod state;
pub mod turn;
pub mod writer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Passwords, Tokens};
use crate::config::Config;
use crate::db::Db;
use crate::hub::Hub;
use crate::ids::IdGenerator;
use crate::ratelimit::KeyedLimiter;
use crate::secrets::Secrets;
use crate::state::{AppState, Inner};
use crate::writer::MessageWriter;

/// Runs the server until `shutdown` fires, then shuts down gracefully.
pub async fn serve(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Held until we return: a second server on this data directory is refused, and `restore`
    // or an offline `admin` command cannot run under us.
    let _lock = datadir::DataDirLock::acquire(&config.data_dir)?;
    let mut secrets = Secrets::load_or_create(&config.data_dir)?;
    let db = Db::open(&config.database_url, config.before_migrating()).await?;
    // PostgreSQL: other processes may share the database. Listening starts before the hub is
    // loaded, so no change made after our snapshot is missed.
    let member = match db.backend {
        db::Backend::Postgres => Some(cluster::join(&db, config.node_timeout, &secrets).await?),
        db::Backend::Sqlite => None,
    };
    if let Some(member) = &member {
        secrets = member.secrets.clone();
    }
    let worker = member.as_ref().map_or(0, |m| m.node);
    let ids = Arc::new(IdGenerator::for_worker(db.max_id().await?, worker));

    let hub = Hub::default();
    hub.load(durable_state(&db, &config).await?);
    if let Some(member) = &member {
        hub.attach_bus(member.bus.clone());
    }
    let setup_token = setup::prepare(&db, &config.data_dir).await?;

    // The embedded STUN/TURN server binds before HTTP, so that once server.addr exists,
    // turn.addr does too.
    let turn_addr_file = config.data_dir.join("turn.addr");
    let embedded_turn = match &config.turn_embedded {
        Some(listener) => {
            let relay_address = turn::server::relay_address(listener, &config.public_url).await;
            let secret = config.turn_secret.as_deref().unwrap_or(&secrets.turn_secret);
            let server = turn::server::EmbeddedTurn::start(listener, relay_address, secret).await?;
            secrets::write_private(&turn_addr_file, server.local_addr().to_string().as_bytes())?;
            tracing::info!(
                addr = %server.local_addr(),
                %relay_address,
                relay_ports = ?listener.relay_ports,
                "embedded STUN/TURN server listening (UDP)"
            );
            Some(server)
        }
        None => {
            if let Err(e) = std::fs::remove_file(&turn_addr_file)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(error = %e, "removing a stale turn.addr");
            }
            None
        }
    };
    // What clients are told: the configured URLs, else the embedded server's, reached by the
    // public URL's host (or the relay address when the public URL names no reachable host).
    let ice_urls = match &embedded_turn {
        Some(server) if config.turn_urls.is_empty() => {
            let host = match turn::public_host(&config.public_url) {
                Some(host) => host.to_string(),
                None => match server.relay_address() {
                    std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                    ip => ip.to_string(),
                },
            };
            turn::embedded_urls(&host, server.local_addr().port())
        }
        _ => config.turn_urls.clone(),
    };

    let (writer, writer_task) = MessageWriter::start(
        db.clone(),
        ids.clone(),
        member.as_ref().map(|m| m.order.clone()),
        shutdown.clone(),
    );
    let limits = &config.limits;
    let state = AppState::new(Inner {
        passwords: Passwords::new(limits.argon2_concurrency)?,
        images: media::ImagePool::new(
            limits.image_workers,
            limits.image_queue,
            media::DecodeLimits {
                max_alloc: limits.image_decode_bytes,
                timeout: limits.image_timeout,
                ..Default::default()
            },
        )
        .context("starting the image decoding threads")?,
        tokens: Tokens::new(secrets.signing_key.as_bytes(), &config.public_url, config.access_token_ttl),
        login_by_account: KeyedLimiter::per_minute(limits.login_per_account_per_min),
        login_by_ip: KeyedLimiter::per_minute(limits.login_per_ip_per_min),
        messages_by_user: KeyedLimiter::new(limits.message_burst, f64::from(limits.messages_per_sec)),
        setup_token: std::sync::Mutex::new(setup_token),
        connections: Default::default(),
        metrics: Default::default(),
        tasks: TaskTracker::new(),
        admin_lock: Default::default(),
        retention_wake: Default::default(),
        flushers: Default::default(),
        attachments: attachments::AttachmentStore::open(&config.files_dir)
            .context("creating the attachment directories")?,
        shutdown: shutdown.clone(),
        secrets,
        ice_urls,
        writer,
        hub,
        ids,
        db: db.clone(),
        config: config.clone(),
    });

    let cluster = member.map(|m| m.start(&state));
    let reaper = tokio::spawn(reap_sessions(state.clone()));
    let retention = tokio::spawn(retention::run(state.clone()));
    let sweeper = tokio::spawn(attachments::run(state.clone()));
    let listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let shown_url = setup::shown_public_url(&config, addr);
    // Without the socket the server still serves; only `hearth-server admin` cannot reach it
    // (e.g. a data directory path over the 108 bytes a socket path may have).
    #[cfg(unix)]
    let admin_socket = admin::socket::listen(state.clone(), shown_url.clone())
        .inspect_err(|e| tracing::warn!(error = %format!("{e:#}"), "no admin socket: `hearth-server admin` cannot reach this server"))
        .ok();
    secrets::write_private(&config.data_dir.join("server.addr"), addr.to_string().as_bytes())?;
    tracing::info!(%addr, public_url = %config.public_url, "hearth-server listening");
    setup::announce(&shown_url, state.setup_token.lock().unwrap_or_else(|p| p.into_inner()).as_deref());

    http::listen::serve(listener, http::router(state.clone()), shutdown.clone()).await;

    // HTTP has stopped; gateway connections saw the same token and are draining.
    tracing::info!("shutting down: draining gateway connections");
    state.tasks.close();
    if tokio::time::timeout(config.shutdown_grace, state.tasks.wait()).await.is_err() {
        tracing::warn!("some gateway connections did not close in time");
    }
    reaper.abort();
    if let Some(cluster) = cluster {
        cluster.stop(&state).await;
    }
    #[cfg(unix)]
    if let Some(task) = admin_socket
        && let Err(e) = task.await
    {
        tracing::warn!(error = %e, "admin socket task");
    }
    // The task stops at the shutdown token (a batch in flight rolls back).
    if let Err(e) = retention.await {
        tracing::warn!(error = %e, "retention task");
    }
    if let Err(e) = sweeper.await {
        tracing::warn!(error = %e, "attachment sweep task");
    }
    if let Some(server) = embedded_turn {
        server.close().await;
    }
    writer_task.await.context("message writer")?;
    db.close().await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// The group's state as stored: what the hub is loaded with.
pub(crate) async fn durable_state(db: &Db, config: &Config) -> anyhow::Result<hub::Durable> {
    let revoked_since = db::now_ms() - config.access_token_ttl.as_millis() as i64 - 60_000;
    Ok(hub::Durable {
        users: db.active_users().await?,
        channels: db.live_channels().await?,
        revoked_families: db.recently_revoked_families(revoked_since).await?,
        settings: db.settings(settings::defaults(&config.server_name)).await?,
        blocks: db.blocks().await?,
    })
}

/// The server's runtime (see ARCHITECTURE.md, "Memory", for why these settings).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

/// Ends sessions whose connection has been gone longer than the resume window, and closes
/// connections whose client has sent nothing (not even a heartbeat) for two heartbeat
/// intervals: one sweep for all, instead of a timer in every connection. At shutdown, wakes
/// every connection so that it starts draining (they do not each wait on the token).
async fn reap_sessions(state: AppState) {
    let silence = state.config.heartbeat_interval * 2;
    let mut tick = tokio::time::interval(
        Duration::from_secs(5)
            .min(state.config.resume_window)
            .min(state.config.heartbeat_interval / 2)
            .max(Duration::from_millis(50)),
    );
    let mut kicked = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = state.shutdown.cancelled(), if !kicked => {
                kicked = true;
                state.hub.kick_all();
                continue;
            }
        }
        state.hub.check_heartbeats(Instant::now(), silence);
        let dropped = state.hub.reap(state.config.resume_window, Instant::now());
        if dropped > 0 {
            tracing::debug!(dropped, "expired gateway sessions");
        }
    }
}
