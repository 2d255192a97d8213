"""Spectron over HTTP: the FastAPI server (`app`), API keys (`keys`) and the httpx client (`client`).

Nothing is imported here, so `spectron.http.client` does not pull in the server's dependencies.
"""
