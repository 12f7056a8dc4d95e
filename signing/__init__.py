"""Keys and cryptography: key custody, field encryption, (later) certificates and PDF signing."""
