"""The SDK suite tool behind `scripts/sdk-suite`: runs the official Python SDK's test suite
against the reference server and Aion and writes docs/compatibility.md (see cli for usage)."""
