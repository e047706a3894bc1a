"""Deployments: Terraform (``terraform``), Ansible (``ansible``) and the VM / AKS flows built on them.

The library layer: no typer, no rich. Each step raises iotctl's typed errors with one-sentence messages and returns
data the CLI renders.
"""
