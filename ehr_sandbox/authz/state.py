"""Everything one authorization server instance holds, kept on the Flask app."""

from __future__ import annotations

import dataclasses

from joserfc.jwk import RSAKey

from .config import AuthzConfig
from .directory import Directory
from .server import SmartAuthorizationServer
from .storage import MemoryStore


@dataclasses.dataclass
class AuthzState:
    """Config, signing key, storage, authlib server and the FHIR directory of one instance."""

    config: AuthzConfig
    key: RSAKey
    store: MemoryStore
    server: SmartAuthorizationServer
    directory: Directory
