"""The sweep layer: space.yaml → SweepSpec (spec.py), Optuna searcher and ASHA scheduler
(searchers.py), the Ray Tune trainable, launch/resume and the Parquet sink."""
