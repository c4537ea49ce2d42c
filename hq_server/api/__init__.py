"""HTTP API, one blueprint per audience: parse, call one service, shape the answer."""
