"""Documents to sign: upload, signer slots, revisions, and where their bytes live."""
