//! Password hashing with argon2id at OWASP's parameters (19 MiB, t=2, p=1). A hash takes tens
//! of milliseconds of CPU and 19 MiB, so hashes run in their own bounded pool: dedicated
//! threads, by default one fewer than the cores (at least one), at the lowest CPU priority, fed
//! by a bounded queue. A login storm then keeps at most that many cores busy and the gateway
//! always has one of its own: priority alone was not enough (with every core hashing at nice
//! 19, the gateway's heartbeat p99 still grew sevenfold: a woken runtime thread waits for the
//! scheduler to preempt a hash). Past the queue, a hash request is refused at once with
//! `unavailable` and a `retry_after_ms` instead of waiting without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use anyhow::Context;
use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use hearth_protocol::{ApiError, ErrorCode};
use tokio::sync::oneshot;

use crate::error::{AppError, AppResult};

/// The shortest password we accept; long passphrases are welcome up to the cap.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Hashes waiting per hashing thread before new ones are refused: about a second and a half of
/// work at ~45 ms a hash.
pub const QUEUE_PER_THREAD: usize = 32;

/// What a full queue tells the client to wait.
const RETRY_AFTER_MS: u64 = 1000;

/// The default pool size on a machine with `cores` cores: all but one, at least one.
pub fn default_concurrency(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

type Job = Box<dyn FnOnce() + Send>;

#[derive(Clone)]
pub struct Passwords {
    jobs: mpsc::SyncSender<Job>,
    /// Jobs sent and not yet taken by a thread: a thread that finds none keeps no memory.
    queued: Arc<AtomicUsize>,
    /// A real hash of a random password: verifying against it when the account does not
    /// exist makes "no such user" take as long as "wrong password".
    dummy_hash: Arc<str>,
}

/// OWASP's argon2id parameters, as they appear in a PHC string.
const PARAMS: &str = "m=19456,t=2,p=1";
const SALT_BYTES: usize = 16;
const OUTPUT_BYTES: usize = 32;

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, Some(OUTPUT_BYTES)).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

thread_local! {
    /// Each hashing thread keeps its 19 MiB of argon2 memory between hashes while more are
    /// queued (a login storm): allocating, zeroing and faulting it in anew each time costs
    /// about a tenth of a hash. When the queue runs dry it is given back ([`release_memory`]),
    /// so an idle server does not hold 19 MiB per hashing thread.
    static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Frees this thread's argon2 memory (returned to the system: `main` makes allocations this
/// large use their own mappings).
fn release_memory() {
    BLOCKS.with(|blocks| *blocks.borrow_mut() = Vec::new());
}

/// Bytes of argon2 memory this thread holds.
#[cfg(test)]
fn held_memory() -> usize {
    BLOCKS.with(|blocks| blocks.borrow().len() * std::mem::size_of::<Block>())
}

fn argon2_into(password: &[u8], salt: &[u8], out: &mut [u8]) -> anyhow::Result<()> {
    let argon2 = argon2();
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        let need = argon2.params().block_count();
        if blocks.len() != need {
            *blocks = vec![Block::default(); need];
        }
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut blocks[..])
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
}

/// A PHC string: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>` (unpadded base64).
fn hash_now(password: &[u8]) -> anyhow::Result<String> {
    let mut salt = [0u8; SALT_BYTES];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
    let mut out = [0u8; OUTPUT_BYTES];
    argon2_into(password, &salt, &mut out)?;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    Ok(format!("$argon2id$v=19${PARAMS}${}${}", b64.encode(salt), b64.encode(out)))
}

fn verify_now(password: &[u8], hash: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let parts: Vec<&str> = hash.split('$').collect();
    if let ["", "argon2id", "v=19", PARAMS, salt, expected] = parts[..]
        && let (Ok(salt), Ok(expected)) = (b64.decode(salt), b64.decode(expected))
        && expected.len() == OUTPUT_BYTES
    {
        let mut out = [0u8; OUTPUT_BYTES];
        return argon2_into(password, &salt, &mut out).is_ok()
            && out.iter().zip(&expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    }
    // Any other parameters (a hash from an older configuration): the library's own path.
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Puts the calling thread in Linux's idle scheduling class (`SCHED_IDLE`), falling back to
/// nice 19 where that is refused. Both give a hash almost no CPU that anything at normal priority
/// wants, but only the idle class gives it up at once: a woken runtime thread preempts an idle
/// class thread on its wake-up, while a nice-19 thread keeps the CPU for the rest of its time
/// slice (EEVDF's slice protection, about 1.5 ms on 2 cores), which is what a live session's
/// heartbeat waited for during a login storm. The scheduler also counts a CPU running only
/// idle-class threads as idle when it places a woken thread. Best effort: without either,
/// hashing still works.
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid, sched_setscheduler and setpriority on the calling thread have no
    // memory-safety preconditions; `param` outlives the call.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::pid_t;
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) != 0
            && libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) != 0
        {
            tracing::debug!("could not lower the priority of a password thread");
        }
    }
}

/// The calling thread's scheduling policy.
#[cfg(all(test, target_os = "linux"))]
fn thread_policy() -> i32 {
    // SAFETY: sched_getscheduler(0) reads the calling thread's policy.
    unsafe { libc::sched_getscheduler(0) }
}

impl Passwords {
    /// Starts `concurrency` hashing threads with a queue of [`QUEUE_PER_THREAD`] each; they end
    /// when the last handle is dropped.
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        Self::with_queue(concurrency, QUEUE_PER_THREAD * concurrency.max(1))
    }

    /// As [`new`](Self::new), with `queue` hashes allowed to wait.
    pub fn with_queue(concurrency: usize, queue: usize) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::sync_channel::<Job>(queue);
        // The threads share one queue; a std mutex held only while taking the next job.
        let queue = Arc::new(Mutex::new(queue));
        let queued = Arc::new(AtomicUsize::new(0));
        for i in 0..concurrency.max(1) {
            let queue = queue.clone();
            let pending = queued.clone();
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
                            Ok(job) => {
                                // The last job queued: once it is done, the thread goes idle.
                                let last = pending.fetch_sub(1, Ordering::AcqRel) == 1;
                                job();
                                if last {
                                    release_memory();
                                }
                            }
                            Err(_) => return,
                        }
                    }
                })
                .context("starting a password thread")?;
        }
        let dummy = hash_now(super::random_token(16).as_bytes());
        // Made on the caller's thread (a runtime worker), which must not keep the memory.
        release_memory();
        Ok(Passwords { jobs, queued, dummy_hash: dummy?.into() })
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> AppResult<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The requester may have gone (client disconnected); the result is not needed then.
            let _ = tx.send(work());
        });
        self.queued.fetch_add(1, Ordering::AcqRel);
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                let mut e =
                    ApiError::new(ErrorCode::Unavailable, "too many logins at once, try again shortly");
                e.retry_after_ms = Some(RETRY_AFTER_MS);
                return Err(AppError::Client(e));
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                return Err(AppError::Internal(anyhow::anyhow!("password threads stopped")));
            }
        }
        Ok(rx.await.context("password thread dropped the job")?)
    }

    pub async fn hash(&self, password: &str) -> AppResult<String> {
        let password = password.as_bytes().to_vec();
        Ok(self.run(move || hash_now(&password)).await??)
    }

    /// Verifies against `hash`, or against a dummy when there is no account, in equal time.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> AppResult<bool> {
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

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashes_run_in_the_idle_scheduling_class_and_the_caller_keeps_its_own() {
        let p = Passwords::new(1).unwrap();
        assert_eq!(p.run(thread_policy).await.unwrap(), libc::SCHED_IDLE);
        assert_eq!(thread_policy(), libc::SCHED_OTHER, "only the hashing threads are lowered");
    }

    #[test]
    fn the_default_pool_leaves_a_core() {
        assert_eq!(default_concurrency(1), 1);
        assert_eq!(default_concurrency(2), 1);
        assert_eq!(default_concurrency(8), 7);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_with_retry_after() {
        let p = Passwords::with_queue(1, 1).unwrap();
        // The one thread busy until released, then one job waiting: the queue is full.
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let busy = {
            let p = p.clone();
            tokio::spawn(async move {
                p.run(move || {
                    let _ = started_tx.send(());
                    gate.recv().is_ok()
                })
                .await
            })
        };
        tokio::task::spawn_blocking(move || started.recv()).await.unwrap().unwrap();
        // One job waits in the queue.
        assert!(p.jobs.try_send(Box::new(|| {})).is_ok());
        match p.hash("third password").await {
            Err(AppError::Client(e)) => {
                assert_eq!(e.code, ErrorCode::Unavailable);
                assert!(e.retry_after_ms.is_some());
            }
            other => panic!("expected unavailable, got {:?}", other.map(|_| ())),
        }
        release.send(()).unwrap();
        assert!(busy.await.unwrap().unwrap());
        // Once the queue drains (the filler is taken as soon as the thread is free), hashing
        // works again.
        let mut accepted = false;
        for _ in 0..100 {
            if p.hash("fourth password").await.is_ok() {
                accepted = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(accepted);
    }

    #[tokio::test]
    async fn an_idle_hashing_thread_keeps_no_argon2_memory_but_a_busy_one_does() {
        let p = Passwords::new(1).unwrap();
        assert_eq!(held_memory(), 0, "the caller's thread made the dummy hash and let go");
        p.hash("correct horse").await.unwrap();
        assert_eq!(p.run(held_memory).await.unwrap(), 0, "nothing queued after it: memory returned");
        // A storm: with the thread held up, a hash and a probe queue behind each other; the
        // probe finds the hash's memory still there.
        let (open, gate) = std::sync::mpsc::channel::<()>();
        let held = p.run(move || gate.recv().is_ok());
        let (held, first, second) = tokio::join!(held, p.hash("one horse"), async {
            let probe = p.run(held_memory);
            open.send(()).unwrap();
            probe.await
        });
        assert!(held.unwrap());
        first.unwrap();
        assert_eq!(second.unwrap(), 19 * 1024 * 1024, "kept while work was queued");
        assert_eq!(p.run(held_memory).await.unwrap(), 0, "and returned once the queue ran dry");
    }

    #[tokio::test]
    async fn hashes_made_by_the_argon2_crate_still_verify_and_vice_versa() {
        use argon2::password_hash::PasswordHasher;
        let p = Passwords::new(1).unwrap();
        let theirs = argon2().hash_password(b"open sesame").unwrap().to_string();
        assert!(p.verify("open sesame", Some(&theirs)).await.unwrap());
        assert!(!p.verify("open sesame!", Some(&theirs)).await.unwrap());
        let ours = p.hash("open sesame").await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2().verify_password(b"open sesame", &parsed).is_ok());
        // Other parameters go through the library's path.
        let weak =
            Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8 * 1024, 1, 1, None).unwrap());
        let other = weak.hash_password(b"pw12345678").unwrap().to_string();
        assert!(p.verify("pw12345678", Some(&other)).await.unwrap());
    }
}
