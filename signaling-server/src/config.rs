//! Server configuration: command line, environment (`HEARTH_*`) and an optional TOML file, in
//! that order of precedence, over built-in defaults that need no configuration at all.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// Command line and environment. Every option is optional here so that the file and the
/// defaults can fill what is not given. The ones that say where the group lives (`--config`,
/// `--data-dir`, `--database-url`, `--public-url`, `--log-format`) are global: they may follow
/// a subcommand too (`hearth-server admin users --data-dir /var/lib/hearth`).
#[derive(Debug, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// TOML file with any of these options.
    #[arg(long, env = "HEARTH_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Directory for the SQLite database, avatars, secrets and the setup token [default: ./data].
    #[arg(long, env = "HEARTH_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// Directory for the files members send: attachments, uploads under way, avatars and the
    /// server icon [default: DATA_DIR]. Several server processes on one PostgreSQL point it at
    /// one shared directory, so each serves what another stored.
    #[arg(long, env = "HEARTH_FILES_DIR", global = true)]
    pub files_dir: Option<PathBuf>,

    /// Address to listen on for HTTP and the gateway [default: 0.0.0.0:8080]. Port 0 picks a free
    /// port; the bound address is written to DATA_DIR/server.addr.
    #[arg(long, env = "HEARTH_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// URL clients use to reach this server; also the token issuer [default: http://LISTEN].
    #[arg(long, env = "HEARTH_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// Name shown to clients before they log in, until an admin renames the group in the app
    /// [default: Hearth].
    #[arg(long, env = "HEARTH_SERVER_NAME")]
    pub server_name: Option<String>,

    /// Where the invite page (/invite/CODE) sends people to download the Hearth app, an
    /// http(s) URL [default: none; the page then asks the person who invited them].
    #[arg(long, env = "HEARTH_DOWNLOAD_URL")]
    pub download_url: Option<String>,

    /// Database URL: sqlite://PATH or postgres://USER:PASS@HOST/DB
    /// [default: sqlite://DATA_DIR/hearth.db].
    #[arg(long, env = "HEARTH_DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Log format: text or json [default: text].
    #[arg(long, env = "HEARTH_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,

    /// Shared secret for TURN credentials (coturn `static-auth-secret`) [default: generated
    /// on first start and kept in DATA_DIR/secrets.json].
    #[arg(long, env = "HEARTH_TURN_SECRET")]
    pub turn_secret: Option<String>,

    /// STUN/TURN URLs handed to clients, comma-separated, e.g.
    /// "turn:turn.example.org:3478?transport=udp,stun:turn.example.org:3478" [default: none].
    #[arg(long, env = "HEARTH_TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Option<Vec<String>>,

    /// How long TURN credentials stay valid, in seconds [default: 86400].
    #[arg(long, env = "HEARTH_TURN_TTL_SECS")]
    pub turn_ttl_secs: Option<u64>,

    /// Run the embedded STUN/TURN server (UDP): true or false [default: true, unless
    /// --turn-urls names an external TURN server].
    #[arg(long, env = "HEARTH_TURN_EMBEDDED")]
    pub turn_embedded: Option<bool>,

    /// UDP address of the embedded STUN/TURN server [default: the host of --listen, port 3478;
    /// a free port when --listen is a loopback address or has port 0]. The bound address is
    /// written to DATA_DIR/turn.addr.
    #[arg(long, env = "HEARTH_TURN_LISTEN")]
    pub turn_listen: Option<SocketAddr>,

    /// Public IP address the embedded TURN server gives clients as their relay address
    /// [default: the IP of --turn-listen if it is not 0.0.0.0, else the host of --public-url
    /// (resolved when it is a name), else 127.0.0.1].
    #[arg(long, env = "HEARTH_TURN_RELAY_ADDRESS")]
    pub turn_relay_address: Option<IpAddr>,

    /// Lowest UDP port for relays of the embedded TURN server [default: 49152].
    #[arg(long, env = "HEARTH_TURN_RELAY_PORT_MIN")]
    pub turn_relay_port_min: Option<u16>,

    /// Highest UDP port for relays of the embedded TURN server [default: 65535].
    #[arg(long, env = "HEARTH_TURN_RELAY_PORT_MAX")]
    pub turn_relay_port_max: Option<u16>,

    /// Realm of the embedded TURN server [default: hearth].
    #[arg(long, env = "HEARTH_TURN_REALM")]
    pub turn_realm: Option<String>,

    /// Let the embedded TURN server relay to loopback addresses (127.0.0.0/8, ::1): true or
    /// false [default: true only when its listener or relay address is loopback, i.e. it
    /// serves this machine alone]. Link-local, multicast and unspecified peers are always
    /// refused, so a member cannot use the relay to reach the server's own services.
    #[arg(long, env = "HEARTH_TURN_ALLOW_LOOPBACK_PEERS")]
    pub turn_allow_loopback_peers: Option<bool>,

    /// Lifetime of access tokens, in seconds [default: 900].
    #[arg(long, env = "HEARTH_ACCESS_TOKEN_TTL_SECS")]
    pub access_token_ttl_secs: Option<u64>,

    /// Lifetime of refresh tokens, in days [default: 30].
    #[arg(long, env = "HEARTH_REFRESH_TOKEN_TTL_DAYS")]
    pub refresh_token_ttl_days: Option<u64>,

    /// Login attempts allowed per account per minute [default: 10].
    #[arg(long, env = "HEARTH_LIMIT_LOGIN_PER_ACCOUNT")]
    pub limit_login_per_account: Option<u32>,

    /// Login and register attempts allowed per client address per minute [default: 30].
    #[arg(long, env = "HEARTH_LIMIT_LOGIN_PER_IP")]
    pub limit_login_per_ip: Option<u32>,

    /// Messages (send, edit, react) a user may send per second, sustained [default: 5].
    #[arg(long, env = "HEARTH_LIMIT_MESSAGES_PER_SEC")]
    pub limit_messages_per_sec: Option<u32>,

    /// Messages a user may send in a burst [default: 20].
    #[arg(long, env = "HEARTH_LIMIT_MESSAGE_BURST")]
    pub limit_message_burst: Option<u32>,

    /// Gateway frames of any kind a connection may send per second, sustained [default: 50].
    #[arg(long, env = "HEARTH_LIMIT_FRAMES_PER_SEC")]
    pub limit_frames_per_sec: Option<u32>,

    /// Password hashes computed at once (each takes 19 MiB and a core) [default: cores - 1, at
    /// least 1, so a login storm always leaves the gateway a core].
    #[arg(long, env = "HEARTH_ARGON2_CONCURRENCY")]
    pub argon2_concurrency: Option<usize>,

    /// Largest avatar upload, in bytes [default: 8388608].
    #[arg(long, env = "HEARTH_MAX_AVATAR_BYTES")]
    pub max_avatar_bytes: Option<usize>,

    /// Threads that decode images (avatars, icons, thumbnails) [default: 1].
    #[arg(long, env = "HEARTH_IMAGE_WORKERS")]
    pub image_workers: Option<usize>,

    /// Image uploads that may wait for a decoding thread; more are answered "busy" [default: 3].
    #[arg(long, env = "HEARTH_IMAGE_QUEUE")]
    pub image_queue: Option<usize>,

    /// Memory one image decode may use for pixels, in MiB [default: 32].
    #[arg(long, env = "HEARTH_IMAGE_DECODE_MIB")]
    pub image_decode_mib: Option<u64>,

    /// Time one image decode may take, in milliseconds [default: 5000].
    #[arg(long, env = "HEARTH_IMAGE_TIMEOUT_MS")]
    pub image_timeout_ms: Option<u64>,

    /// Interval at which clients must heartbeat, in milliseconds [default: 30000].
    #[arg(long, env = "HEARTH_HEARTBEAT_INTERVAL_MS")]
    pub heartbeat_interval_ms: Option<u64>,

    /// Time a new connection has to identify, in milliseconds [default: 10000].
    #[arg(long, env = "HEARTH_IDENTIFY_TIMEOUT_MS")]
    pub identify_timeout_ms: Option<u64>,

    /// How long a dropped session can be resumed, in seconds [default: 180].
    #[arg(long, env = "HEARTH_RESUME_WINDOW_SECS")]
    pub resume_window_secs: Option<u64>,

    /// With PostgreSQL, after how long without a heartbeat another server process counts as
    /// dead (its members go offline, its worker id may be leased again), in milliseconds
    /// [default: 10000].
    #[arg(long, env = "HEARTH_NODE_TIMEOUT_MS")]
    pub node_timeout_ms: Option<u64>,

    /// Events kept per session for resume [default: 1024].
    #[arg(long, env = "HEARTH_REPLAY_BUFFER")]
    pub replay_buffer: Option<usize>,

    /// How long shutdown waits for connections to drain, in milliseconds [default: 5000].
    #[arg(long, env = "HEARTH_SHUTDOWN_GRACE_MS")]
    pub shutdown_grace_ms: Option<u64>,

    /// Take a backup (DATA_DIR/backups/) before upgrading the database's schema: true or false
    /// [default: true]. With PostgreSQL this needs pg_dump; turn it off only if you back the
    /// database up yourself.
    #[arg(long, env = "HEARTH_BACKUP_BEFORE_MIGRATING")]
    pub backup_before_migrating: Option<bool>,

    /// Free disk, in MiB, below which uploads are refused (so a full disk never breaks chat)
    /// [default: 512].
    #[arg(long, env = "HEARTH_UPLOAD_DISK_RESERVE_MIB")]
    pub upload_disk_reserve_mib: Option<u64>,

    /// Seconds after which an upload no byte reached, or a finished upload no message took, is
    /// deleted [default: 86400].
    #[arg(long, env = "HEARTH_UPLOAD_STALE_SECS")]
    pub upload_stale_secs: Option<u64>,

    /// Keep location (GPS) metadata in uploaded photos: true or false [default: false, it is
    /// removed losslessly].
    #[arg(long, env = "HEARTH_UPLOAD_KEEP_LOCATION")]
    pub upload_keep_location: Option<bool>,
}

impl Options {
    /// Fills every option this one lacks from `other`.
    fn or(self, other: Options) -> Options {
        macro_rules! pick {
            ($($f:ident),* $(,)?) => { Options { config: self.config, $($f: self.$f.or(other.$f)),* } };
        }
        pick!(
            data_dir,
            files_dir,
            listen,
            public_url,
            server_name,
            download_url,
            database_url,
            log_format,
            turn_secret,
            turn_urls,
            turn_ttl_secs,
            turn_embedded,
            turn_listen,
            turn_relay_address,
            turn_relay_port_min,
            turn_relay_port_max,
            turn_realm,
            turn_allow_loopback_peers,
            access_token_ttl_secs,
            refresh_token_ttl_days,
            limit_login_per_account,
            limit_login_per_ip,
            limit_messages_per_sec,
            limit_message_burst,
            limit_frames_per_sec,
            argon2_concurrency,
            max_avatar_bytes,
            image_workers,
            image_queue,
            image_decode_mib,
            image_timeout_ms,
            heartbeat_interval_ms,
            identify_timeout_ms,
            resume_window_secs,
            node_timeout_ms,
            replay_buffer,
            shutdown_grace_ms,
            backup_before_migrating,
            upload_disk_reserve_mib,
            upload_stale_secs,
            upload_keep_location,
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Limits that protect the server and the group from floods.
#[derive(Debug, Clone)]
pub struct Limits {
    pub login_per_account_per_min: u32,
    pub login_per_ip_per_min: u32,
    pub messages_per_sec: u32,
    pub message_burst: u32,
    pub frames_per_sec: u32,
    pub argon2_concurrency: usize,
    pub max_avatar_bytes: usize,
    /// Image decoding threads and queue (see [`crate::media`] for the memory bound they give).
    pub image_workers: usize,
    pub image_queue: usize,
    pub image_decode_bytes: u64,
    pub image_timeout: Duration,
}

/// The embedded STUN/TURN server, when it runs.
#[derive(Debug, Clone)]
pub struct TurnListener {
    /// UDP address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// The relay address given to clients; `None` means "derive it at start" (see
    /// [`crate::turn::server`]), because the host of the public URL may need resolving.
    pub relay_address: Option<IpAddr>,
    /// Relay ports, inclusive.
    pub relay_ports: (u16, u16),
    pub realm: String,
    /// Whether relays may reach loopback peers; `None`: only when the relay is local (see
    /// [`crate::turn::server::peer_policy`]).
    pub allow_loopback_peers: Option<bool>,
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Attachments, uploads, avatars and icons (DATA_DIR unless set apart).
    pub files_dir: PathBuf,
    pub listen: SocketAddr,
    pub public_url: String,
    pub server_name: String,
    pub download_url: Option<String>,
    pub database_url: String,
    pub log_format: LogFormat,
    pub turn_secret: Option<String>,
    pub turn_urls: Vec<String>,
    pub turn_ttl: Duration,
    /// `None` when the embedded STUN/TURN server is off.
    pub turn_embedded: Option<TurnListener>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub limits: Limits,
    pub heartbeat_interval: Duration,
    pub identify_timeout: Duration,
    pub resume_window: Duration,
    /// PostgreSQL only: how long another process may miss heartbeats before it counts as dead.
    pub node_timeout: Duration,
    pub replay_buffer: usize,
    pub shutdown_grace: Duration,
    pub backup_before_migrating: bool,
    pub uploads: Uploads,
}

/// Attachments: how the server protects its disk. (The size limit and the quota are the
/// group's settings, changed by admins.)
#[derive(Debug, Clone)]
pub struct Uploads {
    pub disk_reserve_bytes: u64,
    pub stale_after: Duration,
    pub keep_location: bool,
}

impl Config {
    /// What to do before migrating this configuration's database.
    pub fn before_migrating(&self) -> crate::db::BeforeMigrating {
        if self.backup_before_migrating {
            crate::db::BeforeMigrating::Backup { dirs: self.dirs() }
        } else {
            crate::db::BeforeMigrating::Nothing
        }
    }

    /// Where the group's state lives on disk, for backups.
    pub fn dirs(&self) -> crate::backup::Dirs {
        crate::backup::Dirs { data: self.data_dir.clone(), files: self.files_dir.clone() }
    }

    /// Completes the command line's options (environment included) with the config file
    /// they name, then resolves them.
    pub fn load(cli: Options) -> anyhow::Result<Config> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => Options::default(),
        };
        Config::resolve(cli.or(file))
    }

    /// Applies defaults and checks values.
    pub fn resolve(o: Options) -> anyhow::Result<Config> {
        let data_dir = o.data_dir.unwrap_or_else(|| PathBuf::from("data"));
        let listen = o.listen.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8080)));
        let public_url =
            o.public_url.unwrap_or_else(|| format!("http://{listen}")).trim_end_matches('/').to_string();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            bail!("public-url must start with http:// or https://");
        }
        let download_url = o.download_url.filter(|u| !u.is_empty());
        if download_url.as_deref().is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
            bail!("download-url must start with http:// or https://");
        }
        let database_url =
            o.database_url.unwrap_or_else(|| format!("sqlite://{}", data_dir.join("hearth.db").display()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            bail!("database-url must be sqlite://PATH or postgres://...");
        }
        let log_format = match o.log_format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => bail!("log-format must be text or json, not {other:?}"),
        };
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let limits = Limits {
            login_per_account_per_min: positive(
                o.limit_login_per_account.unwrap_or(10),
                "limit-login-per-account",
            )?,
            login_per_ip_per_min: positive(o.limit_login_per_ip.unwrap_or(30), "limit-login-per-ip")?,
            messages_per_sec: positive(o.limit_messages_per_sec.unwrap_or(5), "limit-messages-per-sec")?,
            message_burst: positive(o.limit_message_burst.unwrap_or(20), "limit-message-burst")?,
            frames_per_sec: positive(o.limit_frames_per_sec.unwrap_or(50), "limit-frames-per-sec")?,
            argon2_concurrency: o
                .argon2_concurrency
                .unwrap_or(crate::auth::password::default_concurrency(cores))
                .max(1),
            max_avatar_bytes: o.max_avatar_bytes.unwrap_or(8 * 1024 * 1024),
            image_workers: positive(o.image_workers.unwrap_or(1) as u32, "image-workers")? as usize,
            image_queue: o.image_queue.unwrap_or(3),
            image_decode_bytes: u64::from(positive(
                o.image_decode_mib.unwrap_or(32) as u32,
                "image-decode-mib",
            )?) << 20,
            image_timeout: Duration::from_millis(o.image_timeout_ms.unwrap_or(5000).max(1)),
        };
        let turn_urls: Vec<String> =
            o.turn_urls.unwrap_or_default().into_iter().filter(|u| !u.is_empty()).collect();
        // With an external TURN server named, the embedded one would only hold a port.
        let turn_embedded = if o.turn_embedded.unwrap_or(turn_urls.is_empty()) {
            let relay_ports =
                (o.turn_relay_port_min.unwrap_or(49152), o.turn_relay_port_max.unwrap_or(65535));
            if relay_ports.0 == 0 || relay_ports.1 < relay_ports.0 {
                bail!("turn-relay-port-min must be at least 1 and at most turn-relay-port-max");
            }
            // On loopback (development, tests) clients learn the port from the server and no
            // firewall needs it fixed; a free port lets many servers run side by side.
            let listen = o.turn_listen.unwrap_or_else(|| {
                let fixed = listen.port() != 0 && !listen.ip().is_loopback();
                SocketAddr::new(listen.ip(), if fixed { 3478 } else { 0 })
            });
            let realm = o.turn_realm.filter(|r| !r.is_empty()).unwrap_or_else(|| "hearth".to_string());
            let relay_address = o.turn_relay_address.or_else(|| {
                let ip = listen.ip();
                (!ip.is_unspecified()).then_some(ip)
            });
            Some(TurnListener {
                listen,
                relay_address,
                relay_ports,
                realm,
                allow_loopback_peers: o.turn_allow_loopback_peers,
            })
        } else {
            None
        };
        Ok(Config {
            files_dir: o.files_dir.unwrap_or_else(|| data_dir.clone()),
            data_dir,
            listen,
            public_url,
            server_name: o.server_name.unwrap_or_else(|| "Hearth".to_string()),
            download_url,
            database_url,
            log_format,
            turn_secret: o.turn_secret.filter(|s| !s.is_empty()),
            turn_urls,
            turn_ttl: Duration::from_secs(o.turn_ttl_secs.unwrap_or(86_400)),
            turn_embedded,
            access_token_ttl: Duration::from_secs(o.access_token_ttl_secs.unwrap_or(900).max(1)),
            refresh_token_ttl: Duration::from_secs(o.refresh_token_ttl_days.unwrap_or(30).max(1) * 86_400),
            limits,
            heartbeat_interval: Duration::from_millis(o.heartbeat_interval_ms.unwrap_or(30_000).max(100)),
            identify_timeout: Duration::from_millis(o.identify_timeout_ms.unwrap_or(10_000).max(100)),
            resume_window: Duration::from_secs(o.resume_window_secs.unwrap_or(180)),
            node_timeout: Duration::from_millis(o.node_timeout_ms.unwrap_or(10_000).max(400)),
            replay_buffer: o.replay_buffer.unwrap_or(1024).max(16),
            shutdown_grace: Duration::from_millis(o.shutdown_grace_ms.unwrap_or(5_000)),
            backup_before_migrating: o.backup_before_migrating.unwrap_or(true),
            uploads: Uploads {
                disk_reserve_bytes: o.upload_disk_reserve_mib.unwrap_or(512).saturating_mul(1 << 20),
                stale_after: Duration::from_secs(o.upload_stale_secs.unwrap_or(86_400).max(1)),
                keep_location: o.upload_keep_location.unwrap_or(false),
            },
        })
    }
}

fn positive(n: u32, name: &str) -> anyhow::Result<u32> {
    if n == 0 {
        bail!("{name} must be at least 1");
    }
    Ok(n)
}

fn read_file(path: &Path) -> anyhow::Result<Options> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn zero_configuration_gives_a_working_setup() {
        let c = Config::resolve(Options::default()).unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert!(c.database_url.starts_with("sqlite://"));
        assert_eq!(c.public_url, "http://0.0.0.0:8080");
        let turn = c.turn_embedded.expect("the embedded TURN server runs by default");
        assert_eq!(turn.listen, SocketAddr::from(([0, 0, 0, 0], 3478)));
        assert_eq!(turn.relay_ports, (49152, 65535));
        assert_eq!(turn.relay_address, None, "derived at start from the public URL");
    }

    #[test]
    fn embedded_turn_follows_the_listen_address() {
        let o = Options { listen: Some("127.0.0.1:0".parse().unwrap()), ..Default::default() };
        let turn = Config::resolve(o).unwrap().turn_embedded.unwrap();
        assert_eq!(turn.listen, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), "port 0 stays port 0");
        assert_eq!(turn.relay_address, Some(IpAddr::from(Ipv4Addr::LOCALHOST)));
        let o = Options { listen: Some("127.0.0.1:8080".parse().unwrap()), ..Default::default() };
        let turn = Config::resolve(o).unwrap().turn_embedded.unwrap();
        assert_eq!(turn.listen.port(), 0, "on loopback any free port will do");
        let o = Options { listen: Some("192.0.2.1:8080".parse().unwrap()), ..Default::default() };
        let turn = Config::resolve(o).unwrap().turn_embedded.unwrap();
        assert_eq!(turn.listen, "192.0.2.1:3478".parse().unwrap());
    }

    #[test]
    fn external_turn_urls_turn_the_embedded_server_off_unless_asked() {
        let urls = Some(vec!["turn:turn.example.org:3478".to_string()]);
        let o = Options { turn_urls: urls.clone(), ..Default::default() };
        assert!(Config::resolve(o).unwrap().turn_embedded.is_none());
        let o = Options { turn_urls: urls, turn_embedded: Some(true), ..Default::default() };
        assert!(Config::resolve(o).unwrap().turn_embedded.is_some());
        let o = Options { turn_embedded: Some(false), ..Default::default() };
        assert!(Config::resolve(o).unwrap().turn_embedded.is_none());
    }

    #[test]
    fn relay_port_range_must_be_a_range() {
        let o = Options {
            turn_relay_port_min: Some(50000),
            turn_relay_port_max: Some(40000),
            ..Default::default()
        };
        assert!(Config::resolve(o).is_err());
        let o = Options { turn_relay_port_min: Some(0), ..Default::default() };
        assert!(Config::resolve(o).is_err());
    }

    #[test]
    fn command_line_beats_file() {
        let cli = Options { server_name: Some("cli".into()), ..Default::default() };
        let file: Options = toml::from_str("server_name = \"file\"\nlimit_messages_per_sec = 7").unwrap();
        let c = Config::resolve(cli.or(file)).unwrap();
        assert_eq!(c.server_name, "cli");
        assert_eq!(c.limits.messages_per_sec, 7);
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<Options>("no_such_option = 1").is_err());
        let o = Options { database_url: Some("mysql://x".into()), ..Default::default() };
        assert!(Config::resolve(o).is_err());
        let o = Options { limit_messages_per_sec: Some(0), ..Default::default() };
        assert!(Config::resolve(o).is_err());
    }
}
