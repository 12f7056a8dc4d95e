"""HTTP surface: FastAPI app factory, routers, schemas, auth dependencies, error mapping."""
