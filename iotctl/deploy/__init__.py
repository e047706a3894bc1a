"""Deployments: Terraform (``terraform``), Ansible (``ansible``) and the VM / AKS flows built on them.

The library layer: no typer, no rich. Each step raises iotctl's typed errors with one-sentence messages and returns
data the CLI renders.

- :mod:`iotctl.deploy.terraform` runs a Terraform root per environment through python-terraform.
- :mod:`iotctl.deploy.ansible` runs the playbook in ``infra/ansible`` through ansible-runner and returns a typed
  result (per-host counts, the failed tasks), raising typed errors; heavy imports (ansible_runner) happen inside.
- :mod:`iotctl.deploy.bundle` builds the application bundle the playbook installs: iotctl's wheel and every
  dependency's wheel for the host's CPU and Python, so the host installs offline.
- :mod:`iotctl.deploy.secrets` creates an environment's secret files and TLS certificates when missing.
- :mod:`iotctl.deploy.vm` is ``iotctl deploy vm``: Terraform, then Ansible, then an end-to-end check, then the
  environment is registered.

Nothing here imports typer or rich; heavy imports (ansible_runner) happen inside the functions.
"""
