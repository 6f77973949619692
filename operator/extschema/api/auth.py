"""Bearer tokens and scopes (``--tokens FILE``).

The file is YAML, ``{tokens: [{name, sha256, scopes}]}``: ``sha256`` is the hex SHA-256 of the token a
client sends as ``Authorization: Bearer TOKEN`` (the file never holds a token itself); scopes are
``PLUGIN:read``, ``PLUGIN:write`` (implies read) and ``admin`` (everything). A missing or unknown token
is 401, a token without the scope 403. Without a tokens file every read is allowed and no write is:
the server then binds only to loopback (checked in :mod:`extschema.api.app`).
"""

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Literal

import pydantic
import yaml
from fastapi import Request

from extschema.api.problems import ApiProblem
from extschema.problems import ProblemError

Access = Literal["read", "write", "admin"]
ADMIN = "admin"
_SCOPE = re.compile(r"^(admin|[a-z][a-z0-9_]*:(read|write))$")
_HEX = re.compile(r"^[0-9a-f]{64}$")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="extschema"'}


class _Token(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    name: str = pydantic.Field(min_length=1)
    sha256: str
    scopes: list[str]

    @pydantic.field_validator("sha256")
    @classmethod
    def _digest(cls, value: str) -> str:
        if not _HEX.fullmatch(value.lower()):
            raise ValueError("must be the 64 hex digits of the token's SHA-256 (sha256sum)")
        return value.lower()

    @pydantic.field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not _SCOPE.fullmatch(s)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a scope: use PLUGIN:read, PLUGIN:write or admin")
        return value


class _File(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    tokens: list[_Token]


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who asks: a token's name and scopes, or the anonymous reader of a server without tokens."""

    name: str
    scopes: frozenset[str]
    anonymous: bool = False

    def allows(self, plugin_id: str, access: Access) -> bool:
        if self.anonymous:
            return access == "read"
        if ADMIN in self.scopes:
            return True
        if access == "admin":
            return False
        return f"{plugin_id}:write" in self.scopes or (access == "read" and f"{plugin_id}:read" in self.scopes)


ANONYMOUS = Principal("anonymous", frozenset(), anonymous=True)


def _usage(message: str) -> ProblemError:
    return ProblemError.one("ES708", "--tokens", message, kind="usage")


class Tokens:
    """The tokens a server accepts, by digest (None: no tokens file, reads only)."""

    def __init__(self, by_digest: dict[str, Principal] | None) -> None:
        self._by_digest = by_digest

    @property
    def enabled(self) -> bool:
        return self._by_digest is not None

    @classmethod
    def load(cls, path: str | None) -> "Tokens":
        if path is None:
            return cls(None)
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise _usage(f"cannot read the tokens file {path}: {error}") from None
        except yaml.YAMLError as error:
            raise _usage(f"the tokens file {path} is not valid YAML: {str(error).splitlines()[0]}") from None
        try:
            parsed = _File.model_validate(data)
        except pydantic.ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the document"
            raise _usage(
                f"the tokens file {path}: {where}: {first['msg']}; "
                "expected {tokens: [{name: NAME, sha256: HEX, scopes: [PLUGIN:read|PLUGIN:write|admin]}]}"
            ) from None
        by_digest: dict[str, Principal] = {}
        for token in parsed.tokens:
            if token.sha256 in by_digest:
                raise _usage(
                    f"the tokens file {path}: tokens {by_digest[token.sha256].name!r} and {token.name!r} "
                    "have the same sha256; give each client its own token"
                )
            by_digest[token.sha256] = Principal(token.name, frozenset(token.scopes))
        return cls(by_digest)

    def principal(self, request: Request) -> Principal:
        """Who sent *request* (401 without a known token when tokens are enabled)."""
        if self._by_digest is None:
            return ANONYMOUS
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiProblem.one(
                401, "ES706", "header.authorization", "send Authorization: Bearer TOKEN", headers=_CHALLENGE
            )
        digest = hashlib.sha256(token.strip().encode()).hexdigest()
        principal = self._by_digest.get(digest)  # a digest, not the secret: a dict lookup leaks nothing
        if principal is not None:
            return principal
        raise ApiProblem.one(
            401, "ES706", "header.authorization", "the token is not in the server's tokens file", headers=_CHALLENGE
        )

    def require(self, request: Request, plugin_id: str, access: Access) -> Principal:
        """The principal of *request*, allowed *access* to *plugin_id* (401/403 otherwise)."""
        principal = self.principal(request)
        if principal.allows(plugin_id, access):
            return principal
        if principal.anonymous:
            raise ApiProblem.one(
                403,
                "ES716",
                "request",
                "this server runs without --tokens and serves reads only; start it with --tokens FILE to write",
            )
        scope = ADMIN if access == "admin" else f"{plugin_id}:{access}"
        raise ApiProblem.one(
            403, "ES707", "header.authorization", f"the token {principal.name!r} lacks the scope {scope!r}"
        )
