"""REST API v1 (`/api/v1`): Bearer auth, projects as resources with server-generated IDs, problem+json errors."""
