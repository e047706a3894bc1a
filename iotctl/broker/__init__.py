"""Broker identity: accounts, hashed passwords, ACLs, generated Mosquitto files."""
