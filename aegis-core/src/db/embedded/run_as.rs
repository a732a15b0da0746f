//! Running PostgreSQL as a dedicated system user when AEGIS runs as root (PostgreSQL
//! refuses to run as root).

use std::{
    os::unix::{fs::MetadataExt, process::CommandExt},
    path::Path,
    process::Command,
};

use crate::db::DbError;

/// The user PostgreSQL runs as.
#[derive(Debug, Clone)]
pub enum RunAs {
    /// The current user (not root).
    CurrentUser,
    /// A system user, switched to before exec.
    SystemUser {
        /// Its name.
        name: String,
        /// Its uid.
        uid: u32,
        /// Its primary gid.
        gid: u32,
    },
}

impl RunAs {
    /// As root: the system user `name`, created when missing. Otherwise the current user.
    pub fn resolve(name: &str) -> Result<Self, DbError> {
        if !crate::config::running_as_root() {
            return Ok(RunAs::CurrentUser);
        }
        if lookup_user(name).is_none() {
            create_system_user(name)?;
        }
        let (uid, gid) = lookup_user(name)
            .ok_or_else(|| DbError::Embedded(format!("system user `{name}` still missing after useradd")))?;
        Ok(RunAs::SystemUser { name: name.to_owned(), uid, gid })
    }

    /// A command for `program` that runs as this user.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("LC_ALL", "C").env_remove("PGDATA");
        if let RunAs::SystemUser { uid, gid, .. } = self {
            // std drops supplementary groups when root switches uid.
            cmd.uid(*uid).gid(*gid).current_dir("/");
        }
        cmd
    }

    /// Gives `path` to this user (no-op for the current user).
    pub fn chown(&self, path: &Path) -> Result<(), DbError> {
        if let RunAs::SystemUser { uid, gid, .. } = self {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                .map_err(|e| DbError::Embedded(format!("chown `{}`: {e}", path.display())))?;
        }
        Ok(())
    }

    /// Checks that this user can reach `dir` (every ancestor traversable).
    pub fn check_reachable(&self, dir: &Path) -> Result<(), DbError> {
        let RunAs::SystemUser { name, uid, gid } = self else { return Ok(()) };
        let mut current = Some(dir);
        while let Some(path) = current {
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.mode();
                let ok = (meta.uid() == *uid && mode & 0o100 != 0)
                    || (meta.gid() == *gid && mode & 0o010 != 0)
                    || mode & 0o001 != 0;
                if !ok {
                    return Err(DbError::Embedded(format!(
                        "`{}` is not reachable by the PostgreSQL system user `{name}` (directory `{}` is not traversable); \
                         choose a data or cache directory outside it, e.g. --data-dir /var/lib/aegis",
                        dir.display(),
                        path.display()
                    )));
                }
            }
            current = path.parent();
        }
        Ok(())
    }
}

/// (uid, gid) of `name` from `/etc/passwd`.
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
    })
}

fn create_system_user(name: &str) -> Result<(), DbError> {
    tracing::info!(user = name, "creating the PostgreSQL system user");
    let status = Command::new("useradd")
        .args(["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name])
        .status()
        .map_err(|e| DbError::Embedded(format!("cannot run useradd: {e}")))?;
    // Exit 9: another process created it first.
    if !status.success() && status.code() != Some(9) {
        return Err(DbError::Embedded(format!("useradd {name} failed with {status}")));
    }
    Ok(())
}
