"""A project's committee at the edge (evaluation/committee/): projects and draws, call-ups,
task QR codes and sign-in, the in-person path, deliberation and the report."""
