//! The crate-wide error type: one enum per module, gathered here with `#[from]`.

use crate::{
    agents::AgentError, audit::AuditError, auth::AuthError, config::ConfigError, db::DbError, jobs::JobError,
    llm::ModelError, tenancy::TenancyError,
};

/// Every error `aegis-core` returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration could not be loaded or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database, its migrations or the embedded cluster failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A tenant operation failed.
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    /// Authentication failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A model call was refused or failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// An agent turn failed.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The audit trail could not be read.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The job queue failed.
    #[error(transparent)]
    Job(#[from] JobError),
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Error::Db(DbError::Sql(err))
    }
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
