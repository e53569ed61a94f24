"""Temporal's Web UI served by Aion: the SvelteKit app of `ui/` (routes of Aion's own over the
pages of the npm package `@temporalio/ui`), built into `assets/` and served by aiohttp with what
Temporal's UI server adds (`/api/v1/settings`, the history download, CSRF) in front of the HTTP
API (`server`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).parent / "assets"
"""Where the build of `ui/` goes (`scripts/build-ui`); it ships with the package."""


@dataclass
class UiConfig:
    """Settings of the Web UI."""

    ip: str = "127.0.0.1"
    port: int = 8233
    public_path: str = ""
    """Path prefix the UI is served under (`/temporal`); "" for the root."""
    codec_endpoint: str = ""
    """Remote codec server the UI decodes payloads through; "" for none."""
    assets: Path = ASSETS
    """The built app's directory."""
    api_key: str = ""
    """The bearer credential (API key, JWT or biscuit) the UI calls the API with when the server
    requires one; "" for none."""


def built(assets: Path = ASSETS) -> bool:
    """Whether the app is built in `assets`."""
    return (assets / "index.html").is_file()
