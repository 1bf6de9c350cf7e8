//! `hearth-server admin …`: parses the operator's command, runs it on the running server
//! (through its admin socket) or, when none runs, on the database directly (see
//! [`crate::admin`]), and prints the outcome for a person or, with `--json`, for a script.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use hearth_protocol::api::Invite;
use hearth_protocol::model::Role;

use crate::admin::{AdminError, Reply, Request};
use crate::config::Config;
use crate::datadir::{DataDirLock, InUse};

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Print the result as one JSON object instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Invites: create, list, revoke.
    #[command(subcommand)]
    Invite(InviteCommand),
    /// List the group's members.
    Users,
    /// Give a member a new password (generated and printed once, or read from standard input)
    /// and end every login they have.
    ResetPassword {
        username: String,
        /// Read the new password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a member from the group: their sessions end and they can no longer log in.
    /// Their messages stay.
    Remove { username: String },
    /// Change a member's role.
    SetRole { username: String, role: RoleArg },
}

#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Create an invite and print its code and link.
    Create {
        /// How many people may register with it [default: unlimited].
        #[arg(long)]
        max_uses: Option<u32>,
        /// How long it stays valid: 30m, 12h, 7d, 2w [default: 7d].
        #[arg(long, value_parser = super::parse_duration_secs, default_value = "7d")]
        expires_in: u64,
    },
    /// List the invites that can still be used.
    List,
    /// Revoke an invite.
    Revoke {
        /// Invite codes are URL-safe base64: one may start with `-`.
        #[arg(allow_hyphen_values = true)]
        code: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Owner,
    Admin,
    Member,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Owner => Role::Owner,
            RoleArg::Admin => Role::Admin,
            RoleArg::Member => Role::Member,
        }
    }
}

pub async fn run(args: AdminArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let request = match args.command {
        AdminCommand::Invite(InviteCommand::Create { max_uses, expires_in }) => {
            Request::CreateInvite { max_uses, expires_in_secs: Some(expires_in) }
        }
        AdminCommand::Invite(InviteCommand::List) => Request::ListInvites,
        AdminCommand::Invite(InviteCommand::Revoke { code }) => Request::RevokeInvite { code },
        AdminCommand::Users => Request::ListUsers,
        AdminCommand::ResetPassword { username, password_stdin } => {
            let password = if password_stdin {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).context("reading the password")?;
                text.trim_end_matches(['\r', '\n']).to_string()
            } else {
                generated_password()
            };
            Request::ResetPassword { username, password }
        }
        AdminCommand::Remove { username } => Request::RemoveUser { username },
        AdminCommand::SetRole { username, role } => Request::SetRole { username, role: role.into() },
    };
    let reply = send(config, request.clone()).await?;
    print(&reply, &request, args.json)?;
    Ok(if matches!(reply, Reply::Failed { .. }) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Runs the request where it belongs: in the running server, or here when none runs.
pub async fn send(config: &Config, request: Request) -> anyhow::Result<Reply> {
    match DataDirLock::acquire(&config.data_dir) {
        Ok(_lock) => {
            // No server runs on this data directory and none can start until we are done.
            let db = crate::db::Db::open(&config.database_url, config.before_migrating()).await?;
            let passwords = crate::auth::Passwords::new(1)?;
            let bound = std::fs::read_to_string(config.data_dir.join("server.addr"))
                .ok()
                .and_then(|a| a.trim().parse().ok())
                .unwrap_or(config.listen);
            let public_url = crate::setup::shown_public_url(config, bound);
            let cx =
                crate::admin::Context { db: &db, passwords: &passwords, live: None, public_url: &public_url };
            let reply = match crate::admin::execute(&cx, request).await {
                Ok(reply) => reply,
                Err(AdminError::Internal(e)) => return Err(e),
                Err(e) => Reply::Failed { message: e.to_string() },
            };
            db.close().await;
            Ok(reply)
        }
        Err(e) if e.is::<InUse>() => on_server(config, &request).await,
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
async fn on_server(config: &Config, request: &Request) -> anyhow::Result<Reply> {
    crate::admin::socket::call(&config.data_dir, request).await
}

#[cfg(not(unix))]
async fn on_server(config: &Config, _: &Request) -> anyhow::Result<Reply> {
    anyhow::bail!(
        "a server is running on {}; on this system admin commands run only while it is stopped",
        config.data_dir.display()
    )
}

/// 20 characters of URL-safe base64: 120 bits, typed once by the member and then changed.
fn generated_password() -> String {
    crate::auth::random_token(15)
}

fn print(reply: &Reply, request: &Request, json: bool) -> anyhow::Result<()> {
    if json {
        let mut value = serde_json::to_value(reply)?;
        if let (Request::ResetPassword { password, .. }, Some(object)) = (request, value.as_object_mut()) {
            object.insert("password".into(), password.clone().into());
        }
        println!("{value}");
        return Ok(());
    }
    match reply {
        Reply::Invite { invite, link } => {
            println!("invite code: {}", invite.code);
            println!("link:        {link}");
            println!("{}", invite_terms(invite));
        }
        Reply::Invites { invites } if invites.is_empty() => println!("no usable invites"),
        Reply::Invites { invites } => {
            for invite in invites {
                println!("{}  {}", invite.code, invite_terms(invite));
            }
        }
        Reply::Users { users } => {
            println!("{:<20} {:<24} {:<7} id", "username", "display name", "role");
            for u in users {
                println!("{:<20} {:<24} {:<7} {}", u.username, u.display_name, u.role.as_str(), u.id);
            }
        }
        Reply::Done { message } => {
            println!("{message}");
            if let Request::ResetPassword { password, .. } = request {
                println!("new password: {password}");
            }
        }
        Reply::Failed { message } => eprintln!("hearth-server admin: {message}"),
    }
    Ok(())
}

fn invite_terms(invite: &Invite) -> String {
    let uses = match invite.max_uses {
        Some(max) => format!("used {} of {max}", invite.uses),
        None => format!("used {} (no limit)", invite.uses),
    };
    match invite.expires_at {
        Some(at) => format!("{uses}, expires {} UTC", crate::backup::timestamp(at)),
        None => format!("{uses}, never expires"),
    }
}

#[cfg(test)]
mod tests {
    use crate::admin::invite_link;

    #[test]
    fn an_invite_code_starting_with_a_hyphen_is_a_code_not_a_flag() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            admin: super::AdminCommand,
        }
        let cli = Cli::try_parse_from(["admin", "invite", "revoke", "-CRJCuuZMDt4ow36"]).expect("parses");
        assert!(matches!(
            cli.admin,
            super::AdminCommand::Invite(super::InviteCommand::Revoke { code }) if code == "-CRJCuuZMDt4ow36"
        ));
    }

    #[test]
    fn invite_links_escape_the_server_url() {
        assert_eq!(
            invite_link("https://hearth.example.org:8443", "ab_C-9"),
            "hearth://join?server=https%3A%2F%2Fhearth.example.org%3A8443&code=ab_C-9"
        );
    }
}
