"""`tenants:` in a migration file: one migration run over many tenants (see migration_dags/tenants.py).

    tenants: "tenant_*"                          # every schema matching, in the target database
    tenants:                                     # or one database per tenant
      - {url_env: ACME_DATABASE_URL}             #   named acme (the variable, less _DATABASE_URL)
      - {url_env: GLOBEX_DB, name: globex}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, field_validator, model_validator

from .problems import problem
from .types import Identifier, SpecModel, Text

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_PATTERN = re.compile(r"^[a-z_][a-z0-9_*]{0,62}$")
_TENANT_NAME = re.compile(r"^[a-z0-9_]{1,40}$")


@dataclass(frozen=True)
class TenantDatabase:
    name: str
    url_env: str


@dataclass(frozen=True)
class Tenants:
    """What the file declares: a schema pattern, or databases (exactly one of them)."""

    schema_pattern: str | None = None
    databases: tuple[TenantDatabase, ...] = ()


class TenantDatabaseSpec(SpecModel):
    """One tenant's database, by the environment variable holding its URL."""

    url_env: Text
    name: Identifier | None = None
    """The tenant's name (lower_snake_case); default: the variable's name in lower case without
    a trailing _DATABASE_URL or _URL."""

    @field_validator("url_env")
    @classmethod
    def _environment_variable(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise problem("must be an environment variable name such as ACME_DATABASE_URL")
        return value

    @field_validator("name")
    @classmethod
    def _tenant_name(cls, value: str | None) -> str | None:
        if value is not None and not _TENANT_NAME.match(value):
            raise problem("must be lower_snake_case, at most 40 characters")
        return value

    def tenant(self) -> TenantDatabase:
        name = self.name or re.sub(r"(_DATABASE)?_URL$", "", self.url_env).lower()
        return TenantDatabase(name, self.url_env)


def _tenants(value: Any) -> Any:
    if isinstance(value, str):
        return {"schemas": value}
    if isinstance(value, list):
        return {"databases": value}
    raise problem("must be a schema pattern such as 'tenant_*' or a list of databases "
                  "[{url_env: ACME_DATABASE_URL}, ...]")


class TenantsSection(SpecModel):
    schemas: str | None = None
    databases: list[TenantDatabaseSpec] | None = None

    @field_validator("schemas")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None and (not _PATTERN.match(value) or "*" not in value):
            raise problem("must be a schema pattern of lower-case letters, digits, _ and *, "
                          "such as 'tenant_*'")
        return value

    @model_validator(mode="after")
    def _distinct_names(self) -> "TenantsSection":
        names = [d.tenant().name for d in self.databases or []]
        if not self.schemas and not names:
            raise problem("must name at least one tenant database")
        for i, name in enumerate(names):
            if name in names[:i]:
                raise problem(f"two tenants are named {name!r}; give one a name:", at=f"[{i}]")
        return self

    def tenants(self) -> Tenants:
        return Tenants(self.schemas, tuple(d.tenant() for d in self.databases or []))


TenantsField = Annotated[
    TenantsSection | None,
    BeforeValidator(_tenants, json_schema_input_type=str | list[TenantDatabaseSpec]),
]
