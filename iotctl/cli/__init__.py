"""Typer wiring only: one module per command group, thin verbs over the library layer."""
