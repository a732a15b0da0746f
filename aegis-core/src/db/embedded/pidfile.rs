//! Reading `postmaster.pid` to tell a running cluster from a stale lock file.

use std::path::Path;

/// What `postmaster.pid` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostmasterPid {
    /// The postmaster's process id.
    pub pid: u32,
    /// The port it listens on.
    pub port: u16,
    /// Its status line (`ready`, `starting`, `stopping`, …), when written.
    pub status: Option<String>,
}

/// Parses the lock file in `pgdata`, if any.
pub fn read(pgdata: &Path) -> Option<PostmasterPid> {
    let text = std::fs::read_to_string(pgdata.join("postmaster.pid")).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    Some(PostmasterPid {
        pid: lines.first()?.trim().parse().ok()?,
        port: lines.get(3)?.trim().parse().ok()?,
        status: lines.get(7).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
    })
}

/// Whether `pid` is a live PostgreSQL postmaster serving `pgdata`.
pub fn is_live_postmaster(pid: u32, pgdata: &Path) -> bool {
    if !is_running(pid) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let is_postgres = args.first().is_some_and(|a| a.ends_with("postgres"));
    let pgdata = pgdata.to_string_lossy();
    is_postgres && args.iter().any(|a| *a == pgdata)
}

/// Whether process `pid` exists and has not yet exited: a zombie (state Z) or a dead task
/// (X) has. A process on its way out may already read an empty command line, so this looks
/// only at its state.
pub fn is_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    !stat.rsplit(')').next().is_some_and(|rest| matches!(rest.trim_start().chars().next(), Some('Z' | 'X')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_lock_file() {
        let dir = std::env::temp_dir().join(format!("aegis-pidfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("postmaster.pid"),
            "4242\n/data\n1700000000\n5544\n\n127.0.0.1\n  1234 5678\nready   \n",
        )
        .unwrap();
        let pid = read(&dir).unwrap();
        assert_eq!(pid, PostmasterPid { pid: 4242, port: 5544, status: Some("ready".into()) });
        assert!(!is_live_postmaster(std::process::id(), &dir));
        std::fs::write(dir.join("postmaster.pid"), "garbage").unwrap();
        assert_eq!(read(&dir), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
