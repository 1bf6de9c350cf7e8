//! The command line: `hearth-server [OPTIONS] [COMMAND]`. With no command it runs the server;
//! the commands are the operator's tools, one file each: [`admin`] (invites, members,
//! passwords, roles), [`backup`] (`backup` and `restore`), [`doctor`] (what breaks voice and
//! chat, from the server's side) and `health` (for container health checks).

pub mod admin;
pub mod backup;
pub mod doctor;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, Options};

#[derive(Debug, Parser)]
#[command(
    name = "hearth-server",
    version,
    about = "The Hearth server: the self-hosted home of one group (accounts, invites, channels, \
             messages, presence, call setup and TURN credentials).",
    long_about = "The Hearth server: the self-hosted home of one group.\n\n\
                  With no options it keeps everything in ./data (SQLite), listens on \
                  0.0.0.0:8080, and on first start prints a one-time setup link with which \
                  the first person registers as the group's owner.\n\n\
                  Every option can also be set by its environment variable or in a TOML file \
                  (--config) under the same name with dashes replaced by underscores, e.g. \
                  `limit_messages_per_sec = 20`. Command line beats environment beats file.\n\n\
                  The commands (admin, backup, restore, doctor, health) read the same options \
                  to find the group: run them with the server's environment or --config."
)]
pub struct Cli {
    #[command(flatten)]
    pub options: Options,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no command is given).
    Serve,
    /// Manage the group from the server's machine: invites, members, passwords, roles. Works
    /// whether the server runs or not; a running server applies the change at once.
    Admin(admin::AdminArgs),
    /// Take a backup (database, secrets, avatars) into a new directory, while the server runs.
    Backup(backup::BackupArgs),
    /// Put a backup back. The server must be stopped; what is replaced is moved aside.
    Restore(backup::RestoreArgs),
    /// Check from the server's side what breaks self-hosted voice and chat: public URL, TLS,
    /// WebSocket through the proxy, TURN, relay address, clock, disk. Exits 1 on a failure.
    Doctor(doctor::DoctorArgs),
    /// Exit 0 when the server on this machine answers /healthz (for container health checks).
    Health,
}

/// Runs one of the operator's commands (everything but `serve`).
pub async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => unreachable_serve(),
        Command::Admin(args) => admin::run(args, &config).await,
        Command::Backup(args) => backup::backup(args, &config).await,
        Command::Restore(args) => backup::restore(args, &config).await,
        Command::Doctor(args) => doctor::run(args, &config).await,
        Command::Health => health(&config).await,
    }
}

fn unreachable_serve() -> anyhow::Result<ExitCode> {
    anyhow::bail!("`serve` runs the server; it is not an operator command")
}

/// GET /healthz on the server's own address (`DATA_DIR/server.addr`, else `--listen`).
async fn health(config: &Config) -> anyhow::Result<ExitCode> {
    let addr = local_http_addr(config);
    match doctor::http::get(&format!("http://{addr}"), "/healthz", None).await {
        Ok(response) if response.status == 200 => Ok(ExitCode::SUCCESS),
        Ok(response) => {
            eprintln!("hearth-server at {addr} answered /healthz with {}", response.status);
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("hearth-server at {addr} is not answering: {e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Where the server on this machine listens: the address it wrote at start, with a wildcard
/// host replaced by loopback.
pub fn local_http_addr(config: &Config) -> std::net::SocketAddr {
    let mut addr = std::fs::read_to_string(config.data_dir.join("server.addr"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(config.listen);
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// `7d`, `12h`, `30m`, `45s` or plain seconds.
pub fn parse_duration_secs(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 7d, 12h or 30m"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{text:?}: the unit is one of s, m, h, d, w")),
    };
    n.checked_mul(unit).ok_or_else(|| format!("{text:?} is too long"))
}

/// A path given on the command line, made absolute against the current directory.
pub fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration_secs("7d"), Ok(604_800));
        assert_eq!(parse_duration_secs("12h"), Ok(43_200));
        assert_eq!(parse_duration_secs("90"), Ok(90));
        assert!(parse_duration_secs("soon").is_err());
        assert!(parse_duration_secs("3y").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_command_runs_the_server_and_options_may_follow_a_command() {
        let cli = Cli::try_parse_from(["hearth-server", "--listen", "127.0.0.1:0"]).unwrap();
        assert!(cli.command.is_none());
        let cli =
            Cli::try_parse_from(["hearth-server", "admin", "users", "--data-dir", "/srv/hearth"]).unwrap();
        assert_eq!(cli.options.data_dir, Some(PathBuf::from("/srv/hearth")));
    }
}
