"""Prefect tasks: thin wrappers around `latent` library stages that add retries and names."""
