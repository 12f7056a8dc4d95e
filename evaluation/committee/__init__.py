"""A project's committee: the project, its draw and proof, QR codes, sign-in, scoring, report."""
