"""AEGIS: a multi-tenant AI agent platform (Python bindings over aegis-core)."""

from ._aegis import (
    AegisError,
    AgentError,
    AuthError,
    ChatReply,
    ConfigError,
    DatabaseError,
    ModelError,
    Platform,
    Tenant,
    TenantError,
)

__all__ = [
    "AegisError",
    "AgentError",
    "AuthError",
    "ChatReply",
    "ConfigError",
    "DatabaseError",
    "ModelError",
    "Platform",
    "Tenant",
    "TenantError",
]
