"""The trading platform's side door: its keys, and the projects it sends us."""
