//! Password hashing with argon2id at OWASP's parameters (19 MiB, t=2, p=1). Hashing takes tens
//! of milliseconds of CPU and 19 MiB, so it runs on the blocking pool, a bounded number at once.

use std::sync::Arc;

use anyhow::Context;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// The shortest password we accept; long passphrases are welcome up to the cap.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A real hash of a random password: verifying against it when the account does not
    /// exist makes "no such user" take as long as "wrong password".
    dummy_hash: Arc<str>,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(password: &[u8]) -> anyhow::Result<String> {
    let hash = argon2().hash_password(password).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(hash.to_string())
}

fn verify_now(password: &[u8], hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

impl Passwords {
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        let dummy = hash_now(super::random_token(16).as_bytes())?;
        Ok(Passwords { permits: Arc::new(Semaphore::new(concurrency.max(1))), dummy_hash: dummy.into() })
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await.context("password pool closed")?;
        let password = password.as_bytes().to_vec();
        tokio::task::spawn_blocking(move || hash_now(&password)).await.context("hashing task")?
    }

    /// Verifies against `hash`, or against a dummy when there is no account, in equal time.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await.context("password pool closed")?;
        let password = password.as_bytes().to_vec();
        let exists = hash.is_some();
        let hash = hash.map(str::to_string).unwrap_or_else(|| self.dummy_hash.to_string());
        let ok = tokio::task::spawn_blocking(move || verify_now(&password, &hash))
            .await
            .context("verifying task")?;
        Ok(ok && exists)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_use_owasp_parameters() {
        let p = Passwords::new(2).unwrap();
        let h = p.hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(p.verify("correct horse", Some(&h)).await.unwrap());
        assert!(!p.verify("wrong horse", Some(&h)).await.unwrap());
        assert!(!p.verify("correct horse", None).await.unwrap());
        assert!(!p.verify("x", Some("not a hash")).await.unwrap());
    }
}
