#!/usr/bin/python
# Creates Mosquitto's dynamic-security.json with its admin client, once, before the broker first starts.

from __future__ import annotations

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.iots6_dynsec import initial_config

DOCUMENTATION = r"""
---
module: iots6_dynsec_init
short_description: Create the dynamic security plugin's state file with its admin client
description:
  - Writes the file that Mosquitto's dynamic security plugin loads at start (as C(mosquitto_ctrl dynsec init) does),
    holding one admin client whose password is stored as a salted PBKDF2-SHA512 hash.
  - Does nothing when the file exists: from then on the broker owns it and every change goes through
    C($CONTROL/dynamic-security/v1) (see iots6_dynsec_client), so the password never appears on a command line.
options:
  path:
    description: Path of dynamic-security.json.
    type: path
    required: true
  admin_username:
    description: Username of the admin client.
    type: str
    default: admin
  admin_password:
    description: Its password.
    type: str
    required: true
    no_log: true
extends_documentation_fragment: [files]
"""

EXAMPLES = r"""
- name: Create the dynamic security state with the admin client
  iots6_dynsec_init:
    path: /srv/iots6/mosquitto/dynamic-security.json
    admin_password: "{{ lookup('ansible.builtin.file', 'secrets/mqtt-admin-password') }}"
    owner: mosquitto
    mode: "0600"
"""


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "admin_username": {"type": "str", "default": "admin"},
            "admin_password": {"type": "str", "required": True, "no_log": True},
        },
        add_file_common_args=True,
        supports_check_mode=True,
    )
    path = module.params["path"]
    changed = False
    if not os.path.exists(path):
        changed = True
        if not module.check_mode:
            config = initial_config(module.params["admin_username"], module.params["admin_password"])
            tmp = path + ".tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(config, fh, indent=2)
            os.replace(tmp, path)
    if os.path.exists(path):
        file_args = module.load_file_common_arguments(module.params)
        changed = module.set_fs_attributes_if_different(file_args, changed)
    module.exit_json(changed=changed, path=path)


if __name__ == "__main__":
    main()
