"""The kit's pyserial URL handlers: `sim://RECORDING?...` (the virtual device, in process) and
`qemu://ARTIFACT_DIR?...` (the wrist firmware on an emulated Cortex-M).

pyserial's `serial_for_url` imports `protocol_<scheme>` from every package listed in
`serial.protocol_handler_packages` and opens its `Serial` class; `serial_reader.pyserial()`
adds this package to that list. Each handler also has `check_url(url)`, which finds a bad URL
before anything is loaded (`serial_reader.check_port`).
"""

from __future__ import annotations

import argparse
from urllib.parse import unquote

from serial.serialutil import PortNotOpenError, SerialBase

from edgehar.errors import UserError


class InProcessPort(SerialBase):
    """A port whose device lives in this process: nothing is buffered on the way out, and the
    modem lines read as a plugged-in cable."""

    def reset_output_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()

    @property
    def out_waiting(self) -> int:
        return 0

    def _update_break_state(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        pass

    def _update_dtr_state(self) -> None:
        pass

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True


def split_url(url: str, scheme: str) -> tuple[str, dict[str, str]]:
    """PATH and the options of `SCHEME://PATH?key=value&key=value`.

    Not `urllib.parse`: PATH may be relative (`sim://recs/a.csv`, where urlsplit would take
    `recs` for a host), and a value keeps its `+` (`faults=disconnect=20+40`); %XX escapes are
    decoded in both."""
    head, sep, rest = url.partition("://")
    if not sep or head.lower() != scheme:
        raise UserError(url, f"not a {scheme}:// URL")
    path, _, query = rest.partition("?")
    options: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, _, value = item.partition("=")
        key = unquote(key)
        if key in options:
            raise UserError(url, f"option {key!r} given twice")
        options[key] = unquote(value)
    return unquote(path), options


def option(url: str, options: dict[str, str], key: str, parse, default=None):
    """`options[key]` read by an argparse type function (a bad value is a `UserError`)."""
    if key not in options:
        return default
    try:
        return parse(options[key])
    except (argparse.ArgumentTypeError, ValueError) as e:
        raise UserError(url, f"{key}={options[key]}: {e}") from None
    except UserError as e:
        raise UserError(url, f"{key}={options[key]}: {e.what}") from None


def boolean(text: str) -> bool:
    """`1/true/yes/on` or `0/false/no/off` (an empty value, as in `?loop`, is true)."""
    value = text.strip().lower()
    if value in ("", "1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError("use 1 or 0")


def refuse_unknown(url: str, options: dict[str, str], known: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UserError(url, f"unknown option {unknown[0]!r} (known: {', '.join(known)})")
