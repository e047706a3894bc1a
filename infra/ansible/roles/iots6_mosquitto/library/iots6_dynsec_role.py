#!/usr/bin/python
# Manages one role of Mosquitto's dynamic security plugin over $CONTROL/dynamic-security/v1.

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.iots6_dynsec import DynsecClient, DynsecError

DOCUMENTATION = r"""
---
module: iots6_dynsec_role
short_description: Create a dynamic security role with exactly the given ACLs
description:
  - Talks to a running Mosquitto 2.0 as the admin client. Creates the role, or adds and removes ACLs until the role
    has exactly I(acls). Idempotent; reports changed only when the broker's state changed.
requirements: [paho-mqtt (Debian python3-paho-mqtt)]
options:
  name: {description: Role name., type: str, required: true}
  textname: {description: Human-readable name shown by the plugin., type: str}
  acls:
    description: The role's ACLs.
    type: list
    elements: dict
    default: []
    suboptions:
      acltype:
        description: >-
          publishClientSend, publishClientReceive, subscribeLiteral, subscribePattern, unsubscribeLiteral
          or unsubscribePattern.
        type: str
        required: true
      topic: {description: Topic filter (may use %c and %u)., type: str, required: true}
      allow: {description: Allow (true) or deny (false)., type: bool, default: true}
      priority: {description: Higher priorities are checked first., type: int, default: 0}
  state: {description: present or absent., type: str, default: present, choices: [present, absent]}
  host: {description: Broker address (a local listener)., type: str, default: 127.0.0.1}
  port: {description: Broker port., type: int, default: 1883}
  admin_username: {description: Admin client., type: str, default: admin}
  admin_password: {description: Its password., type: str, required: true, no_log: true}
"""
ACL_TYPES = [
    "publishClientSend",
    "publishClientReceive",
    "subscribeLiteral",
    "subscribePattern",
    "unsubscribeLiteral",
    "unsubscribePattern",
]


def _key(acl):
    return (acl["acltype"], acl["topic"], bool(acl.get("allow", True)), int(acl.get("priority", 0)))


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "textname": {"type": "str"},
            "acls": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "acltype": {"type": "str", "required": True, "choices": ACL_TYPES},
                    "topic": {"type": "str", "required": True},
                    "allow": {"type": "bool", "default": True},
                    "priority": {"type": "int", "default": 0},
                },
            },
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            "host": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 1883},
            "admin_username": {"type": "str", "default": "admin"},
            "admin_password": {"type": "str", "required": True, "no_log": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    name = p["name"]
    wanted = {_key(a) for a in p["acls"]}
    actions = []
    try:
        with DynsecClient(p["host"], p["port"], p["admin_username"], p["admin_password"]) as dynsec:
            found = dynsec.get("getRole", rolename=name)
            role = (found or {}).get("role")
            if p["state"] == "absent":
                if role is not None:
                    actions.append("deleteRole")
                    if not module.check_mode:
                        dynsec.command("deleteRole", rolename=name)
            elif role is None:
                actions.append("createRole")
                if not module.check_mode:
                    fields = {
                        "rolename": name,
                        "acls": [
                            dict(zip(("acltype", "topic", "allow", "priority"), k, strict=False))
                            for k in sorted(wanted)
                        ],
                    }
                    if p["textname"]:
                        fields["textname"] = p["textname"]
                    dynsec.command("createRole", **fields)
            else:
                present = {_key(a) for a in role.get("acls", [])}
                for acltype, topic, _allow, _prio in sorted(present - wanted):
                    actions.append(f"removeRoleACL {acltype} {topic}")
                    if not module.check_mode:
                        dynsec.command("removeRoleACL", rolename=name, acltype=acltype, topic=topic)
                for acltype, topic, allow, priority in sorted(wanted - present):
                    actions.append(f"addRoleACL {acltype} {topic}")
                    if not module.check_mode:
                        dynsec.command(
                            "addRoleACL", rolename=name, acltype=acltype, topic=topic, allow=allow, priority=priority
                        )
    except DynsecError as exc:
        module.fail_json(msg=f"Role `{name}`: {exc}.")
    module.exit_json(changed=bool(actions), actions=actions)


if __name__ == "__main__":
    main()
