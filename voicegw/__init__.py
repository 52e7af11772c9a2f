"""voicegw: a realtime voice gateway between a device's microphone and speaker and Coze."""

from __future__ import annotations

from .errors import (
    CloudError,
    CodecError,
    ConfigError,
    DeviceError,
    ProtocolError,
    VoiceGatewayError,
)

__all__ = [
    "CloudError",
    "CodecError",
    "ConfigError",
    "DeviceError",
    "ProtocolError",
    "VoiceGatewayError",
    "__version__",
]

__version__ = "0.1.0"
