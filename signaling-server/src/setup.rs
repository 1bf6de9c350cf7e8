//! First start: while the group has no members, a one-time setup token lets the first person
//! register as admin. It is printed to the log and written to `DATA_DIR/setup-token` (owner
//! only), made anew at every start until it is used, and removed once it is.

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
    tracing::info!(
        setup_token = %token,
        file = %path.display(),
        "no accounts yet: register the first (admin) account with this setup token as the invite"
    );
    Ok(Some(token))
}

/// The token was used: forget it.
pub fn consumed(state: &AppState) {
    let path = state.config.data_dir.join(FILE);
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(error = %e, "could not remove the used setup token file");
    }
}
