"""Database layer: connections, edition detection, versioned migrations."""
