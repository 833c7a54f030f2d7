"""SMS PDUs (3GPP TS 23.040 / 23.038), pure: decode the SMS-DELIVER a modem lists in PDU mode, and encode one
(for the fake modem and the tests).

In PDU mode a received message is one line of hex digits, so nothing in a message body can ever look like a
header, `OK` or `ERROR`: the text is decoded from the hex, never read off the modem's lines.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# GSM 03.38 default alphabet; index 27 is the escape to the extension table.
GSM7 = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXT = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|",
            0x65: "€"}  # fmt: skip
_GSM7_INDEX = {ch: i for i, ch in enumerate(GSM7) if i != 27}
_GSM7_EXT_INDEX = {ch: code for code, ch in GSM7_EXT.items()}
MAX_SEPTETS = 160
MAX_OCTETS = 140
assert len(GSM7) == 128


class PduError(ValueError):
    """A PDU that is not a well-formed SMS-DELIVER; the message names what is wrong."""


@dataclass(frozen=True, slots=True)
class Deliver:
    """A decoded SMS-DELIVER: sender, text, service-centre time stamp, and the concatenation part (reference,
    total, number) when the message is one piece of a longer one."""

    sender: str
    text: str
    scts: str
    part: tuple[int, int, int] | None = None

    @property
    def fingerprint(self) -> str:
        """Identifies this message across restarts (the same SMS listed again is recognised)."""
        raw = "\x00".join((self.sender, self.scts, self.text, repr(self.part)))
        return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _semi_octets(data: bytes) -> str:
    out = []
    for b in data:
        for nibble in (b & 0x0F, b >> 4):
            if nibble == 0x0F:
                continue
            out.append("0123456789*#abc"[nibble])
    return "".join(out)


def unpack_septets(data: bytes, count: int) -> list[int]:
    """`count` 7-bit values packed little-endian into `data`."""
    if count * 7 > len(data) * 8:
        raise PduError(f"user data holds {len(data) * 8 // 7} septets, the header says {count}")
    value = int.from_bytes(data, "little")
    return [(value >> (7 * i)) & 0x7F for i in range(count)]


def pack_septets(septets: list[int], fill_bits: int = 0) -> bytes:
    """Septets packed little-endian after `fill_bits` zero bits."""
    value = 0
    for i, s in enumerate(septets):
        value |= (s & 0x7F) << (fill_bits + 7 * i)
    nbits = fill_bits + 7 * len(septets)
    return value.to_bytes((nbits + 7) // 8, "little")


def gsm7_decode(septets: list[int]) -> str:
    """Septets to text; an escape followed by an unknown code reads as the default character (TS 23.038)."""
    out = []
    esc = False
    for s in septets:
        if esc:
            out.append(GSM7_EXT.get(s, GSM7[s] if s != 27 else " "))
            esc = False
        elif s == 27:
            esc = True
        else:
            out.append(GSM7[s])
    return "".join(out)


def gsm7_encode(text: str) -> list[int] | None:
    """Text to septets, or None when a character is not in the GSM alphabet (use UCS-2 then)."""
    out: list[int] = []
    for ch in text:
        if ch in _GSM7_INDEX:
            out.append(_GSM7_INDEX[ch])
        elif ch in _GSM7_EXT_INDEX:
            out += [27, _GSM7_EXT_INDEX[ch]]
        else:
            return None
    return out


def _scts(data: bytes) -> str:
    d = [(b & 0x0F) * 10 + (b >> 4) for b in data[:6]]
    tz = data[6]
    quarters = (tz & 0x07) * 10 + (tz >> 4)
    sign = "-" if tz & 0x08 else "+"
    return f"{d[0]:02d}/{d[1]:02d}/{d[2]:02d},{d[3]:02d}:{d[4]:02d}:{d[5]:02d}{sign}{quarters:02d}"


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise PduError(f"PDU ends inside the {what} (needs {n} bytes at offset {self.pos})")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]


def _alphabet(dcs: int) -> str:
    """'gsm7', '8bit' or 'ucs2' from the data coding scheme; PduError for compressed or reserved codings."""
    group = dcs >> 4
    if group <= 0x3:  # general data coding
        if dcs & 0x20:
            raise PduError(f"DCS 0x{dcs:02x}: compressed text is not supported")
        return ("gsm7", "8bit", "ucs2", "gsm7")[(dcs >> 2) & 0x03]
    if group in (0xC, 0xD):  # message waiting, GSM 7-bit
        return "gsm7"
    if group == 0xE:  # message waiting, UCS-2
        return "ucs2"
    if group == 0xF:
        return "8bit" if dcs & 0x04 else "gsm7"
    if 0x4 <= group <= 0x7:  # automatic deletion group: same coding bits as the general group
        return _alphabet(dcs & 0x2F)
    raise PduError(f"DCS 0x{dcs:02x}: reserved coding group")


def decode_deliver(hex_pdu: str, tpdu_length: int | None = None) -> Deliver:
    """Decode one SMS-DELIVER from the hex a modem prints in PDU mode (with the SMSC field in front).

    `tpdu_length` is the length the +CMGL/+CMGR header announced; it must match. Raises PduError."""
    try:
        data = bytes.fromhex(hex_pdu)
    except ValueError as err:
        raise PduError("PDU is not hex") from err
    r = _Reader(data)
    sca_len = r.byte("SMSC length")
    r.take(sca_len, "SMSC address")
    if tpdu_length is not None and len(data) - 1 - sca_len != tpdu_length:
        raise PduError(f"TPDU is {len(data) - 1 - sca_len} bytes, the header says {tpdu_length}")
    first = r.byte("first octet")
    if first & 0x03 != 0x00:
        raise PduError(f"first octet 0x{first:02x}: not an SMS-DELIVER")
    udhi = bool(first & 0x40)
    oa_digits = r.byte("sender length")
    toa = r.byte("sender type")
    oa = r.take((oa_digits + 1) // 2, "sender")
    if toa & 0x70 == 0x50:  # alphanumeric sender id ("AX-AIRTEL"), GSM 7-bit packed
        sender = gsm7_decode(unpack_septets(oa, oa_digits * 4 // 7)).strip()
    else:
        sender = _semi_octets(oa)[:oa_digits]
        if toa & 0x70 == 0x10 and sender:
            sender = "+" + sender
    r.byte("protocol id")
    dcs = r.byte("coding scheme")
    scts = _scts(r.take(7, "time stamp"))
    udl = r.byte("user data length")
    alphabet = _alphabet(dcs)
    ud = r.data[r.pos :]
    octets = (udl * 7 + 7) // 8 if alphabet == "gsm7" else udl
    if len(ud) < octets:
        raise PduError(f"user data is {len(ud)} bytes, the header says {octets}")
    if udl > (MAX_SEPTETS if alphabet == "gsm7" else MAX_OCTETS):
        raise PduError(f"user data length {udl} exceeds one SMS")
    ud = ud[:octets]
    part = None
    header_octets = 0
    if udhi:
        if not ud:
            raise PduError("user data header flagged but absent")
        udhl = ud[0]
        header_octets = udhl + 1
        if header_octets > len(ud):
            raise PduError("user data header longer than the user data")
        part = _concat_part(ud[1:header_octets])
    if alphabet == "gsm7":
        skip = (header_octets * 8 + 6) // 7  # septets taken by the header and its fill bits
        if skip > udl:
            raise PduError("user data header longer than the user data")
        text = gsm7_decode(unpack_septets(ud, udl)[skip:])
    elif alphabet == "ucs2":
        body = ud[header_octets:]
        text = body[: len(body) // 2 * 2].decode("utf-16-be", errors="replace")
    else:
        text = ud[header_octets:].decode("latin-1")
    return Deliver(sender, text, scts, part)


def _concat_part(udh: bytes) -> tuple[int, int, int] | None:
    i = 0
    while i + 2 <= len(udh):
        iei, length = udh[i], udh[i + 1]
        value = udh[i + 2 : i + 2 + length]
        if len(value) < length:
            raise PduError("user data header element runs past its end")
        if iei == 0x00 and length == 3:
            return value[0], value[1], value[2]
        if iei == 0x08 and length == 4:
            return (value[0] << 8) | value[1], value[2], value[3]
        i += 2 + length
    return None


def _address(number: str) -> tuple[int, int, bytes]:
    """(digit count, type, semi-octets) of a phone number; alphanumeric ids are GSM 7-bit packed."""
    digits = number[1:] if number.startswith("+") else number
    if digits.isdigit():
        toa = 0x91 if number.startswith("+") else 0x81
        padded = digits + ("F" if len(digits) % 2 else "")
        return (
            len(digits),
            toa,
            bytes.fromhex("".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2))),
        )
    septets = gsm7_encode(number) or gsm7_encode("?" * len(number)) or []
    packed = pack_septets(septets)
    return len(packed) * 2, 0xD0, packed


def encode_deliver(
    sender: str, text: str, scts: str = "24/05/01,10:20:30+22", part: tuple[int, int, int] | None = None
) -> str:
    """An SMS-DELIVER in hex (with an empty SMSC field), as a network would hand it to the modem; GSM 7-bit when
    the text allows, else UCS-2. Raises PduError when the text does not fit one SMS."""
    digits, toa, oa = _address(sender)
    udh = b""
    if part is not None:
        ref, total, seq = part
        udh = bytes([5, 0x00, 3, ref & 0xFF, total, seq])
    septets = gsm7_encode(text)
    if septets is not None:
        fill = (7 - len(udh) * 8 % 7) % 7  # the septets start on a septet boundary after the header
        udl = (len(udh) * 8 + fill) // 7 + len(septets)
        if udl > MAX_SEPTETS:
            raise PduError(f"{len(septets)} septets do not fit one SMS")
        body = udh + pack_septets(septets, fill)
        dcs = 0x00
    else:
        body = udh + text.encode("utf-16-be")
        udl = len(body)
        if udl > MAX_OCTETS:
            raise PduError(f"{udl} octets do not fit one SMS")
        dcs = 0x08
    ts = scts.replace("/", "").replace(",", "").replace(":", "")
    stamp = bytes(int(ts[i + 1] + ts[i], 16) for i in range(0, 12, 2))
    sign, quarters = scts[-3], int(scts[-2:])
    tz = ((quarters % 10) << 4) | (quarters // 10) | (0x08 if sign == "-" else 0)
    first = 0x04 | (0x40 if udh else 0)  # SMS-DELIVER, no more messages to send
    tpdu = bytes([first, digits, toa]) + oa + bytes([0x00, dcs]) + stamp + bytes([tz, udl]) + body
    return "00" + tpdu.hex().upper()


def tpdu_length(hex_pdu: str) -> int:
    """The length a modem announces for this PDU: its octets after the SMSC field."""
    data = bytes.fromhex(hex_pdu)
    return len(data) - 1 - data[0]
