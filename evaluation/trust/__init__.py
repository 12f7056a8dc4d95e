"""The center's PKI and keys: CAs, credentials, signature activation, seals, checkpoints, TLS."""
