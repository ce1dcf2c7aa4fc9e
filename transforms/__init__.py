"""Pure science and array code: product readers, QA, gridding, cube layout, regions, emissions, simulation.

Nothing here imports prefect, s3fs, boto or reads the environment: I/O objects are handed in.
"""
