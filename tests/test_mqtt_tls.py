"""The MQTT bridge over TLS against a real Mosquitto with a certificate of a test CA: it connects and delivers
when it trusts the broker's CA, and never connects (counted, not fatal) when the certificate is not from it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mqtt_broker import MOSQUITTO, Broker, free_port
from tests.mqtt_helpers import Observer, pump
from tests.test_mqtt_bridge import Rig

pytestmark = pytest.mark.skipif(
    not Path(MOSQUITTO).exists() or shutil.which("openssl") is None, reason="needs mosquitto and openssl"
)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(d: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", str(key), "-out", str(crt), cwd=d)  # fmt: skip
    return crt, key


def _server_cert(d: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by `ca`: (certificate, key)."""
    key, csr, crt, ext = d / "server.key", d / "server.csr", d / "server.crt", d / "san.ext"
    ext.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key),
             "-out", str(csr), cwd=d)  # fmt: skip
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-days", "2", "-extfile", str(ext), "-out", str(crt), cwd=d)  # fmt: skip
    return crt, key


class TlsBroker:
    """A plain listener for the test's observer and a TLS listener for the robot."""

    def __init__(self, broker: Broker, tls_port: int, ca: Path) -> None:
        self.broker, self.tls_port, self.ca = broker, tls_port, ca


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    d = tmp_path_factory.mktemp("mqtt-tls")
    ca = _ca(d, "test-ca")
    crt, key = _server_cert(d, ca)
    tls_port = free_port()
    extra = f"listener {tls_port} 127.0.0.1\ncafile {ca[0]}\ncertfile {crt}\nkeyfile {key}\n"
    with Broker(d / "broker", extra=extra) as b:
        yield TlsBroker(b, tls_port, ca[0])


def test_over_tls_the_robot_connects_to_a_broker_it_trusts_and_its_alerts_arrive(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    observer = Observer(tls_broker.broker.port)
    rig = Rig(tls_broker.tls_port, tmp_path, "tlsrobot", tls=True, ca_file=str(tls_broker.ca))
    try:
        rig.connect()
        rig.alert("tray_full")
        pump(rig.step, lambda: observer.on(rig.t.alerts), what="the alert, sent over TLS")
        assert observer.json_on(rig.t.alerts)[-1]["kind"] == "tray_full"
    finally:
        rig.bridge.close()
        observer.close()


def test_a_broker_whose_certificate_is_not_from_the_trusted_ca_is_never_connected_to(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    other_ca, _ = _ca(tmp_path, "someone-else")
    rig = Rig(tls_broker.tls_port, tmp_path, "wary", tls=True, ca_file=str(other_ca))
    try:
        pump(rig.step, lambda: rig.bridge.stats["connect_failures"] >= 2, what="refused handshakes")
        assert not rig.bridge.connected  # certificate verification is required, never skipped
    finally:
        rig.bridge.close()
