//! Password hashing with argon2id at OWASP's parameters (19 MiB, t=2, p=1). A hash takes tens
//! of milliseconds of CPU and 19 MiB, so hashes run on a small pool of dedicated threads (at
//! most `concurrency` at once) that run at the lowest CPU priority: a login storm then uses
//! whatever CPU is left, and the gateway, at normal priority, keeps its latency.

use std::sync::{Arc, Mutex, mpsc};

use anyhow::Context;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::oneshot;

/// The shortest password we accept; long passphrases are welcome up to the cap.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;

type Job = Box<dyn FnOnce() + Send>;

#[derive(Clone)]
pub struct Passwords {
    jobs: mpsc::Sender<Job>,
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

/// Puts the calling thread at the lowest CPU priority (nice 19), so it only gets CPU that
/// nothing at normal priority wants. Best effort: without it hashing still works.
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority on the calling thread have no memory-safety preconditions.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, 19) != 0 {
            tracing::debug!("could not lower the priority of a password thread");
        }
    }
}

impl Passwords {
    /// Starts `concurrency` hashing threads; they end when the last handle is dropped.
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        // The threads share one queue; a std mutex held only while taking the next job.
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..concurrency.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_thread_priority();
                    loop {
                        let job = match queue.lock() {
                            Ok(q) => q.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .context("starting a password thread")?;
        }
        let dummy = hash_now(super::random_token(16).as_bytes())?;
        Ok(Passwords { jobs, dummy_hash: dummy.into() })
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                // The requester may have gone (client disconnected); the result is not needed then.
                let _ = tx.send(work());
            }))
            .map_err(|_| anyhow::anyhow!("password threads stopped"))?;
        rx.await.context("password thread dropped the job")
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let password = password.as_bytes().to_vec();
        self.run(move || hash_now(&password)).await?
    }

    /// Verifies against `hash`, or against a dummy when there is no account, in equal time.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> anyhow::Result<bool> {
        let password = password.as_bytes().to_vec();
        let exists = hash.is_some();
        let hash = hash.map(str::to_string).unwrap_or_else(|| self.dummy_hash.to_string());
        let ok = self.run(move || verify_now(&password, &hash)).await?;
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
