"""Rendering the Docker Compose stack's directory (``iotctl.stack.docker.DockerStack.render``), one file kind per
function: secrets, the broker's seed state and config, certificates, Grafana, Prometheus, the Compose file, .env.

The layout of the directory is described in ``iotctl.stack.docker``.  Nothing here calls Docker.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from iotctl import __version__
from iotctl.broker import dynsec
from iotctl.broker.accounts import ROLE_OPERATOR, AccountStore, service_username
from iotctl.errors import MissingDependency
from iotctl.packaged import grafana_dir
from iotctl.render import render
from iotctl.secretfiles import generate_password, read_secret, write_secret
from iotctl.stack.docker_options import (
    IMAGES,
    SCRAPE_TARGETS,
    SECRET_FILES,
    SERVICE_SECRETS,
    DockerOptions,
    service_environments,
)
from iotctl.stack.layout import DB_NAME, DB_OWNER
from iotctl.stack.mosquitto import BrokerConfig, TlsListener

if TYPE_CHECKING:
    from iotctl.stack.docker import DockerStack

#: Where the container sees the broker's files (compose.yaml.j2 mounts them there).
_DATA, _CERTS = "/mosquitto/data", "/mosquitto/certs"


def render_stack(stack: DockerStack, options: DockerOptions) -> list[Path]:
    """Write (or refresh) every file of the stack directory; returns the files written."""
    options.validate()
    stack.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    stack.secrets_dir.mkdir(exist_ok=True, mode=0o700)
    os.chmod(stack.secrets_dir, 0o700)
    written: list[Path] = []

    passwords = {name: _secret(stack, name) for name in SECRET_FILES if name != "mqtt-probe"}
    written += [stack.secret_file(n) for n in passwords]
    written += _render_broker(stack, options, passwords)
    written += _copy_grafana(stack)
    written.append(_render_prometheus(stack, options))
    written.append(_render_compose(stack, options))
    written.append(_render_env(stack, options, passwords))
    meta = stack.meta_file
    meta.write_text(
        json.dumps({"project": options.project, "topic_base": options.topic_base, "version": __version__}, indent=2)
        + "\n"
    )
    written.append(meta)
    return written


def _secret(stack: DockerStack, name: str) -> str:
    """The existing secret, or a newly generated one written 0600."""
    path = stack.secret_file(name)
    if path.exists():
        return read_secret(path, f"Docker stack secret `{name}`")
    value = generate_password()
    write_secret(path, value + "\n")
    return value


def _render_broker(stack: DockerStack, options: DockerOptions, passwords: dict[str, str]) -> list[Path]:
    """The broker's accounts (seeded, or migrated from the password-file era, once; then the broker's own), the
    health probe's login, the TLS certificate when on, and ``mosquitto.conf``."""
    written = []
    stack.mosquitto_config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    services = {role: passwords[secret] for role, secret in SERVICE_SECRETS.items()}
    legacy = AccountStore(stack.mosquitto_config_dir, options.topic_base)
    if dynsec.write_initial_state(
        stack.broker_state_file, legacy, passwords["mqtt-admin"], options.topic_base, services
    ):
        written.append(stack.broker_state_file)

    # mosquitto_sub reads default options from $XDG_CONFIG_HOME/mosquitto_sub: the health probe's login.
    probe = f"-u {service_username(ROLE_OPERATOR)}\n-P {passwords['mqtt-operator']}\n"
    write_secret(stack.secret_file("mqtt-probe"), probe)
    written.append(stack.secret_file("mqtt-probe"))

    tls = None
    if options.mqtt_tls:
        written += _ensure_certificates(stack, options)
        tls = TlsListener(8883, Path(_CERTS) / "server.crt", Path(_CERTS) / "server.key", "0.0.0.0")
    conf = stack.mosquitto_config_dir / "mosquitto.conf"
    conf.write_text(
        BrokerConfig(
            port=1883,
            bind="0.0.0.0",
            dynsec_plugin=dynsec.IMAGE_PLUGIN_PATH,
            dynsec_state=f"{_DATA}/{dynsec.STATE_FILE}",
            persistence_dir=_DATA,
            tls=tls,
            run_as_user=None,  # the container already runs as the stack owner (compose `user:`)
        ).render()
    )
    written.append(conf)
    return written


def _ensure_certificates(stack: DockerStack, options: DockerOptions) -> list[Path]:
    """The broker's TLS certificate in ``mosquitto/certs``, issued by the stack's CA (``pki/``), for
    localhost, 127.0.0.1 and ``mqtt_tls_hosts``; reused while still good."""
    from iotctl import pki

    ca = pki.ensure_ca(stack.directory / "pki", common_name=f"iots6 Docker stack CA ({options.project})")
    names = ["localhost", *options.mqtt_tls_hosts]
    dns = [n for n in names if not _is_ip(n)]
    ips = ["127.0.0.1", *(n for n in names if _is_ip(n))]
    certs = stack.directory / "mosquitto" / "certs"
    pair = pki.issue_server_cert(ca, certs, "server", dns_names=dns, ip_addresses=ips)
    # Mosquitto runs as the stack owner in the container and reads them through a read-only bind mount.
    return [ca.cert, pair.cert, pair.key]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _render_prometheus(stack: DockerStack, options: DockerOptions) -> Path:
    """The scrape configuration, bind-mounted read-only into the `prometheus` service (no secret in it)."""
    target = stack.prometheus_config
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        render(
            "docker/prometheus.yml.j2",
            project=options.project,
            scrape_interval_s=options.scrape_interval_s,
            targets=SCRAPE_TARGETS,
        )
    )
    # Prometheus runs as its image's `nobody` user and reads this through a bind mount: world-readable.
    os.chmod(target.parent, 0o755)
    os.chmod(target, 0o644)
    return target


def _copy_grafana(stack: DockerStack) -> list[Path]:
    source = grafana_dir()
    if not source.is_dir():
        raise MissingDependency(
            f"Grafana provisioning `{source}` is missing; reinstall iotctl (its wheel carries it) or run it from a "
            "checkout of the repository."
        )
    written = []
    for sub in ("provisioning", "dashboards"):
        target = stack.directory / "grafana" / sub
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source / sub, target)
        written += [p for p in target.rglob("*") if p.is_file()]
    # Grafana (uid 472 in its image) reads these via a bind mount: world-readable, they hold no secret.
    for path in (stack.directory / "grafana").rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    os.chmod(stack.directory / "grafana", 0o755)
    return written


def _render_compose(stack: DockerStack, options: DockerOptions) -> Path:
    """``compose.yaml``: no secret in it; the service images are built from ``options.build_context`` (a source
    checkout) or, without one, used as the prebuilt ``iots6/<service>:<version>``."""
    context = {
        "project": options.project,
        "version": __version__,
        "topic_base": options.topic_base,
        "db_user": DB_OWNER,
        "db_name": DB_NAME,
        "images": IMAGES,
        "tls": options.mqtt_tls,
        "build_context": str(options.build_context) if options.build_context else None,
        "environment": service_environments(options.topic_base),
    }
    stack.compose_file.write_text(render("docker/compose.yaml.j2", **context))
    return stack.compose_file


def _render_env(stack: DockerStack, options: DockerOptions, passwords: dict[str, str]) -> Path:
    """``.env`` (0600): ports, bind addresses, the owner's uid/gid and Grafana's two passwords."""
    env = render(
        "docker/env.j2",
        project=options.project,
        version=__version__,
        uid=os.getuid(),
        gid=os.getgid(),
        ports={
            "mqtt": options.mqtt_port,
            "mqtt_bind": options.mqtt_bind,
            "mqtt_tls": options.mqtt_tls_port,
            "mqtt_tls_bind": options.mqtt_tls_bind,
            "pg": options.pg_port,
            "pg_bind": options.pg_bind,
            "config": options.config_port,
            "config_bind": options.config_bind,
            "ingest": options.ingest_port,
            "ingest_bind": options.ingest_bind,
            "grafana": options.grafana_port,
            "grafana_bind": options.grafana_bind,
            "prometheus": options.prometheus_port,
            "prometheus_bind": options.prometheus_bind,
        },
        db_password=passwords["db"],
        grafana_admin_password=passwords["grafana-admin"],
    )
    write_secret(stack.env_file, env)
    return stack.env_file
