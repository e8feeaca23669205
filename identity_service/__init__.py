"""The Tecken identity service: OIDC sign-in, users, permissions and API tokens."""
