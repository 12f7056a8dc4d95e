"""Proving who is at the phone: face templates, consent, face checks, the in-person path."""
