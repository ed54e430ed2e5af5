"""Hardware in the loop: the harness firmware's host side.

``Device`` speaks the harness's binary protocol over any pySerial URL,
``Emulator`` runs a firmware on QEMU, ``measure`` (tvmq.hil.bench) benchmarks
one, ``tvmq.hil.power`` reads power monitors and ``tvmq.hil.proxy`` injects link
faults for tests. firmware/README.md documents the protocol. ``tvmq.hil.rpc``
times libraries on Linux boards through TVM's RPC server.
"""

from tvmq.hil.device import BoardResetError, Device, DeviceInfo, Timing
from tvmq.hil.emulator import Emulator

__all__ = ["BoardResetError", "Device", "DeviceInfo", "Emulator", "Timing"]
