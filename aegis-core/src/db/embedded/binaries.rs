//! Finding PostgreSQL 16 + pgvector binaries: `AEGIS_PG_BIN` (config `pg_bin`), then PATH
//! when pgvector is installed there, then the PyPI package `pgserver`, installed with pip
//! into the cache directory on first use.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::db::DbError;

/// A checked PostgreSQL installation.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    /// Directory holding `postgres`, `pg_ctl` and `initdb`.
    pub bin_dir: PathBuf,
    /// PostgreSQL's full version, e.g. `16.2`.
    pub version: String,
    /// pgvector's default version, e.g. `0.6.2`.
    pub vector_version: String,
}

impl PgBinaries {
    /// Path of one program in the installation.
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

fn embedded_err(msg: impl Into<String>) -> DbError {
    DbError::Embedded(msg.into())
}

/// Finds binaries as documented in the module header. `cache_dir` receives `pgserver`
/// when it must be installed.
pub fn locate(pg_bin: Option<&Path>, cache_dir: &Path, pgserver_version: &str) -> Result<PgBinaries, DbError> {
    if let Some(dir) = pg_bin {
        return check(dir).map_err(|e| embedded_err(format!("AEGIS_PG_BIN `{}`: {e}", dir.display())));
    }
    if let Some(dir) = on_path("pg_ctl") {
        match check(&dir) {
            Ok(found) => return Ok(found),
            Err(reason) => tracing::info!(dir = %dir.display(), %reason, "PostgreSQL on PATH not usable"),
        }
    }
    let install = pgserver_dir(cache_dir, pgserver_version);
    let bin = install.join("pgserver/pginstall/bin");
    if !bin.join("postgres").exists() {
        install_pgserver(&install, pgserver_version)?;
    }
    check(&bin).map_err(|e| embedded_err(format!("pgserver {pgserver_version} in `{}`: {e}", install.display())))
}

/// Where a `pgserver` release is (or will be) installed.
pub fn pgserver_dir(cache_dir: &Path, version: &str) -> PathBuf {
    cache_dir.join(format!("pgserver-{version}"))
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| dir.join(program).is_file()).map(|dir| {
        // Follow a symlinked program to its real directory (e.g. /usr/local/bin/pg_ctl).
        std::fs::canonicalize(dir.join(program)).ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or(dir)
    })
}

/// Checks that `dir` holds PostgreSQL 16 with pgvector >= 0.6.
fn check(dir: &Path) -> Result<PgBinaries, String> {
    for program in ["postgres", "pg_ctl", "initdb"] {
        if !dir.join(program).is_file() {
            return Err(format!("`{program}` is missing"));
        }
    }
    let out = Command::new(dir.join("postgres"))
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run postgres --version: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(2).unwrap_or_default().to_owned();
    if !version.starts_with("16.") && version != "16" {
        return Err(format!("PostgreSQL 16 is required, found `{}`", text.trim()));
    }
    let share = share_dir(dir).ok_or("cannot find the share directory")?;
    let control = share.join("extension/vector.control");
    let control_text =
        std::fs::read_to_string(&control).map_err(|_| "the pgvector extension is not installed".to_owned())?;
    let vector_version = control_text
        .lines()
        .find_map(|l| l.strip_prefix("default_version"))
        .map(|v| v.trim_matches(|c: char| c == '=' || c == '\'' || c.is_whitespace()).to_owned())
        .unwrap_or_default();
    if !version_at_least(&vector_version, (0, 6)) {
        return Err(format!("pgvector >= 0.6 is required, found `{vector_version}`"));
    }
    Ok(PgBinaries { bin_dir: dir.to_path_buf(), version, vector_version })
}

fn share_dir(bin: &Path) -> Option<PathBuf> {
    let pg_config = bin.join("pg_config");
    if pg_config.is_file()
        && let Ok(out) = Command::new(&pg_config).arg("--sharedir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.is_dir() {
            return Some(dir);
        }
    }
    let parent = bin.parent()?;
    [parent.join("share/postgresql"), parent.join("share")].into_iter().find(|d| d.join("extension").is_dir())
}

fn version_at_least(version: &str, min: (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= min
}

/// Installs the `pgserver` wheel with pip into `target` (a wheel of binaries: it does not
/// need to match the local Python, so pip is told the platform explicitly).
fn install_pgserver(target: &Path, version: &str) -> Result<(), DbError> {
    let parent = target.parent().ok_or_else(|| embedded_err("cache directory has no parent"))?;
    std::fs::create_dir_all(parent).map_err(|e| embedded_err(format!("cannot create `{}`: {e}", parent.display())))?;
    let staging = parent.join(format!(".pgserver-{version}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    tracing::info!(target = %target.display(), "installing PostgreSQL 16 + pgvector (pgserver {version}) with pip");
    let python = ["python3", "python"].into_iter().find(|p| on_path(p).is_some()).ok_or_else(|| {
        embedded_err("no PostgreSQL 16 with pgvector found, and no python3 to install `pgserver`: set AEGIS_PG_BIN or database.url")
    })?;
    let output = Command::new(python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:"])
        .args(["--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--implementation", "cp"])
        .arg("--target")
        .arg(&staging)
        .arg(format!("pgserver=={version}"))
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .output()
        .map_err(|e| embedded_err(format!("cannot run pip: {e}")))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(embedded_err(format!(
            "pip could not install pgserver=={version}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    make_world_readable(&staging)?;
    // Another process may have finished first; either copy is complete.
    match std::fs::rename(&staging, target) {
        Ok(()) => Ok(()),
        Err(_) if target.join("pgserver/pginstall/bin/postgres").exists() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(())
        }
        Err(e) => Err(embedded_err(format!("cannot move pgserver into `{}`: {e}", target.display()))),
    }
}

/// Makes a tree readable (and directories and executables traversable) by other users, so
/// a dedicated PostgreSQL system user can run the binaries.
pub(crate) fn make_world_readable(root: &Path) -> Result<(), DbError> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| embedded_err(format!("`{}`: {e}", path.display())))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        let wanted = if meta.is_dir() || mode & 0o100 != 0 { mode | 0o055 } else { mode | 0o044 };
        if wanted != mode {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wanted))
                .map_err(|e| embedded_err(format!("chmod `{}`: {e}", path.display())))?;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(|e| embedded_err(format!("`{}`: {e}", path.display())))? {
                stack.push(entry.map_err(|e| embedded_err(e.to_string()))?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare() {
        assert!(version_at_least("0.6.2", (0, 6)));
        assert!(version_at_least("0.7.0", (0, 6)));
        assert!(version_at_least("1.0", (0, 6)));
        assert!(!version_at_least("0.5.1", (0, 6)));
        assert!(!version_at_least("", (0, 6)));
    }

    #[test]
    fn rejects_a_directory_without_postgres() {
        let err = check(Path::new("/nonexistent")).unwrap_err();
        assert!(err.contains("missing"), "{err}");
    }
}
