"""gRPC channels to other servers (the processes sharing a database, other clusters), one per
address, opened on first use, with the message size limits the servers accept."""

from __future__ import annotations

from collections.abc import Callable

import grpc

MAX_MESSAGE_BYTES = 128 * 1024 * 1024
# The transport's own headers, which a forwarded call gets anew.
_TRANSPORT_HEADERS = frozenset(
    {"content-type", "user-agent", "te", "grpc-timeout", "grpc-accept-encoding"}
)


def caller_metadata(
    context: grpc.aio.ServicerContext, dropped: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """The caller's headers (credentials, client name and version...) for forwarding its call,
    without the transport's own and those in `dropped`."""
    return [
        (key, value)
        for key, value in context.invocation_metadata() or ()
        if key not in _TRANSPORT_HEADERS and key not in dropped and not key.startswith(":")
    ]


class Channels:
    """Open channels by address."""

    def __init__(self, credentials: Callable[[], grpc.ChannelCredentials] | None = None) -> None:
        """`credentials`: TLS credentials for a new channel; None: plaintext."""
        self._credentials = credentials
        self._channels: dict[str, grpc.aio.Channel] = {}

    def get(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            options = [
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ]
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(address, options=options)
            else:
                channel = grpc.aio.secure_channel(address, self._credentials(), options=options)
            self._channels[address] = channel
        return channel

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
