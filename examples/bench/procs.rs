//! Child processes and the machine: running the release binary with its peak RSS (wait4),
//! the server's RSS and CPU from /proc, and what the machine is and how busy it was.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// A finished child process: wall time, peak RSS, exit status and what it printed.
#[derive(Debug)]
pub struct Finished {
    pub wall: Duration,
    /// Peak resident set size (`ru_maxrss` from wait4), in KiB.
    pub max_rss_kib: u64,
    /// User + system CPU seconds of the child.
    pub cpu_secs: f64,
    pub success: bool,
    pub stderr: String,
}

/// Runs a command to the end and reports its peak RSS from `wait4`'s rusage: exact, with
/// no polling race, because the kernel keeps the high-water mark until the child is reaped.
pub fn run_measured(mut cmd: Command, timeout: Duration) -> anyhow::Result<Finished> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    // A watchdog: the run is bounded in time whatever the child does.
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            while started.elapsed() < timeout {
                if done.load(Ordering::Relaxed) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            // SAFETY: signalling our own child, which is not reaped yet (wait4 below).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            true
        })
    };
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let killed = watchdog.join().unwrap_or(false);
    drop(child); // already reaped: dropping a Child neither waits nor kills
    if reaped != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let _stdout = out.join();
    let stderr = err.join().unwrap_or_default();
    if killed {
        bail!(
            "{cmd:?} was stopped after {timeout:?}; stderr: {}",
            tail(&stderr)
        );
    }
    Ok(Finished {
        wall,
        max_rss_kib: usage.ru_maxrss as u64,
        cpu_secs: tv(usage.ru_utime) + tv(usage.ru_stime),
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        stderr,
    })
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut s);
        }
        s
    })
}

/// The last lines of a log, for error messages.
pub fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// The server under test, a child process listening on loopback.
pub struct Server {
    child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Server {
    /// Starts `tracecoder serve` on a free loopback port and waits for `/healthz`.
    pub async fn start(bin: &Path, database_url: &str, log: PathBuf) -> anyhow::Result<Server> {
        let port = free_port()?;
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            // Hundreds of sign-ins and a few uploads from one address, on purpose.
            .arg("--login-rate-burst")
            .arg("100000")
            .arg("--import-rate-burst")
            .arg("1000")
            .env("DATABASE_URL", database_url)
            .env_remove("REDIS_URL")
            .env_remove("OIDC_ISSUER_URL")
            .env_remove("OIDC_CLIENT_ID")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(res) = http.get(format!("{}/healthz", server.base)).send().await
                && res.status().is_success()
            {
                return Ok(server);
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!(
                    "the server did not become healthy in 120 s; see {}",
                    server.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Current, peak and anonymous RSS.
    pub fn rss(&self) -> Rss {
        rss_of(self.pid())
    }

    /// SIGTERM (graceful shutdown), then SIGKILL after 30 s.
    pub fn stop(mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Resident memory of a process, in KiB (0 when it is gone).
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    /// VmRSS: everything resident, including pages of the memory-mapped database file.
    pub now: u64,
    /// VmHWM: the peak of VmRSS.
    pub peak: u64,
    /// RssAnon: the process's own heap and stacks, without file pages.
    pub anon: u64,
}

pub fn rss_of(pid: u32) -> Rss {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Rss {
        now: field("VmRSS:"),
        peak: field("VmHWM:"),
        anon: field("RssAnon:"),
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// User + system CPU seconds of a process, from /proc/PID/stat.
pub fn cpu_secs_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (get(11) + get(12)) / clock_ticks()
}

/// CPU seconds used by this process (the load generator) so far.
pub fn self_cpu_secs() -> f64 {
    cpu_secs_of(std::process::id())
}

/// Samples a process's RSS in the background and keeps the largest values seen.
pub struct RssSampler {
    max: Arc<AtomicU64>,
    max_anon: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let max = Arc::new(AtomicU64::new(0));
        let max_anon = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, a, s) = (max.clone(), max_anon.clone(), stop.clone());
        let handle = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                let rss = rss_of(pid);
                m.fetch_max(rss.now, Ordering::Relaxed);
                a.fetch_max(rss.anon, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        RssSampler {
            max,
            max_anon,
            stop,
            handle,
        }
    }

    /// Stops sampling; the largest RSS and anonymous RSS seen, in KiB.
    pub async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.await;
        (
            self.max.load(Ordering::Relaxed),
            self.max_anon.load(Ordering::Relaxed),
        )
    }
}

/// What the benchmark ran on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model,
            memory_gib: mem_kib / 1024.0 / 1024.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        }
    }
}

/// The 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Busy and total jiffies of all CPUs, from the first line of /proc/stat.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let nums: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = nums.iter().sum();
    let idle = nums.get(3).copied().unwrap_or(0) + nums.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Tracks how busy the whole machine was over a phase, and how much of that was the
/// server and this load generator: the rest is other people's work on the same machine.
pub struct CpuWindow {
    start: (u64, u64),
    server: f64,
    postgres: std::collections::HashMap<u32, f64>,
    client: f64,
    server_pid: Option<u32>,
    at: Instant,
}

/// The CPU use of one phase, in cores (2.0 = both cores of a 2-core machine busy).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct CpuUse {
    pub machine_cores: f64,
    pub server_cores: f64,
    pub client_cores: f64,
    /// Postgres server processes (also those serving other people's work on the machine).
    pub postgres_cores: f64,
    /// Busy cores not explained by the server, its children, Postgres or this program.
    pub other_cores: f64,
}

impl CpuWindow {
    pub fn start(server_pid: Option<u32>) -> CpuWindow {
        CpuWindow {
            start: cpu_jiffies(),
            server: server_pid.map(cpu_secs_of).unwrap_or(0.0),
            postgres: postgres_cpu(),
            client: self_cpu_secs(),
            server_pid,
            at: Instant::now(),
        }
    }

    /// CPU use since `start`; `extra_secs` is CPU of short-lived children already measured.
    pub fn finish(&self, extra_secs: f64) -> CpuUse {
        let secs = self.at.elapsed().as_secs_f64().max(1e-3);
        let (busy, total) = cpu_jiffies();
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64;
        let frac = (busy - self.start.0) as f64 / ((total - self.start.1) as f64).max(1.0);
        let machine = frac * cpus;
        let server =
            (self.server_pid.map(cpu_secs_of).unwrap_or(0.0) - self.server + extra_secs) / secs;
        let client = (self_cpu_secs() - self.client) / secs;
        let postgres: f64 = postgres_cpu()
            .iter()
            .map(|(pid, now)| now - self.postgres.get(pid).copied().unwrap_or(0.0))
            .sum::<f64>()
            / secs;
        CpuUse {
            machine_cores: machine,
            server_cores: server,
            client_cores: client,
            postgres_cores: postgres,
            other_cores: (machine - server - client - postgres).max(0.0),
        }
    }
}

/// CPU seconds of every running `postgres` process, by pid.
fn postgres_cpu() -> std::collections::HashMap<u32, f64> {
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "postgres" {
            out.insert(pid, cpu_secs_of(pid));
        }
    }
    out
}
