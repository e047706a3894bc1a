"""The platform's secrets in Azure Key Vault: what an environment needs (``catalog``) and how iotctl seeds, lists and
rotates them (``vault``) without a value ever reaching a command line, a log, ``--json`` output or a traceback."""
