"""The shipped simulator scenarios (TOML), loaded by sim.scenario."""
