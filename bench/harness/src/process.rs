//! Child processes of the harness and what `/proc` says about them: scratch directories that
//! vanish on drop, spawning servers so that they die with the harness, CPU seconds and RSS.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

/// A directory under the system temp dir, removed (with everything in it) when dropped.
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    pub fn new(label: &str) -> Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "hearth-bench-{label}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating scratch dir {}", path.display()))?;
        Ok(ScratchDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.path) {
            eprintln!("warning: could not remove {}: {err}", self.path.display());
        }
    }
}

/// A server process the harness started. It is killed when this is dropped, and (through
/// `PR_SET_PDEATHSIG`) when the harness itself dies, so no run leaves servers behind.
pub struct ServerProcess {
    child: Child,
    pid: u32,
    name: String,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Starts `program args`, with stdout and stderr appended to `log_path`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        log_path: &Path,
    ) -> Result<Self> {
        let log = std::fs::File::create(log_path)
            .with_context(|| format!("creating log file {}", log_path.display()))?;
        let log_err = log.try_clone().context("duplicating log file handle")?;
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true);
        // SAFETY: the closure runs in the forked child before exec and only calls prctl, which
        // is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().with_context(|| format!("starting {name} ({})", program.display()))?;
        let pid = child.id().context("child exited before its pid was read")?;
        Ok(ServerProcess { child, pid, name: name.to_owned(), log_path: log_path.to_owned() })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Fails if the process has already exited (with the tail of its log, to say why).
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("polling child status")? {
            bail!(
                "{} exited early ({status}); last lines of {}:\n{}",
                self.name,
                self.log_path.display(),
                self.log_tail(20)
            );
        }
        Ok(())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        match std::fs::read_to_string(&self.log_path) {
            Ok(text) => {
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            }
            Err(err) => format!("(log unreadable: {err})"),
        }
    }

    /// Waits until `path` exists and is non-empty, failing early if the process dies.
    pub async fn wait_for_file(&mut self, path: &Path, timeout: Duration) -> Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(text) = tokio::fs::read_to_string(path).await {
                let text = text.trim();
                if !text.is_empty() {
                    return Ok(text.to_owned());
                }
            }
            self.check_alive()?;
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{} did not write {} within {timeout:?}; last lines of its log:\n{}",
                    self.name,
                    path.display(),
                    self.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, a grace period, then SIGKILL.
    pub async fn stop(mut self) -> Result<()> {
        // SAFETY: plain kill(2) on the pid of a child we have not reaped yet.
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        if rc != 0 {
            // Already gone: reap it below.
            self.child.start_kill().ok();
        }
        match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(status) => {
                status.with_context(|| format!("waiting for {} to exit", self.name))?;
            }
            Err(_) => {
                eprintln!("warning: {} ignored SIGTERM for 5 s; killing it", self.name);
                self.child.kill().await.with_context(|| format!("killing {}", self.name))?;
            }
        }
        Ok(())
    }
}

impl Drop for ServerProcess {
    /// The path taken when a bench fails or is interrupted: kill and reap at once, so no
    /// zombie is left for an init that may not reap (containers).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: the child has not been reaped (try_wait just said so), so the pid is
            // still ours; kill(2) and a blocking waitpid(2) right after SIGKILL are brief.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
                let mut status = 0;
                libc::waitpid(self.pid as libc::pid_t, &mut status, 0);
            }
        }
    }
}

/// User + system CPU time the process has used so far, all threads included.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let (user, system) = cpu_split(pid)?;
    Ok(user + system)
}

/// (user, system) CPU seconds the process has used so far, all threads included. On loopback
/// the kernel's share includes delivering each write to the receiving socket.
pub fn cpu_split(pid: u32) -> Result<(f64, f64)> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may hold spaces; the fields after it start past the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).with_context(|| format!("malformed {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')' comes field 3 (state), so utime (field 14) is index 11 and stime index 12.
    let utime: u64 =
        fields.get(11).and_then(|f| f.parse().ok()).with_context(|| format!("no utime in {path}"))?;
    let stime: u64 =
        fields.get(12).and_then(|f| f.parse().ok()).with_context(|| format!("no stime in {path}"))?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks <= 0 {
        bail!("sysconf(_SC_CLK_TCK) failed");
    }
    Ok((utime as f64 / ticks as f64, stime as f64 / ticks as f64))
}

/// Resident set size (VmRSS) in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line =
        status.lines().find(|l| l.starts_with("VmRSS:")).with_context(|| format!("no VmRSS in {path}"))?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("malformed VmRSS line in {path}: {line}"))?;
    Ok(kib * 1024)
}

/// Raises the open-file limit to the hard limit: thousands of sockets on each side.
pub fn raise_nofile_limit() -> Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            bail!("setrlimit: {}", std::io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// Number of CPUs this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// `root` and every process descended from it (children of children included), from the
/// parent pids in `/proc/*/stat`. Processes that end while the table is read are skipped.
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            // After the command name's ')' come state, then the parent pid.
            let ppid =
                stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(parents.iter().filter(|(_, ppid)| *ppid == parent).map(|(pid, _)| *pid));
        i += 1;
    }
    tree
}

/// The short command name of a process (`/proc/PID/comm`, at most 15 bytes).
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim().to_owned()).unwrap_or_default()
}

/// Proportional set size in bytes (`Pss` of `/proc/PID/smaps_rollup`): resident memory with
/// each shared page divided among the processes that map it, so a tree's PSS sums honestly.
pub fn pss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = text.lines().find(|l| l.starts_with("Pss:")).with_context(|| format!("no Pss in {path}"))?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("malformed Pss line in {path}: {line}"))?;
    Ok(kib * 1024)
}

/// Memory of a process tree at one moment.
#[derive(Debug, Clone, Default)]
pub struct TreeMemory {
    /// Sum of VmRSS: pages shared between the processes (libraries) count once per process.
    pub rss_bytes: u64,
    /// Sum of PSS: shared pages split among their users.
    pub pss_bytes: u64,
    /// (pid, command name, RSS bytes) of each process.
    pub processes: Vec<(u32, String, u64)>,
}

/// RSS and PSS of `root` and its descendants.
pub fn tree_memory(root: u32) -> TreeMemory {
    let mut memory = TreeMemory::default();
    for pid in process_tree(root) {
        // A process that ended meanwhile counts as nothing.
        let Ok(rss) = rss_bytes(pid) else { continue };
        memory.rss_bytes += rss;
        memory.pss_bytes += pss_bytes(pid).unwrap_or(0);
        memory.processes.push((pid, comm(pid), rss));
    }
    memory
}
