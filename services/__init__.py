"""Long-running services (each its own package, entry point and env-var configuration). They never import the CLI."""
