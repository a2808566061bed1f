"""The engine on another machine: a Ray Serve application (`server`), its HTTP wire format (`wire`)
and a client with the local EngineClient's job API (`client`).

Only `server` imports Ray; the client needs httpx alone, so producers who never use a remote engine
never load Ray.
"""
