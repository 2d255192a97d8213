"""Stream processors: projectors (event → effect in Postgres) and enrichers (event → derived event).

Projectors are plain async functions (`projectors.driver.PROJECTORS`); drivers (the embedded tailer,
the faust agents, replay) only move records and positions, committing the position in the same
transaction as the effect (`projectors.driver`; the positions' statements are spectron.positions).
"""

# The projectors build on spectron's core, and spectron's client runs them in process: load
# spectron whole first, so that importing a projector module before spectron finds no module of
# this package half-initialised when the client's wiring imports it.
import spectron  # noqa: F401
