"""Named environments: where a platform runs and how iotctl reaches it, like kubectl contexts.

An environment holds the broker's address (and TLS CA), the config server's URL, how to reach the database for
migrations (and, on the local stacks, the device registry), where the operator's credentials are, and the
platform's kind:

==========  ===========================================================================================
``local``   the native stack of ``state_dir`` (built in, the default; also ``kind`` of a second stack)
``docker``  the Docker Compose stack in ``<state_dir>/docker`` (built in as ``docker``)
``vm``      a VM deployment (``deploy vm`` registers it); devices are registered through its config server
``aks``     an AKS namespace (``deploy aks`` registers it); credentials may come from Key Vault, the
            database may be reachable only through a migration Job in the cluster, devices are registered
            through its config server
==========  ===========================================================================================

The built-in ``local`` and ``docker`` environments are derived from the settings (ports, state dir, explicit
``IOTCTL_MQTT_*`` / ``IOTCTL_DATABASE_*`` / ``IOTCTL_CONFIG_*`` values) exactly as before environments existed.
Any other environment is a file, written 0600 by :func:`register_environment`::

    <state_dir>/environments/<name>.toml          what to reach (no secret in it)
    <state_dir>/environments/<name>/              0700: one 0600 file per secret, named as in Key Vault
                                                  (a Key Vault environment, ``keyvault:<uri>``, keeps only the CA
                                                  here and reads the others from its vault when a command needs them)
        mqtt-admin-password                       the broker's dynamic-security `admin` (provisioning)
        mqtt-operator-password                    `svc.operator` (tail)
        config-admin-token                        the config server's admin API (config; the device registry of
                                                  a vm or aks environment)
        postgres-admin-password                   the database user of `database.url` (migrations; the registry
                                                  of a local kind)
        tls-ca-crt                                the CA that signed the broker's (and config server's) certificate
        devices/<id>.json                         credentials of devices provisioned in this environment

A registered environment is complete in itself: the per-value settings (``mqtt_host``, ``database_url`` ...)
do not change it (``iotctl settings`` shows which values it supplies); re-register it to change it.
"""

from iotctl.environments.describe import (  # noqa: F401 - the package's interface (what other modules import)
    PLATFORM_SETTINGS,
    describe_settings,
)
from iotctl.environments.model import (  # noqa: F401 - the package's interface (what other modules import)
    API_REGISTRY_KINDS,
    BUILTIN,
    CA_CERT,
    CONFIG_ADMIN,
    CREDENTIALS_FILES,
    DB_DIRECT,
    DB_JOB,
    DB_PASSWORD,
    KEYVAULT_PREFIX,
    KINDS,
    MQTT_ADMIN,
    MQTT_OPERATOR,
    NAME_PATTERN,
    SECRETS,
    BrokerTarget,
    DatabaseTarget,
    Environment,
)
from iotctl.environments.store import (  # noqa: F401 - the package's interface (what other modules import)
    active,
    builtin,
    db_endpoint,
    environments_dir,
    list_environments,
    load,
    mqtt_endpoint,
    register_environment,
    register_stack,
    remove_environment,
    secrets_from_dir,
    validate_name,
)
