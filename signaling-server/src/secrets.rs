//! Secrets generated on first start and kept in `DATA_DIR/secrets.json` (owner-only): the
//! token signing key and the TURN shared secret.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::auth::random_token;

#[derive(Clone, Serialize, Deserialize)]
pub struct Secrets {
    pub signing_key: String,
    pub turn_secret: String,
}

impl Secrets {
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Secrets> {
        let path = data_dir.join("secrets.json");
        if path.exists() {
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            return serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()));
        }
        let secrets = Secrets { signing_key: random_token(48), turn_secret: random_token(32) };
        write_private(&path, serde_json::to_string_pretty(&secrets)?.as_bytes())?;
        tracing::info!(path = %path.display(), "generated new secrets");
        Ok(secrets)
    }
}

/// Writes a file readable only by its owner, atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
