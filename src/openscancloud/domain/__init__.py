"""Business rules with no HTTP and no SQL: tokens, credit, project lifecycle, names, zip checks, the service
that combines them. Persistence is reached only through the `Repository` protocol (implemented in `db/`)."""
