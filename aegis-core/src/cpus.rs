//! Which CPUs the async runtime's worker threads, and the database backends its batched
//! writes wake, run on (decision 40).
//!
//! The batched decision and ledger writes wake a PostgreSQL backend every few tens of
//! milliseconds. Where the kernel runs that backend on the CPU of the runtime thread that
//! woke it, the thread waits for it, and so do the requests that arrive meanwhile. With the
//! CPUs split, the runtime's worker threads run on the first half of the CPUs this process
//! may use, and the backends of those writers' connections (when the database is on this
//! machine) on the other half. Nothing else is pinned: other backends, the blocking pool
//! and the extraction processes use every CPU, since theirs is the work that may need them
//! all.

use std::{io, sync::OnceLock};

use nix::{
    sched::{CpuSet, sched_getaffinity, sched_setaffinity},
    unistd::Pid,
};

/// The CPUs this process could use when first asked, before any thread was pinned.
pub fn allowed() -> &'static [usize] {
    static ALLOWED: OnceLock<Vec<usize>> = OnceLock::new();
    ALLOWED.get_or_init(|| cpus_of(Pid::from_raw(0)).unwrap_or_default())
}

/// The CPUs the calling thread may run on.
pub fn current_thread() -> Vec<usize> {
    cpus_of(Pid::from_raw(0)).unwrap_or_default()
}

/// The CPUs process (or thread) `pid` may run on; `None` when it cannot be read.
pub fn of_process(pid: i32) -> Option<Vec<usize>> {
    cpus_of(Pid::from_raw(pid))
}

fn cpus_of(pid: Pid) -> Option<Vec<usize>> {
    let set = sched_getaffinity(pid).ok()?;
    Some((0..CpuSet::count()).filter(|cpu| set.is_set(*cpu).unwrap_or(false)).collect())
}

/// [`allowed`] split between the runtime's workers and the database backends of its batched
/// writers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSplit {
    /// The runtime's worker threads: the first half, rounded up.
    pub runtime: Vec<usize>,
    /// The batched writers' backends: the rest.
    pub database: Vec<usize>,
}

impl CpuSplit {
    /// Splits `cpus`; `None` for fewer than two (nothing to keep apart).
    pub fn of(cpus: &[usize]) -> Option<Self> {
        if cpus.len() < 2 {
            return None;
        }
        let (runtime, database) = cpus.split_at(cpus.len().div_ceil(2));
        Some(Self { runtime: runtime.to_vec(), database: database.to_vec() })
    }

    /// The split of this process's CPUs, when `enabled` (`server.split_cpus`).
    pub fn for_process(enabled: bool) -> Option<Self> {
        if enabled { Self::of(allowed()) } else { None }
    }
}

/// Runs the calling thread on `cpus` (threads and processes it starts inherit them).
pub fn pin_current_thread(cpus: &[usize]) -> io::Result<()> {
    pin(Pid::from_raw(0), cpus)
}

/// Lets process `pid` run on every CPU of [`allowed`] again: a child started from a pinned
/// thread inherits that thread's CPUs.
pub fn release(pid: u32) -> io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    pin(Pid::from_raw(pid), allowed())
}

/// Lets the calling thread run on every CPU of [`allowed`] again.
pub fn release_current_thread() -> io::Result<()> {
    pin(Pid::from_raw(0), allowed())
}

fn pin(pid: Pid, cpus: &[usize]) -> io::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    let mut set = CpuSet::new();
    for cpu in cpus {
        set.set(*cpu).map_err(io::Error::from)?;
    }
    sched_setaffinity(pid, &set).map_err(io::Error::from)
}

/// The split [`split_runtime`] applied to this process's runtime, if any.
pub fn active_split() -> Option<&'static CpuSplit> {
    ACTIVE.get()
}

static ACTIVE: OnceLock<CpuSplit> = OnceLock::new();

/// Runs the local PostgreSQL backend `pid` on `cpus`, after checking that `pid` is a
/// PostgreSQL process (`comm` is `postgres`): the caller has it from `pg_backend_pid()`
/// over a loopback connection. Needs the backend's user or `CAP_SYS_NICE`.
pub fn pin_backend(pid: i32, cpus: &[usize]) -> io::Result<()> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))?;
    if comm.trim_end() != "postgres" {
        return Err(io::Error::other(format!("process {pid} is `{}`, not a PostgreSQL backend", comm.trim_end())));
    }
    pin(Pid::from_raw(pid), cpus)
}

/// Makes a runtime's worker threads run on `split.runtime`, each pinning itself when it
/// first goes idle (only workers park; in a current-thread runtime, the thread blocking on
/// it), and lets every blocking-pool thread, which inherits the CPUs of the worker that
/// started it, run on all of them again.
pub fn split_runtime(builder: &mut tokio::runtime::Builder, split: &CpuSplit) {
    thread_local! {
        static PINNED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    let _ = ACTIVE.set(split.clone());
    let cpus = split.runtime.clone();
    builder
        .on_thread_start(|| {
            if let Err(error) = release_current_thread() {
                tracing::warn!(%error, "cannot unpin a blocking thread");
            }
        })
        .on_thread_park(move || {
            if !PINNED.replace(true)
                && let Err(error) = pin_current_thread(&cpus)
            {
                tracing::warn!(%error, ?cpus, "cannot pin a runtime worker to its CPUs");
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_takes_the_first_half_rounded_up() {
        assert_eq!(CpuSplit::of(&[0]), None);
        assert_eq!(CpuSplit::of(&[0, 1]), Some(CpuSplit { runtime: vec![0], database: vec![1] }));
        assert_eq!(CpuSplit::of(&[2, 5, 7]), Some(CpuSplit { runtime: vec![2, 5], database: vec![7] }));
        assert_eq!(CpuSplit::of(&[0, 1, 2, 3]), Some(CpuSplit { runtime: vec![0, 1], database: vec![2, 3] }));
        assert_eq!(CpuSplit::for_process(false), None);
    }

    #[test]
    fn workers_run_on_the_runtime_half_and_blocking_threads_anywhere() {
        let Some(split) = CpuSplit::of(allowed()) else { return };
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(1).enable_all();
        split_runtime(&mut builder, &split);
        let runtime = builder.build().unwrap_or_else(|e| panic!("{e}"));
        let (worker, blocking) = runtime.block_on(async {
            // A spawned task runs on the worker, after it has parked at least once.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let worker = tokio::spawn(async {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                current_thread()
            });
            let worker = worker.await.unwrap_or_default();
            let blocking = tokio::task::spawn_blocking(current_thread).await.unwrap_or_default();
            (worker, blocking)
        });
        assert_eq!(worker, split.runtime);
        assert_eq!(blocking, allowed());
    }

    #[test]
    fn a_current_thread_runtime_pins_the_thread_blocking_on_it() {
        let Some(split) = CpuSplit::of(allowed()) else { return };
        let expected = split.runtime.clone();
        // A thread of its own: the pin stays with the thread.
        let seen = std::thread::spawn(move || {
            let mut builder = tokio::runtime::Builder::new_current_thread();
            builder.enable_all();
            split_runtime(&mut builder, &split);
            let runtime = builder.build().unwrap_or_else(|e| panic!("{e}"));
            runtime.block_on(async {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let blocking = tokio::task::spawn_blocking(current_thread).await.unwrap_or_default();
                (current_thread(), blocking)
            })
        })
        .join()
        .unwrap_or_default();
        assert_eq!(seen, (expected, allowed().to_vec()));
    }

    #[test]
    fn only_a_postgres_process_is_pinned_as_a_backend() {
        let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        let err = pin_backend(me, allowed()).unwrap_err();
        assert!(err.to_string().contains("not a PostgreSQL backend"), "{err}");
        assert!(pin_backend(i32::MAX, allowed()).is_err(), "no such process");
    }
}
