from typing import List, Optional

class AegisError(Exception): ...
class ConfigError(AegisError): ...
class DatabaseError(AegisError): ...
class TenantError(AegisError): ...

class Tenant:
    id: str
    name: str
    tier: str
    schema_name: str
    role_name: str
    schema_version: int

class Platform:
    def __init__(
        self,
        database_url: Optional[str] = None,
        data_dir: Optional[str] = None,
        config_file: Optional[str] = None,
    ) -> None: ...
    def list_tenants(self) -> List[Tenant]: ...
