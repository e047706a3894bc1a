"""Deploying the platform to hosts: the library layer under ``iotctl deploy``.

- :mod:`iotctl.deploy.ansible` runs the playbook in ``infra/ansible`` through ansible-runner and returns a typed
  result (per-host counts, the failed tasks), raising typed errors.
- :mod:`iotctl.deploy.bundle` builds the application bundle the playbook installs: iotctl's wheel and every
  dependency's wheel for the host's CPU and Python, so the host installs offline.
- :mod:`iotctl.deploy.secrets` creates an environment's secret files and TLS certificates when missing.

Nothing here imports typer or rich; heavy imports (ansible_runner) happen inside the functions.
"""
