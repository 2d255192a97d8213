"""The API's routes, one router per resource; create_app includes them in the order listed here.

operations (probes, metrics) · sessions · memory (the session's operations) · keys · items
(LangGraph's store) · console (memories, scopes, audit, log status, dead letters). Their
dependencies (service, capabilities) are in spectron.http.deps.
"""
