# Inbound rules of the single VM's network security group, computed from the operator's choices:
#   8883 (MQTT over TLS) and 443 (HTTPS) to configurable CIDRs, 22 (SSH) only from the operator's address,
#   and an explicit deny of everything else. Plaintext MQTT (1883), PostgreSQL (5432), Grafana's own port (3000)
#   and HTTP (80) are never opened: they have no rule here and the deny rule closes them. No resources.
