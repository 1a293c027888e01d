"""The built-in configs: the default pipeline, the presets and the schedules, installed as `latent.conf`."""
