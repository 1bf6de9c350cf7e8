//! First start: while the group has no members, a one-time setup token lets the first person
//! register as the group's owner. It is written to `DATA_DIR/setup-token` (owner only), made
//! anew at every start until it is used, and removed once it is. At start the log shows the
//! URL to share and, while the token is unused, the setup link
//! (`hearth://setup?server=…&token=…`) that opens the app on the owner's registration.

use std::path::Path;

use crate::auth::random_token;
use crate::db::Db;
use crate::secrets::write_private;
use crate::state::AppState;

pub const FILE: &str = "setup-token";

/// The setup token for this run, if the group has no members yet.
pub async fn prepare(db: &Db, data_dir: &Path) -> anyhow::Result<Option<String>> {
    let path = data_dir.join(FILE);
    if db.count_users().await? > 0 {
        if path.exists() {
            std::fs::remove_file(&path)?;
        }
        return Ok(None);
    }
    let token = random_token(18);
    write_private(&path, token.as_bytes())?;
    tracing::debug!(file = %path.display(), "setup token written");
    Ok(Some(token))
}

/// The URL to show people: `--public-url`, except that when none was given the default names
/// the listen address, whose port 0 means "any", so the port actually bound is shown.
pub fn shown_public_url(config: &crate::config::Config, bound: std::net::SocketAddr) -> String {
    if config.public_url == format!("http://{}", config.listen) {
        format!("http://{bound}")
    } else {
        config.public_url.clone()
    }
}

/// `hearth://setup?server=…&token=…`: the desktop app opens it on the registration of the
/// group's owner, with the server and the token filled in.
pub fn setup_link(public_url: &str, token: &str) -> String {
    use crate::admin::query_escape;
    format!("hearth://setup?server={}&token={}", query_escape(public_url), query_escape(token))
}

/// Tells the operator, in the log, what to share and, on a new server, how to begin.
pub fn announce(public_url: &str, setup_token: Option<&str>) {
    if crate::turn::public_host(public_url).is_none() {
        tracing::warn!(
            public_url,
            "the public URL names no reachable host: set --public-url (HEARTH_PUBLIC_URL) to the \
             address members will type, e.g. https://hearth.example.org"
        );
    } else {
        tracing::info!("share this address with your group: {public_url}");
    }
    if let Some(token) = setup_token {
        tracing::info!(
            "no members yet. Open this one-time setup link on the owner's computer (or paste it \
             into the app's \"Join a server\") to create the owner's account: {}",
            setup_link(public_url, token)
        );
        tracing::info!("(the setup token alone, for other clients: {token})");
    }
}

/// The token was used: forget it.
pub fn consumed(state: &AppState) {
    let path = state.config.data_dir.join(FILE);
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(error = %e, "could not remove the used setup token file");
    }
}
