#!/usr/bin/python
# Manages one client (account) of Mosquitto's dynamic security plugin over $CONTROL/dynamic-security/v1.

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.iots6_dynsec import DynsecClient, DynsecError, login_works

DOCUMENTATION = r"""
---
module: iots6_dynsec_client
short_description: Create a dynamic security client with a password and roles
description:
  - Talks to a running Mosquitto 2.0 as the admin client. Creates the client, or brings its roles, enabled state
    and password in line. The password is checked by logging in with it (the plugin never returns hashes), and set
    with setClientPassword only when that login fails, so a rotated secret is applied and an unchanged one is not.
requirements: [paho-mqtt (Debian python3-paho-mqtt)]
options:
  username: {description: Client username., type: str, required: true}
  password: {description: Its password (required with state=present)., type: str, no_log: true}
  roles: {description: Role names, all with priority 0., type: list, elements: str, default: []}
  textname: {description: Human-readable name., type: str}
  state: {description: present or absent., type: str, default: present, choices: [present, absent]}
  host: {description: Broker address (a local listener)., type: str, default: 127.0.0.1}
  port: {description: Broker port., type: int, default: 1883}
  admin_username: {description: Admin client., type: str, default: admin}
  admin_password: {description: Its password., type: str, required: true, no_log: true}
"""


def main():
    module = AnsibleModule(
        argument_spec={
            "username": {"type": "str", "required": True},
            "password": {"type": "str", "no_log": True},
            "roles": {"type": "list", "elements": "str", "default": []},
            "textname": {"type": "str"},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            "host": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 1883},
            "admin_username": {"type": "str", "default": "admin"},
            "admin_password": {"type": "str", "required": True, "no_log": True},
        },
        required_if=[("state", "present", ["password"])],
        supports_check_mode=True,
    )
    p = module.params
    username = p["username"]
    actions = []
    try:
        with DynsecClient(p["host"], p["port"], p["admin_username"], p["admin_password"]) as dynsec:
            found = dynsec.get("getClient", username=username)
            client = (found or {}).get("client")
            if p["state"] == "absent":
                if client is not None:
                    actions.append("deleteClient")
                    if not module.check_mode:
                        dynsec.command("deleteClient", username=username)
            elif client is None:
                actions.append("createClient")
                if not module.check_mode:
                    fields = {
                        "username": username,
                        "password": p["password"],
                        "roles": [{"rolename": r, "priority": 0} for r in p["roles"]],
                    }
                    if p["textname"]:
                        fields["textname"] = p["textname"]
                    dynsec.command("createClient", **fields)
            else:
                present = sorted(r["rolename"] for r in client.get("roles", []))
                if present != sorted(p["roles"]):
                    actions.append("modifyClient roles")
                    if not module.check_mode:
                        dynsec.command(
                            "modifyClient",
                            username=username,
                            roles=[{"rolename": r, "priority": 0} for r in p["roles"]],
                        )
                if client.get("disabled"):
                    actions.append("enableClient")
                    if not module.check_mode:
                        dynsec.command("enableClient", username=username)
                if not login_works(p["host"], p["port"], username, p["password"]):
                    actions.append("setClientPassword")
                    if not module.check_mode:
                        dynsec.command("setClientPassword", username=username, password=p["password"])
    except DynsecError as exc:
        module.fail_json(msg=f"Client `{username}`: {exc}.")
    module.exit_json(changed=bool(actions), actions=actions)


if __name__ == "__main__":
    main()
