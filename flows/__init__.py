"""Prefect flows composing the `tasks` into pipelines, and the `latent` command line that drives them."""
