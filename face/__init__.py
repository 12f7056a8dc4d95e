"""Face vision library: images in, decisions out. No database, no HTTP."""
