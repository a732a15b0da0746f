//! Python bindings for `aegis-core`, built by maturin as `aegis._aegis`.
//!
//! Each class wraps a cheap-to-clone core handle and each method makes one core call,
//! with the GIL released while Rust works.

use std::sync::{Arc, OnceLock};

use aegis_core::{
    Aegis,
    agents::InboundMessage,
    config::{Config, Overrides},
    tenancy::{Caller, TenantId},
};
use pyo3::{create_exception, exceptions::PyException, prelude::*};

create_exception!(_aegis, AegisError, PyException, "Base class of every AEGIS error.");
create_exception!(_aegis, ConfigError, AegisError, "The configuration is invalid.");
create_exception!(_aegis, DatabaseError, AegisError, "The database failed.");
create_exception!(_aegis, TenantError, AegisError, "A tenant operation failed (bad id, unknown tenant, …).");
create_exception!(_aegis, AuthError, AegisError, "An API key was invalid, expired or revoked.");
create_exception!(
    _aegis,
    ModelError,
    AegisError,
    "A model call was denied by policy, over quota, or failed at every provider."
);

create_exception!(_aegis, AgentError, AegisError, "An agent turn failed, or an agent profile is invalid.");

fn to_py(err: aegis_core::Error) -> PyErr {
    let message = err.to_string();
    match err {
        aegis_core::Error::Config(_) => ConfigError::new_err(message),
        aegis_core::Error::Tenancy(_) => TenantError::new_err(message),
        aegis_core::Error::Db(_) | aegis_core::Error::Job(_) => DatabaseError::new_err(message),
        aegis_core::Error::Auth(_) => AuthError::new_err(message),
        aegis_core::Error::Model(_) => ModelError::new_err(message),
        aegis_core::Error::Agent(_) | aegis_core::Error::Audit(_) => AgentError::new_err(message),
    }
}

fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| AegisError::new_err(format!("cannot start the async runtime: {e}")))?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// An AEGIS platform: a database connection plus its services.
#[pyclass(module = "aegis._aegis", frozen)]
struct Platform {
    aegis: Arc<Aegis>,
}

/// A tenant as the platform records it.
#[pyclass(module = "aegis._aegis", frozen, get_all)]
struct Tenant {
    id: String,
    name: String,
    tier: String,
    schema_name: String,
    role_name: String,
    schema_version: i32,
}

#[pymethods]
impl Tenant {
    fn __repr__(&self) -> String {
        format!("Tenant(id={:?}, tier={:?})", self.id, self.tier)
    }
}

/// An agent's answer to one message.
#[pyclass(module = "aegis._aegis", frozen, get_all)]
struct ChatReply {
    run_id: String,
    conversation_id: String,
    agent: Option<String>,
    text: String,
    outcome: String,
    replayed: bool,
    citations: Vec<(String, String)>,
}

#[pymethods]
impl ChatReply {
    fn __repr__(&self) -> String {
        format!("ChatReply(agent={:?}, outcome={:?}, text={:?})", self.agent, self.outcome, self.text)
    }
}

#[pymethods]
impl Platform {
    /// Opens the platform. Without `database_url`, AEGIS starts (or reuses) its embedded
    /// PostgreSQL in `data_dir`.
    #[new]
    #[pyo3(signature = (database_url=None, data_dir=None, config_file=None))]
    fn new(
        py: Python<'_>,
        database_url: Option<String>,
        data_dir: Option<String>,
        config_file: Option<String>,
    ) -> PyResult<Self> {
        let overrides = Overrides { data_dir: data_dir.map(Into::into), database_url };
        let config = Config::load(config_file.as_deref().map(std::path::Path::new), &overrides)
            .map_err(|e| to_py(aegis_core::Error::from(e)))?;
        let rt = runtime()?;
        let aegis = py.detach(|| rt.block_on(Aegis::builder().config(config).build())).map_err(to_py)?;
        Ok(Self { aegis: Arc::new(aegis) })
    }

    /// Sends one message to a tenant's agents and returns the answer. `source_id` makes
    /// a retry safe: the same id returns the stored reply without calling a model again.
    #[pyo3(signature = (tenant, message, agent=None, thread="python", source_id=None))]
    fn chat(
        &self,
        py: Python<'_>,
        tenant: &str,
        message: &str,
        agent: Option<String>,
        thread: &str,
        source_id: Option<String>,
    ) -> PyResult<ChatReply> {
        let rt = runtime()?;
        let aegis = self.aegis.clone();
        let tenant = TenantId::parse(tenant).map_err(|e| to_py(aegis_core::Error::from(e)))?;
        let inbound = InboundMessage {
            channel: "python".into(),
            source_id: source_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            thread: thread.to_owned(),
            sender: "python".into(),
            text: message.to_owned(),
            agent,
            boardroom: None,
        };
        let reply = py
            .detach(|| {
                rt.block_on(async move {
                    let scope = aegis.tenants().scope(&tenant, Caller::local_operator()).await?;
                    Ok::<_, aegis_core::Error>(aegis.agents().handle(&scope, &inbound, None).await?)
                })
            })
            .map_err(to_py)?;
        Ok(ChatReply {
            run_id: reply.run_id.to_string(),
            conversation_id: reply.conversation_id.to_string(),
            agent: reply.agent,
            text: reply.text,
            outcome: reply.outcome,
            replayed: reply.replayed,
            citations: reply.citations.into_iter().map(|c| (c.source_key, c.anchor)).collect(),
        })
    }

    /// Every tenant, by id.
    fn list_tenants(&self, py: Python<'_>) -> PyResult<Vec<Tenant>> {
        let rt = runtime()?;
        let aegis = self.aegis.clone();
        let tenants =
            py.detach(|| rt.block_on(async move { aegis.tenants().list().await })).map_err(|e| to_py(e.into()))?;
        Ok(tenants
            .into_iter()
            .map(|t| Tenant {
                id: t.id,
                name: t.name,
                tier: t.tier.0.to_string(),
                schema_name: t.schema_name,
                role_name: t.role_name,
                schema_version: t.schema_version,
            })
            .collect())
    }
}

/// The native module.
#[pymodule]
fn _aegis(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Platform>()?;
    m.add_class::<Tenant>()?;
    m.add_class::<ChatReply>()?;
    m.add("AegisError", m.py().get_type::<AegisError>())?;
    m.add("ConfigError", m.py().get_type::<ConfigError>())?;
    m.add("DatabaseError", m.py().get_type::<DatabaseError>())?;
    m.add("TenantError", m.py().get_type::<TenantError>())?;
    m.add("AuthError", m.py().get_type::<AuthError>())?;
    m.add("ModelError", m.py().get_type::<ModelError>())?;
    m.add("AgentError", m.py().get_type::<AgentError>())?;
    Ok(())
}
