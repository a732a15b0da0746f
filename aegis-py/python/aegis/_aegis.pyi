from typing import List, Optional, Tuple

class AegisError(Exception): ...
class ConfigError(AegisError): ...
class DatabaseError(AegisError): ...
class TenantError(AegisError): ...
class AuthError(AegisError): ...
class ModelError(AegisError): ...
class AgentError(AegisError): ...

class Tenant:
    id: str
    name: str
    tier: str
    schema_name: str
    role_name: str
    schema_version: int

class ChatReply:
    run_id: str
    conversation_id: str
    agent: Optional[str]
    text: str
    outcome: str
    replayed: bool
    citations: List[Tuple[str, str]]

class Platform:
    def __init__(
        self,
        database_url: Optional[str] = None,
        data_dir: Optional[str] = None,
        config_file: Optional[str] = None,
    ) -> None: ...
    def list_tenants(self) -> List[Tenant]: ...
    def chat(
        self,
        tenant: str,
        message: str,
        agent: Optional[str] = None,
        thread: str = "python",
        source_id: Optional[str] = None,
    ) -> ChatReply: ...
