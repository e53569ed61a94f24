"""The bottom layer: helpers every other layer may use (time, payload codec, tokens, durations,
deployment version strings). Imports nothing of Aion's but `aion.errors`."""
