"""The serializations of primitive content: JSON (the default) and CBOR (TS-0004 8.4,
TS-0009 6.7: `application/json`, `application/cbor` and the oneM2M `vnd.onem2m-res+...` forms)."""

from __future__ import annotations

import json
from typing import Any

import cbor2

JSON = "application/json"
JSON_ONEM2M = "application/vnd.onem2m-res+json"
CBOR = "application/cbor"
CBOR_ONEM2M = "application/vnd.onem2m-res+cbor"
SUPPORTED = (JSON, JSON_ONEM2M, CBOR, CBOR_ONEM2M)


def is_cbor(media: str) -> bool:
    return media in (CBOR, CBOR_ONEM2M)


def decode(media: str, raw: bytes) -> Any:
    """Raises ValueError with the parser's reason when `raw` is not valid content."""
    if is_cbor(media):
        try:
            return cbor2.loads(raw)
        except (cbor2.CBORDecodeError, EOFError) as exc:
            raise ValueError(f"not valid CBOR: {exc}") from None
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 JSON: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


def encode(media: str, obj: Any) -> bytes:
    if is_cbor(media):
        return bytes(cbor2.dumps(obj))
    return json.dumps(obj, separators=(",", ":")).encode()
