"""What the server publishes: SMART configuration, OpenID configuration, style."""

from __future__ import annotations

from typing import Any

from .config import AuthzConfig
from .grants import ASSERTION_ALGS
from .keys import SIGNING_ALG
from .scopes import SCOPES_SUPPORTED

CAPABILITIES = [
    "launch-ehr",
    "launch-standalone",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-passthrough-banner",
    "context-passthrough-style",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-patient",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
    "sso-openid-connect",
    "authorize-post",
]

TOKEN_AUTH_METHODS_SUPPORTED = [
    "private_key_jwt",
    "client_secret_basic",
    "client_secret_post",
    "none",
]

#: client_credentials serves SMART Backend Services clients (private_key_jwt, system/ scopes).
GRANT_TYPES_SUPPORTED = ["authorization_code", "refresh_token", "client_credentials"]

#: The colours behind ``smart_style_url`` (SMART styling, a small JSON document).
STYLE = {
    "color_background": "#edeae3",
    "color_error": "#9e2d2d",
    "color_highlight": "#69b5ce",
    "color_modal_backdrop": "",
    "color_success": "#498e49",
    "color_text": "#303030",
    "dim_border_radius": "6px",
    "dim_font_size": "13px",
    "dim_spacing_size": "20px",
    "font_family_body": "Georgia, Times, 'Times New Roman', serif",
    "font_family_heading": "'HelveticaNeue-Light', Helvetica, Arial, 'Lucida Grande', sans-serif",
}


def smart_configuration(issuer: str) -> dict[str, Any]:
    """The ``.well-known/smart-configuration`` document (SMART App Launch 2.2)."""
    issuer = issuer.rstrip("/")
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/jwks.json",
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "grant_types_supported": GRANT_TYPES_SUPPORTED,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS_SUPPORTED,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "scopes_supported": SCOPES_SUPPORTED,
        "capabilities": CAPABILITIES,
    }


def openid_configuration(config: AuthzConfig) -> dict[str, Any]:
    """The OpenID Provider metadata (discovery for sso-openid-connect)."""
    issuer = config.issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks.json",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [SIGNING_ALG],
        "scopes_supported": ["openid", "fhirUser", "profile"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser", "name"],
        "token_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS_SUPPORTED,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": GRANT_TYPES_SUPPORTED,
    }
