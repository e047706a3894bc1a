"""Parts of the simulator below the fleet: the BME280 register map read by the firmware's own driver, and the
CPython shims of MicroPython's ``ssl`` that the firmware's ``make_tls_context`` runs on.  The nodes themselves
(the firmware's MQTT client over TLS included) are tested against a real broker in tests/integration/test_simulate.py.
"""

from __future__ import annotations

import random
import ssl

import pytest

from iotctl import pki
from iotctl.simulate import firmware_path
from iotctl.simulate.bme280chip import DIG_H, DIG_P, DIG_T
from iotctl.simulate.hardware import SimBME280, SimI2C
from iotctl.simulate.sockets import SSL, HostResolver


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_firmware_driver_reads_back_the_simulated_conditions(seed):
    firmware_path()
    from iots6.drivers import bme280

    chip = SimBME280(random.Random(seed))
    driver = bme280.BME280(SimI2C({0x76: chip}), 0x76, sleep_ms=lambda ms: None)
    assert (driver.dig_t, driver.dig_p, driver.dig_h) == (DIG_T, DIG_P, DIG_H)  # the packing, decoded
    readings = []
    for _ in range(20):
        got = driver.read()  # each read is one forced conversion: the room drifts a step
        assert got["temperature"] == pytest.approx(chip.now["temperature"], abs=0.01)
        assert got["pressure"] == pytest.approx(chip.now["pressure"], abs=0.01)
        assert got["humidity"] == pytest.approx(chip.now["humidity"], abs=0.01)
        readings.append(got["temperature"])
    assert len(set(readings)) > 10  # it drifts, it is not a constant


def test_absent_chip_is_enodev_like_machine_i2c():
    with pytest.raises(OSError) as info:
        SimI2C({}).readfrom_mem(0x76, 0xD0, 1)
    assert info.value.args[0] == 19


def test_ssl_shim_takes_the_ca_as_the_board_does(tmp_path):
    """MicroPython's ``load_verify_locations(cadata=...)`` takes PEM or DER bytes; so does the shim."""
    firmware_path()
    from iots6.net import make_tls_context

    ca = pki.ensure_ca(tmp_path / "ca")
    pem = ca.cert.read_bytes()
    for data in (pem, ssl.PEM_cert_to_DER_cert(pem.decode())):
        ctx = SSL.SSLContext(SSL.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cadata=data)
        assert len(ctx._ctx.get_ca_certs()) == 1
    (tmp_path / "flash").mkdir()
    ctx, verified = make_tls_context(SSL, str(tmp_path / "flash"))  # no ca.crt flashed: encrypted, not verified
    assert not verified and ctx.verify_mode == ssl.CERT_NONE
    (tmp_path / "flash" / "ca.crt").write_bytes(pem)
    ctx, verified = make_tls_context(SSL, str(tmp_path / "flash"))
    assert verified and ctx.verify_mode == ssl.CERT_REQUIRED and ctx._ctx.check_hostname


def test_host_resolver_uses_the_hosts_resolver():
    assert HostResolver().resolve("localhost").startswith("127.")
