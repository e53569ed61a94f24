"""Assembles one Aion server process: store, namespaces, engine, matching, gRPC."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import grpc
from temporalio.api.workflowservice.v1 import service_pb2_grpc

from aion.frontend.workflow_service import WorkflowService
from aion.history.engine import HistoryEngine
from aion.matching import MatchingEngine
from aion.namespaces import NamespaceRegistry
from aion.persistence.sqlite import SQLiteStore

log = logging.getLogger("aion")


@dataclass
class ServerConfig:
    """Settings of one server process."""

    ip: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 7233
    """gRPC port."""
    db_filename: str | None = None
    """SQLite file; None keeps everything in memory."""
    namespaces: list[str] = field(default_factory=lambda: ["default"])
    """Namespaces registered at start (if missing)."""
    num_shards: int = 4
    """History shards; fixed for the life of a database."""


class AionServer:
    """One running server: `start()`, then `stop()`."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.store = SQLiteStore(config.db_filename or ":memory:")
        self.namespaces = NamespaceRegistry(self.store)
        self.matching = MatchingEngine()
        self.engine = HistoryEngine(self.store, self.namespaces, self.matching, config.num_shards)
        self.grpc = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 128 * 1024 * 1024),
                ("grpc.max_send_message_length", 128 * 1024 * 1024),
            ]
        )
        service_pb2_grpc.add_WorkflowServiceServicer_to_server(
            WorkflowService(self.engine, self.namespaces), self.grpc
        )
        self.address = f"{config.ip}:{config.port}"

    async def start(self) -> None:
        await self.store.open()
        await self.namespaces.load()
        for name in self.config.namespaces:
            await self.namespaces.ensure(name)
        await self.engine.start()
        bound = self.grpc.add_insecure_port(self.address)
        if bound == 0:
            raise OSError(f"cannot listen on {self.address}")
        await self.grpc.start()

    async def stop(self) -> None:
        await self.grpc.stop(grace=1.0)
        await self.engine.stop()
        await self.store.close()
