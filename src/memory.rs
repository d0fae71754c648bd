//! Giving freed memory back to the operating system once the server goes quiet.
//!
//! Two allocators hold the server's memory: mimalloc (Rust's, set in `main.rs`) and the C
//! library's malloc, which SQLite uses for its page caches and statements. Both keep freed
//! memory for reuse, so after a load the process stays as large as the load made it. When
//! no request has arrived for a while, [`release_when_idle`] asks both to return what they
//! do not use: glibc's `malloc_trim` and mimalloc's `mi_collect`. Idle SQLite connections
//! close on their own (the pools' idle timeout, `db::sqlite_pool`), which frees their caches
//! first; the releases keep running for a minute of quiet to catch them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Requests seen so far (only compared, never reported).
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// How often the idle check runs.
const TICK: Duration = Duration::from_secs(5);

/// Quiet ticks after the last request during which memory is released (a minute).
const RELEASES_AFTER_QUIET: u32 = 12;

/// Notes a request: called once per request by the server.
pub fn request_seen() {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
}

/// Every [`TICK`] without a request, up to a minute after the last one, releases freed
/// memory to the OS. Runs until the runtime stops.
pub fn release_when_idle() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = REQUESTS.load(Ordering::Relaxed);
        let mut quiet_ticks = RELEASES_AFTER_QUIET;
        loop {
            tick.tick().await;
            let now = REQUESTS.load(Ordering::Relaxed);
            if now != seen {
                seen = now;
                quiet_ticks = 0;
                continue;
            }
            if quiet_ticks < RELEASES_AFTER_QUIET {
                quiet_ticks += 1;
                // Off the async workers: trimming a large heap can take milliseconds.
                let _ = tokio::task::spawn_blocking(release_free_memory).await;
            }
        }
    });
}

/// Returns the memory both allocators hold free to the OS.
pub fn release_free_memory() {
    // SAFETY: `mi_collect` may be called from any thread at any time; it only returns
    // memory mimalloc holds free.
    unsafe { libmimalloc_sys::mi_collect(true) };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` may be called at any time; it only returns free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
