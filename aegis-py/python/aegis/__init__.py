"""AEGIS: a multi-tenant AI agent platform (Python bindings over aegis-core)."""

from ._aegis import AegisError, ConfigError, DatabaseError, Platform, Tenant, TenantError

__all__ = ["AegisError", "ConfigError", "DatabaseError", "Platform", "Tenant", "TenantError"]
