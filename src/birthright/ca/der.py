"""A very small, strict DER codec: what ``hardwareModuleName`` (RFC 4108) and the hot paths of
revocation (CRL entries, OCSP answers) need.

``cryptography`` builds an ``otherName`` from the DER of its value but has no public encoder for
arbitrary ASN.1, and a whole ASN.1 library for one ``SEQUENCE { OID, OCTET STRING }`` is not
worth a dependency. The decoder accepts only definite, minimal (DER) lengths.
"""

from __future__ import annotations

from datetime import UTC, datetime

from birthright.errors import InputError

TAG_INTEGER = 0x02
TAG_BIT_STRING = 0x03
TAG_OCTET_STRING = 0x04
TAG_NULL = 0x05
TAG_ENUMERATED = 0x0A
TAG_UTC_TIME = 0x17
TAG_GENERALIZED_TIME = 0x18
TAG_OID = 0x06
TAG_SEQUENCE = 0x30


class DerError(InputError):
    code = "der_malformed"


def encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + encode_length(len(value)) + value


def sequence(*items: bytes) -> bytes:
    return tlv(TAG_SEQUENCE, b"".join(items))


def explicit(number: int, value: bytes) -> bytes:
    """``[number] EXPLICIT``: a constructed context-specific tag around ``value``."""
    return tlv(0xA0 | number, value)


def encode_integer(value: int) -> bytes:
    """DER of an INTEGER (two's complement, minimal)."""
    length = (value.bit_length() + 8) // 8 if value >= 0 else (value + 1).bit_length() // 8 + 1
    return tlv(TAG_INTEGER, value.to_bytes(length, "big", signed=True))


def encode_time(when: datetime) -> bytes:
    """RFC 5280 §4.1.2.5 Time: UTCTime through 2049, GeneralizedTime from 2050; whole seconds."""
    if when.tzinfo is None:
        raise ValueError("DER times must be timezone-aware")
    u = when.astimezone(UTC)
    if 1950 <= u.year < 2050:
        text = (
            f"{u.year % 100:02d}{u.month:02d}{u.day:02d}{u.hour:02d}{u.minute:02d}{u.second:02d}Z"
        )
        return tlv(TAG_UTC_TIME, text.encode())
    return encode_generalized_time(u)


def encode_generalized_time(when: datetime) -> bytes:
    """GeneralizedTime in UTC, whole seconds (RFC 5280 §4.1.2.5.2, RFC 6960 answers)."""
    if when.tzinfo is None:
        raise ValueError("DER times must be timezone-aware")
    u = when.astimezone(UTC)
    text = f"{u.year:04d}{u.month:02d}{u.day:02d}{u.hour:02d}{u.minute:02d}{u.second:02d}Z"
    return tlv(TAG_GENERALIZED_TIME, text.encode())


def encode_bit_string(value: bytes) -> bytes:
    """A BIT STRING of whole octets (no unused bits), as signatures are."""
    return tlv(TAG_BIT_STRING, b"\x00" + value)


def encode_oid(dotted: str) -> bytes:
    """DER of an OBJECT IDENTIFIER given in dotted form, e.g. ``1.3.6.1.5.5.7.8.4``."""
    try:
        arcs = [int(a) for a in dotted.split(".")]
    except ValueError as e:
        raise DerError(f"not a dotted OID: {dotted!r}") from e
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39) or min(arcs) < 0:
        raise DerError(f"not a valid OID: {dotted!r}")
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(TAG_OID, bytes(body))


#: AlgorithmIdentifier ecdsa-with-SHA256 (RFC 5758 §3.2: parameters absent).
ECDSA_WITH_SHA256 = sequence(encode_oid("1.2.840.10045.4.3.2"))


def decode_oid(body: bytes) -> str:
    """Dotted form of an OBJECT IDENTIFIER's content octets."""
    if not body or body[-1] & 0x80:
        raise DerError("truncated OID")
    arcs: list[int] = []
    value = 0
    start = True
    for byte in body:
        if start and byte == 0x80:
            raise DerError("OID arc is not minimally encoded")
        value = (value << 7) | (byte & 0x7F)
        start = not byte & 0x80
        if start:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in [*head, *arcs[1:]])


def read_tlv(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """Read one TLV at ``offset``: ``(tag, value, offset after it)``."""
    if offset + 2 > len(data):
        raise DerError("truncated DER")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte tags are not supported")
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise DerError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        if length < 0x80 or data[pos] == 0:
            raise DerError("DER length is not minimally encoded")
        pos += count
    end = pos + length
    if end > len(data):
        raise DerError("truncated DER")
    return tag, data[pos:end], end


def expect(data: bytes, offset: int, tag: int) -> tuple[bytes, int]:
    got, value, end = read_tlv(data, offset)
    if got != tag:
        raise DerError(f"expected DER tag 0x{tag:02x}, found 0x{got:02x}")
    return value, end
