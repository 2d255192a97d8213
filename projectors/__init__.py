"""Stream processors: projectors (event → effect in Postgres) and enrichers (event → derived event).

Projectors are plain async functions (`projectors.driver.PROJECTORS`); drivers (the embedded tailer,
the faust agents, replay) only move records and positions, committing the position in the same
transaction as the effect (`projectors.driver`).
"""
