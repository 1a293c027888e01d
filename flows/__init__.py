"""Prefect flows composing the `latent.tasks` into pipelines, and the `latent` command line that drives them."""

import logging

# What the library says at INFO (`latent.*` loggers) reaches a flow run's log when PREFECT_LOGGING_EXTRA_LOGGERS
# names `latent` (the CLI sets it; prefect.yaml sets it for workers); without a level here Python's WARNING applies.
if logging.getLogger("latent").level == logging.NOTSET:
    logging.getLogger("latent").setLevel(logging.INFO)
