"""Exploring latent tables: the layer above `latent.analysis` that reads tables and dataset tables, loads models,
writes analysis folders and figures, and logs them to MLflow. `space` binds a table to its model and dataset,
`grids` builds the decoded grids the commands and the report share, `commands` writes the exploration commands'
folders, `disentangle`, `probes` and `compare` run the pure analyses on tables, `modalities` adds the text and
molecule parts of the report."""
