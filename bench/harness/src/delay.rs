//! A fixed delay on every UDP packet of a network namespace, for kernels without `sch_netem`
//! (this machine's has none, but has netfilter's NFQUEUE). Run inside the namespace as
//! `hearth-bench delay-udp --ms N`: it binds NFQUEUE queue 0 and holds each queued packet N ms
//! before accepting it; [`DelayedNamespace`] adds the `iptables … -j NFQUEUE` rule on OUTPUT
//! once the queue is bound. On the namespace's loopback each packet passes OUTPUT once, so
//! N ms each way is 2N ms of round trip, in the kernel's own path (the sockets, the routing and
//! the packets themselves are untouched: only their release is late), as netem would do it.
//!
//! Packets leave in arrival order (a constant delay keeps the order), so the held set is a FIFO
//! of packet ids. The queue holds at most `QUEUE_MAX` packets (at 10 ms and 1200-byte packets
//! that is ~6 GB/s, far above anything measured); the kernel drops beyond that, like a router. The bench
//! checks `/proc/net/netfilter/nfnetlink_queue` for drops after the run.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const QUEUE: u16 = 0;
const QUEUE_MAX: u32 = 65_536;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Milliseconds each packet is held.
    #[arg(long, default_value_t = 10)]
    ms: u64,
}

/// The delayer's loop (inside the namespace; runs until killed).
pub fn serve(args: &Args) -> Result<()> {
    let delay = Duration::from_millis(args.ms);
    let mut queue = nfq::Queue::open().context("opening an NFQUEUE netlink socket (needs root)")?;
    queue.bind(QUEUE).context("binding NFQUEUE 0")?;
    // Metadata only: the verdict refers to the packet by id, its bytes stay in the kernel.
    queue.set_copy_range(QUEUE, 0).context("NFQUEUE copy range")?;
    queue.set_queue_max_len(QUEUE, QUEUE_MAX).context("NFQUEUE length")?;
    queue.set_fail_open(QUEUE, false).context("NFQUEUE fail-open")?;
    let _ = queue.set_recv_enobufs(false);
    // The kernel drops a packet when the netlink socket's receive buffer is full ("user
    // dropped" in /proc/net/netfilter/nfnetlink_queue): a loss netem would not add. Give it
    // 64 MiB (root may exceed rmem_max). `nfq` keeps its fd private; this process has no other
    // socket, so every socket fd here is the queue's.
    grow_socket_buffers(64 << 20);
    queue.set_nonblocking(true);
    println!("ready");
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    loop {
        // Take everything queued now.
        loop {
            match queue.recv() {
                Ok(mut msg) => {
                    msg.set_verdict(nfq::Verdict::Accept);
                    held.push_back((Instant::now() + delay, msg));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => break,
                Err(e) => return Err(e).context("reading NFQUEUE"),
            }
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            let (_, msg) = held.pop_front().expect("front exists");
            queue.verdict(msg).context("releasing a packet")?;
        }
        // Wake for the next release or new packets, whichever comes first; 100 µs keeps the
        // added jitter far under the delay.
        let wait = held.front().map_or(Duration::from_micros(100), |(due, _)| {
            due.saturating_duration_since(Instant::now()).min(Duration::from_micros(100))
        });
        std::thread::sleep(wait);
    }
}

fn grow_socket_buffers(bytes: libc::c_int) {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else { return };
    for entry in fds.flatten() {
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<libc::c_int>().ok()) else {
            continue;
        };
        if is_socket {
            // SAFETY: setsockopt on an fd this process owns, with a valid int option value.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&raw const bytes).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }
}

/// A fresh network namespace (loopback up) whose UDP packets are each delayed `ms` ms: by a
/// `delay-udp` child, or by `tc netem` on its loopback when `netem` (where the kernel has
/// sch_netem; netem delays every packet, not only UDP). Deleted, with its delayer, on drop.
pub struct DelayedNamespace {
    pub name: String,
    delayer: Option<Child>,
}

impl DelayedNamespace {
    pub fn new(tag: &str, ms: u64, netem: bool) -> Result<Self> {
        let name = format!("hearth-{tag}-{}", std::process::id());
        run("ip", &["netns", "add", &name])?;
        // From here on, drop deletes the namespace (and kills the delayer once there is one).
        let mut ns = Self { name, delayer: None };
        run("ip", &["-n", &ns.name, "link", "set", "lo", "up"])?;
        if netem {
            let delay = format!("{ms}ms");
            run(
                "ip",
                &[
                    "netns", "exec", &ns.name, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay",
                    &delay, "limit", "100000",
                ],
            )
            .context("tc netem (iproute2's tc and the sch_netem module are needed)")?;
            return Ok(ns);
        }
        let mut delayer = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(std::env::current_exe()?)
            .args(["delay-udp", "--ms", &ms.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the delayer")?;
        let stdout = delayer.stdout.take();
        ns.delayer = Some(delayer);
        let mut line = String::new();
        BufReader::new(stdout.context("delayer stdout")?).read_line(&mut line)?;
        if line.trim() != "ready" {
            bail!("the delayer did not start (NFQUEUE needs root and CONFIG_NETFILTER_NETLINK_QUEUE)");
        }
        run(
            "ip",
            &[
                "netns",
                "exec",
                &ns.name,
                "iptables",
                "-A",
                "OUTPUT",
                "-p",
                "udp",
                "-j",
                "NFQUEUE",
                "--queue-num",
                "0",
            ],
        )?;
        Ok(ns)
    }
}

impl DelayedNamespace {
    /// Packets the queue dropped so far (kernel queue full + netlink buffer full): netem adds
    /// no loss, so a run with drops does not measure the round trip alone. Under netem there
    /// is no queue, and none are counted.
    pub fn drops(&self) -> Result<u64> {
        if self.delayer.is_none() {
            return Ok(0);
        }
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "cat", "/proc/net/netfilter/nfnetlink_queue"])
            .output()
            .context("reading the queue's counters")?;
        let text = String::from_utf8_lossy(&out.stdout);
        // queue, portid, queued, copy mode, copy range, queue_dropped, user_dropped, id, 1
        let fields: Vec<u64> = text.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        if fields.len() < 7 {
            bail!("unexpected nfnetlink_queue line: {text:?}");
        }
        Ok(fields[5] + fields[6])
    }
}

impl Drop for DelayedNamespace {
    fn drop(&mut self) {
        if let Some(delayer) = &mut self.delayer {
            let _ = delayer.kill();
            let _ = delayer.wait();
        }
        let _ = run("ip", &["netns", "delete", &self.name]);
    }
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(program).args(args).status().with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("{program} {} failed", args.join(" "));
    }
    Ok(())
}
