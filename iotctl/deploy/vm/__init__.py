"""``iotctl deploy vm``: the whole platform on one host, from an Azure subscription (or a host you have) to a
registered environment.

The flow (:func:`deploy`), each step safe to repeat:

1. **Terraform** (``infra/terraform/vm``, through :class:`~iotctl.deploy.terraform.TerraformRoot`): plan with the
   operator's public address as the only SSH source (detected, or ``ssh_from``), show the plan through the
   ``confirm`` callback, apply the saved plan. A plan without changes applies nothing.
   Skipped with a :class:`HostTarget` given (``--host USER@ADDR``): an existing Debian 12 / Ubuntu 24.04 host.
2. **Ansible** (``infra/ansible/site.yml``, through :func:`iotctl.deploy.ansible.converge`) against the VM from the
   outputs (admin user, FQDN, the operator's SSH key; the host firewall from ``allowed_inbound``; the data disk's
   LUN), with the environment's secrets and certificates made by :func:`iotctl.deploy.secrets.ensure_secrets`.
3. **End-to-end check** (:func:`check`): a throw-away device made through the broker's dynamic security (as
   ``admin``, over TLS) publishes one reading over TLS; the operator account (what ``tail`` uses) must receive it,
   and a query run on the host over the same connection Ansible uses must find it in the database. The database is
   read over SSH, not over the network, because PostgreSQL listens on the host's loopback only (nothing but 8883 and
   443 is exposed); the config server is not the judge because it does not serve readings. The device's broker
   client and role are deleted afterwards; its registry row stays retired with the one reading, as a record.
4. **Register** the environment (kind ``vm``): broker FQDN and TLS port with the environment's CA, the config
   server's HTTPS URL, the operator's credential files (0600) under ``<state_dir>/environments/<name>/``.

Everything for one deployment lives in ``<state_dir>/deploy/vm/<name>/`` (0700): ``terraform/`` (state, plans,
the 0600 var file), ``secrets/`` (every secret and certificate the playbook installs, 0600; the CA's key in
``secrets/pki/``), ``bundles/``, ``known_hosts`` and ``deployment.json`` (the target and ports, no secret).

No typer or rich here: progress goes to the ``progress`` callback, failures are iotctl's typed errors.
"""

from iotctl.deploy.vm.flow import (  # noqa: F401 - the package's interface (what other modules import)
    DeployResult,
    deploy,
    destroy,
    plan,
    status,
)
from iotctl.deploy.vm.steps import (  # noqa: F401 - the package's interface (what other modules import)
    CheckResult,
    check,
    configure,
    ensure_secrets,
    playbook_variables,
    ports,
    psql,
    public_key,
    register,
    run_on_host,
    target_from_outputs,
    terraform_root,
    terraform_source,
    terraform_variables,
)
from iotctl.deploy.vm.target import (  # noqa: F401 - the package's interface (what other modules import)
    AZURE_DATA_DEVICE,
    CHECK_DEVICE_PREFIX,
    DEFAULT_PORTS,
    HOST_ALIAS,
    IP_ECHO_ENV,
    IP_ECHO_URLS,
    KIND,
    ROOT,
    SERVICES,
    AzureOptions,
    Deployment,
    HostTarget,
    Progress,
    check_cidr,
    detect_operator_cidr,
    operator_cidr_for,
    validate_name,
)
