# Inside the MicroPython interpreter: which keys of each configuration in /data/config-cases.json does the
# firmware keep (iots6.configkeys.clean, what the device applies from a config server answer)?  Prints one JSON
# line: a list, per case, of the kept keys.  Driven by tests/firmware/test_config_mirror.py.
import json

from iots6 import configkeys

with open("/data/config-cases.json") as f:
    cases = json.loads(f.read())
print("KEPT " + json.dumps([sorted(configkeys.clean(doc)) for doc in cases]))
