"""Tables, engine and sessions, migrations: the bottom layer, which imports nothing of ours."""
